"""Synthetic shape images (§3.1): format, ranges, per-type geometry, countable ground truth."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interp.data.shapes import ShapeBatch, generate_shapes, render_counts
from interp.language import SYNTH_SHAPES, parse_description

BRIGHT = 128  # a person sees these pixels as stroke


def components(mask: np.ndarray, diagonal: bool = True) -> int:
    """Number of connected blobs in a bool [28, 28] mask (8- or 4-connected)."""
    steps = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    if diagonal:
        steps += [(-1, -1), (-1, 1), (1, -1), (1, 1)]
    seen = np.zeros_like(mask)
    count = 0
    for start in zip(*np.nonzero(mask), strict=True):
        if seen[start]:
            continue
        count += 1
        seen[start] = True
        queue = deque([start])
        while queue:
            y, x = queue.popleft()
            for dy, dx in steps:
                q = (y + dy, x + dx)
                if 0 <= q[0] < 28 and 0 <= q[1] < 28 and mask[q] and not seen[q]:
                    seen[q] = True
                    queue.append(q)
    return count


def has_hole(image: np.ndarray) -> bool:
    """True if some dark pixel cannot be reached from the border through dark pixels."""
    dark = image < 64
    reach = np.zeros_like(dark)
    reach[0, :] = reach[-1, :] = reach[:, 0] = reach[:, -1] = True
    reach &= dark
    while True:
        grown = reach.copy()
        grown[1:] |= reach[:-1]
        grown[:-1] |= reach[1:]
        grown[:, 1:] |= reach[:, :-1]
        grown[:, :-1] |= reach[:, 1:]
        grown &= dark
        if (grown == reach).all():
            return bool((dark & ~reach).any())
        reach = grown


def extents(image: np.ndarray) -> tuple[int, int]:
    """(height, width) of the bright pixels' bounding box."""
    ys, xs = np.nonzero(image > BRIGHT)
    return int(np.ptp(ys)) + 1, int(np.ptp(xs)) + 1


def principal(image: np.ndarray) -> tuple[float, float]:
    """(covariance of x and y, largest distance from the principal axis), intensity-weighted."""
    ys, xs = np.nonzero(image > BRIGHT)
    pts = np.stack([xs, ys], 1).astype(float)
    centred = pts - pts.mean(0)
    cov = np.cov(centred.T)
    _, vecs = np.linalg.eigh(cov)
    off_axis = np.abs(centred @ vecs[:, 0])  # eigh sorts ascending: column 0 is the minor axis
    return float(cov[0, 1]), float(off_axis.max())


def single(name: str, n: int = 40, seed: int = 1) -> np.ndarray:
    return generate_shapes(n, seed, types=[name], min_shapes=1, max_shapes=1).images


def test_batch_format_and_descriptions() -> None:
    batch = generate_shapes(64, 0)
    assert isinstance(batch, ShapeBatch)
    assert len(batch) == 64
    assert batch.images.shape == (64, 28, 28) and batch.images.dtype == np.uint8
    assert batch.counts.shape == (64, 7) and batch.counts.dtype == np.int64
    for row, text in zip(batch.counts, batch.descriptions, strict=True):
        parsed = parse_description(text)
        assert parsed.well_formed
        assert [parsed.counts[s] for s in SYNTH_SHAPES] == row.tolist()
        assert parsed.counts["crossing"] == 0


def test_batch_validates_arrays() -> None:
    with pytest.raises(ValueError):
        ShapeBatch(images=np.zeros((2, 28, 28), np.float32), counts=np.zeros((2, 7), np.int64))
    with pytest.raises(ValueError):
        ShapeBatch(images=np.zeros((2, 28, 28), np.uint8), counts=np.zeros((3, 7), np.int64))


def test_deterministic_by_seed() -> None:
    a = generate_shapes(300, 7)
    b = generate_shapes(300, 7)
    c = generate_shapes(300, 8)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.counts, b.counts)
    assert not np.array_equal(a.images, c.images)


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    low=st.integers(1, 4),
    extra=st.integers(0, 3),
    cap=st.integers(1, 4),
    types=st.lists(st.sampled_from(SYNTH_SHAPES), min_size=1, max_size=7, unique=True),
)
def test_counts_within_ranges(seed: int, low: int, extra: int, cap: int, types: list[str]) -> None:
    high = low + extra
    if low > cap * len(types):
        with pytest.raises(ValueError):
            generate_shapes(4, seed, types=types, min_shapes=low, max_shapes=high, max_per_type=cap)
        return
    batch = generate_shapes(12, seed, types=types, min_shapes=low, max_shapes=high, max_per_type=cap)
    totals = batch.counts.sum(1)
    assert (totals >= low).all() and (totals <= high).all()
    assert (batch.counts <= cap).all() and (batch.counts >= 0).all()
    others = [i for i, s in enumerate(SYNTH_SHAPES) if s not in types]
    assert (batch.counts[:, others] == 0).all()


