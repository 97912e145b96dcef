"""interp.target.profiles on a tiny CNN with hand-set conv1 filters: a vertical and a horizontal line detector."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.language import SYNTH_SHAPES
from interp.target.cnn import TargetCNN
from interp.target.profiles import (
    ProfileConfig,
    describe,
    describe_filters,
    line_image,
    orientation_tuning,
    preferred_orientation,
    shape_responses,
    top_patches,
)

VERTICAL, HORIZONTAL, CENTRE = 0, 1, 2
CFG = ProfileConfig(n_per_shape=20, top_k=3)


@pytest.fixture
def tiny() -> TargetCNN:
    """conv1: 0 = a bright vertical bar between dark flanks, 1 = its transpose (horizontal), 2 = the centre
    pixel (weight 1, bias -0.5: fires only on bright pixels); 3..7 zero weights with bias -1 (never fire)."""
    model = TargetCNN().eval()
    w = torch.zeros(8, 1, 9, 9)
    w[VERTICAL, 0, :, 3:6] = torch.tensor([0.5, 1.0, 0.5])
    w[VERTICAL, 0, :, [0, 1, 7, 8]] = -0.5
    w[HORIZONTAL, 0] = w[VERTICAL, 0].T
    w[CENTRE, 0, 4, 4] = 1.0
    bias = torch.tensor([0.0, 0.0, -0.5, -1, -1, -1, -1, -1])
    with torch.no_grad():
        model.conv1[0].weight.copy_(w)
        model.conv1[0].bias.copy_(bias)
    return model


def test_config_refuses_bad_values() -> None:
    for bad in (dict(n_per_shape=0), dict(top_k=0), dict(seed=-1), dict(angles=(0, 90)),
                dict(angles=(0, 45, 45)), dict(angles=(0, 90, 180)), dict(angles=(-15, 0, 90))):
        with pytest.raises(ValueError):
            ProfileConfig(**bad)
    cfg = ProfileConfig(angles=[0, 60, 120])
    assert cfg.angles == (0.0, 60.0, 120.0)
    assert ProfileConfig.from_dict(cfg.to_dict()) == cfg


def test_line_image_orientation() -> None:
    h, v, d = line_image(0), line_image(90), line_image(45)
    assert h.dtype == np.uint8 and h.shape == (28, 28)
    np.testing.assert_array_equal(v, h.T)
    assert h[13:15, 4:24].min() > 200 and h[:10].max() == 0  # a horizontal band across the centre
    assert d[7, 7] > 200 and d[20, 20] > 200 and d[7, 20] == 0  # rows point down: 45° runs ↘


def test_orientation_tuning_finds_the_line_detectors(tiny: TargetCNN) -> None:
    angles = CFG.angles
    tuning = orientation_tuning(tiny, angles)
    assert tuning.shape == (8, len(angles)) and (tuning >= 0).all()
    assert (tuning[3:] == 0).all()  # dead filters
    assert angles[int(tuning[VERTICAL].argmax())] == 90 and angles[int(tuning[HORIZONTAL].argmax())] == 0
    preferred, selectivity = preferred_orientation(tuning, angles)
    assert preferred[VERTICAL] == pytest.approx(90, abs=1)
    assert min(preferred[HORIZONTAL], 180 - preferred[HORIZONTAL]) == pytest.approx(0, abs=1)
    assert selectivity[VERTICAL] > 0.3 and selectivity[HORIZONTAL] > 0.3
    assert selectivity[CENTRE] < 0.05 and (selectivity[3:] == 0).all()  # a pixel has no orientation


def test_preferred_orientation_hand_computed() -> None:
    angles = (0.0, 45.0, 90.0, 135.0)
    curves = np.array([[0, 0, 1, 0], [1, 1, 1, 1], [1, 0, 0, 1], [0, 0, 0, 0]], float)
    preferred, selectivity = preferred_orientation(curves, angles)
    np.testing.assert_allclose(selectivity, [1, 0, np.sqrt(2) / 2, 0], atol=1e-12)
    assert preferred[0] == pytest.approx(90) and preferred[2] == pytest.approx(157.5)  # between 135° and 0°


def test_shape_responses_prefer_the_matching_line(tiny: TargetCNN) -> None:
    r = shape_responses(tiny, CFG)
    assert r.shape == (8, 7) and (r >= 0).all() and (r[3:] == 0).all()
    assert SYNTH_SHAPES[int(r[VERTICAL].argmax())] == "vertical"
    assert SYNTH_SHAPES[int(r[HORIZONTAL].argmax())] == "horizontal"


def test_top_patches_hand_placed_pixels(tiny: TargetCNN) -> None:
    images = np.zeros((3, 28, 28), np.uint8)
    images[0, 10, 7] = 100
    images[1, 0, 1] = 255  # at the corner: its window reaches past the image
    images[2, 20, 20] = 200
    patches = top_patches(tiny, images, 2)
    assert len(patches) == 8 and all(len(p) == 2 for p in patches)
    first, second = patches[CENTRE]
    assert (first.index, first.row, first.col) == (1, 0, 0)
    assert first.value == pytest.approx(1 - 0.5)
    assert first.pixels.shape == (10, 10) and first.pixels[4, 5] == 255 and first.pixels.sum() == 255
    assert (second.index, second.row, second.col) == (2, 10, 10)
    assert second.value == pytest.approx(200 / 255 - 0.5) and second.pixels[4, 4] == 200


def test_describe_sentences() -> None:
    r = np.array([1.0, 1.0, 4.0, 1.0, 1.0, 1.0, 1.0])
    assert describe(3, r, 90.4, 0.712)[0] == ("Filter 3 responds most to verticals (4.00× its mean response to the "
                                              "other shapes), tuned to 90° (selectivity 0.71).")
    r = np.array([1.0, 1.0, 1.2, 1.0, 1.0, 1.0, 1.1])
    sentence, ratio = describe(0, r, 10, 0.05)
    assert ratio == pytest.approx(1.2 / (6.1 / 6))
    assert sentence == ("Filter 0 is weakly selective: it responds most to verticals (1.18× its mean response to the "
                        "other shapes) and nearly as much to corners (92%), with no clear preferred orientation "
                        "(selectivity 0.05).")
    assert describe(5, np.zeros(7), 0, 0)[0].startswith("Filter 5 does not respond to any shape type")
    assert "far above the others" in describe(1, np.eye(7)[4], 0, 1)[0]


def test_describe_filters_names_the_line_detectors(tiny: TargetCNN) -> None:
    images = np.stack([line_image(90), line_image(0)])
    profiles = describe_filters(tiny, CFG, images)
    assert [p.filter for p in profiles] == list(range(8))
    assert profiles[VERTICAL].sentence.startswith("Filter 0 responds most to verticals")
    assert profiles[HORIZONTAL].sentence.startswith("Filter 1 responds most to horizontals")
    assert "tuned to 90°" in profiles[VERTICAL].sentence
    assert "tuned to 0°" in profiles[HORIZONTAL].sentence or "tuned to 180°" in profiles[HORIZONTAL].sentence
    assert profiles[VERTICAL].best_shape == "vertical" and profiles[VERTICAL].ratio > 1.3
    assert profiles[VERTICAL].patches[0].index == 0 and profiles[HORIZONTAL].patches[0].index == 1
    assert all("does not respond" in p.sentence for p in profiles[3:])
    assert profiles[VERTICAL].tuning.shape == (len(CFG.angles),) and profiles[VERTICAL].shape_responses.shape == (7,)
