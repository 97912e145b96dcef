"""The second shape renderer (syn_alt): seeded, countable, every type drawn the way its name says, and not shapes.py."""

from __future__ import annotations

import numpy as np
import pytest

from interp.data.shapes import ShapeBatch, generate_shapes
from interp.data.shapes_alt import generate_alt_shapes, render_alt
from interp.language import SYNTH_SHAPES, parse_description
from tests.data.test_shapes import components, has_hole

FAINT = 40  # above the gap between two shapes (< 15 % of a peak ≤ 255), below any stroke's core


def test_same_seed_same_batch_and_image_i_does_not_depend_on_n() -> None:
    a, b = generate_alt_shapes(6, 11), generate_alt_shapes(6, 11)
    assert isinstance(a, ShapeBatch)
    assert a.images.dtype == np.uint8 and a.images.shape == (6, 28, 28) and a.counts.shape == (6, 7)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.counts, b.counts)
    alone = render_alt(11, [4])
    assert np.array_equal(alone.images[0], a.images[4]) and np.array_equal(alone.counts[0], a.counts[4])
    assert not np.array_equal(generate_alt_shapes(6, 12).images, a.images)


def test_counts_are_what_is_drawn() -> None:
    batch = generate_alt_shapes(40, 3)
    totals = batch.counts.sum(1)
    assert totals.min() >= 1 and totals.max() <= 4 and len(set(totals.tolist())) == 4
    for image, total in zip(batch.images, totals, strict=True):
        assert components(image > FAINT) == total  # one blob a shape, shapes apart
        assert image[:2].max() == image[-2:].max() == image[:, :2].max() == image[:, -2:].max() == 0
    for text, row in zip(batch.descriptions, batch.counts, strict=True):
        assert parse_description(text).well_formed
        assert [parse_description(text).counts[s] for s in SYNTH_SHAPES] == row.tolist()


@pytest.mark.parametrize("shape", SYNTH_SHAPES)
def test_every_type_is_drawn_alone(shape: str) -> None:
    batch = generate_alt_shapes(4, 5, types=(shape,), max_shapes=1)
    assert (batch.counts[:, SYNTH_SHAPES.index(shape)] == 1).all() and batch.counts.sum() == 4
    for image in batch.images:
        ys, xs = np.nonzero(image > 128)
        width, height = np.ptp(xs) + 1, np.ptp(ys) + 1
        if shape == "vertical":  # the mass in a column
            assert width <= 6 and height >= 8
        elif shape == "horizontal":
            assert height <= 6 and width >= 8
        elif shape in ("diagonal", "anti-diagonal"):  # image rows point down: ↘ has y growing with x
            corr = np.corrcoef(xs, ys)[0, 1]
            assert (corr > 0.8) if shape == "diagonal" else (corr < -0.8)
        elif shape == "ellipse":
            assert has_hole(image)
        elif shape == "checkerboard":  # cells meet at corners only: several 4-connected pieces
            assert components(image > 128, diagonal=False) >= 4
        else:  # a corner: two arms, a bounding box well filled on two sides only
            assert width >= 5 and height >= 5 and components(image > FAINT) == 1


def test_not_the_original_renderer() -> None:
    alt, original = generate_alt_shapes(8, 5), generate_shapes(8, 5)
    assert all(not np.array_equal(a, b) for a, b in zip(alt.images, original.images, strict=True))


def test_overlap_and_bad_arguments() -> None:
    crowded = generate_alt_shapes(6, 2, overlap=1.0, min_shapes=4)
    assert (crowded.counts.sum(1) == 4).all()  # placed without the collision test, so all fit
    with pytest.raises(ValueError, match="types"):
        generate_alt_shapes(1, 0, types=("crossing",))
    with pytest.raises(ValueError, match="overlap"):
        generate_alt_shapes(1, 0, overlap=2.0)
    with pytest.raises(ValueError, match="min_shapes"):
        generate_alt_shapes(1, 0, min_shapes=3, max_shapes=2)