def test_paper_distribution() -> None:
    # §3.1: totals 1–4 (uniform here), every type 0–4 times, every type used.
    batch = generate_shapes(2000, 3)
    totals = np.bincount(batch.counts.sum(1), minlength=5)
    assert totals[0] == 0 and totals.sum() == 2000
    assert (totals[1:] > 400).all()  # nothing dropped in bulk from crowded images
    assert batch.counts.max() <= 4
    assert (batch.counts.sum(0) > 0).all()


def test_mnist_like_range_and_bounds() -> None:
    images = generate_shapes(500, 2).images
    assert (images.reshape(500, -1).max(1) >= 200).all()  # MNIST strokes peak near 255
    assert images[:, :2, :].max() == 0 and images[:, 26:, :].max() == 0
    assert images[:, :, :2].max() == 0 and images[:, :, 26:].max() == 0
    assert (images == 0).mean() > 0.6  # black background like MNIST
    # anti-aliased: intermediate grey levels along stroke edges
    assert ((images > 30) & (images < 170)).sum() > 0.2 * (images >= 170).sum()


@pytest.mark.parametrize("name", SYNTH_SHAPES)
def test_each_type_alone(name: str) -> None:
    for image in single(name):
        assert image.max() >= 200
        assert components(image > BRIGHT) == 1  # one shape is one blob
        height, width = extents(image)
        assert max(height, width) >= 6


def test_lines_are_long_enough() -> None:
    for name in ("diagonal", "anti-diagonal", "vertical", "horizontal"):
        for image in single(name):
            height, width = extents(image)
            assert np.hypot(height, width) >= 8


def test_vertical_and_horizontal_orientation() -> None:
    for image in single("vertical"):
        height, width = extents(image)
        assert height > 2 * width
    for image in single("horizontal"):
        height, width = extents(image)
        assert width > 2 * height


def test_diagonal_directions() -> None:
    # Rows point down: ↘ (diagonal) has x and y growing together, ↗ (anti-diagonal) opposite.
    for image in single("diagonal"):
        assert principal(image)[0] > 0
    for image in single("anti-diagonal"):
        assert principal(image)[0] < 0


def test_ellipses_are_closed_and_others_are_not() -> None:
    assert all(has_hole(image) for image in single("ellipse"))
    for name in ("diagonal", "vertical", "horizontal", "corner"):
        assert not any(has_hole(image) for image in single(name))


def test_corners_bend_and_lines_do_not() -> None:
    for image in single("corner"):
        assert principal(image)[1] >= 3.0  # an arm sticks out of the principal axis
    for name in ("diagonal", "anti-diagonal", "vertical", "horizontal"):
        for image in single(name):
            assert principal(image)[1] < 3.0


def test_checkerboard_cells_alternate() -> None:
    for image in single("checkerboard"):
        assert components(image > BRIGHT, diagonal=True) == 1  # cells meet at corners
        assert components(image > BRIGHT, diagonal=False) >= 5  # but never along an edge


def test_shapes_never_merge() -> None:
    # Every shape is its own blob, so the blobs a person counts match the label.
    batch = generate_shapes(400, 5)
    for image, row in zip(batch.images, batch.counts, strict=True):
        assert components(image > BRIGHT) == row.sum()


def test_same_type_crowds_stay_separate() -> None:
    for name in ("horizontal", "vertical", "ellipse", "corner"):
        batch = generate_shapes(40, 11, types=[name], min_shapes=4, max_shapes=4)
        assert (batch.counts.sum(1) == 4).all()
        for image in batch.images:
            assert components(image > BRIGHT) == 4


def test_render_counts() -> None:
    counts = {"corner": 1, "vertical": 1, "checkerboard": 1}  # figure 2, right
    image = render_counts(counts, seed=0)
    assert image.shape == (28, 28) and image.dtype == np.uint8
    assert components(image > BRIGHT) == 3
    np.testing.assert_array_equal(image, render_counts(counts, seed=0))
    assert render_counts({}, seed=0).max() == 0
    assert components(render_counts({"horizontal": 4, "ellipse": 2}, seed=1) > BRIGHT) == 6
    with pytest.raises(ValueError):
        render_counts({"crossing": 1}, seed=0)
    with pytest.raises(ValueError):
        render_counts({"corner": -1}, seed=0)


def test_many_images() -> None:
    # The paper's 15,000 are covered by scripts/bench_shapes.py; a smaller batch here.
    batch = generate_shapes(3000, 0)
    assert len(batch) == 3000
    assert len(set(batch.descriptions)) > 100
