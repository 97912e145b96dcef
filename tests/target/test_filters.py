"""interp.target.filters on tiny conv1 weights set by hand, where the right answer is exact or has a clear sign."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.target.cnn import TargetCNN, to_input
from interp.target.filters import (
    ATTRIBUTION_METHODS,
    DreamConfig,
    FilterActivation,
    attribute,
    dream,
    filter_weights,
    receptive_field,
)

CENTRE, VERTICAL, HORIZONTAL = 0, 1, 2


@pytest.fixture
def tiny() -> TargetCNN:
    """conv1 filters: 0 = the centre pixel only (weight 1), 1 = a vertical edge (bright left of dark),
    2 = its transpose (a horizontal edge); the others 0. No biases."""
    model = TargetCNN().eval()
    w = torch.zeros(8, 1, 9, 9)
    w[CENTRE, 0, 4, 4] = 1.0
    w[VERTICAL, 0, :, :4] = 1.0
    w[VERTICAL, 0, :, 5:] = -1.0
    w[HORIZONTAL, 0] = w[VERTICAL, 0].T
    with torch.no_grad():
        model.conv1[0].weight.copy_(w)
        model.conv1[0].bias.zero_()
    return model


def _state(model: torch.nn.Module) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _hooks(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def test_filter_weights(tiny: TargetCNN) -> None:
    w = filter_weights(tiny)
    assert w.shape == (8, 9, 9) and w.dtype == np.float32
    assert w[CENTRE].sum() == 1 and w[CENTRE, 4, 4] == 1
    np.testing.assert_array_equal(w[HORIZONTAL], w[VERTICAL].T)


def test_filter_activation_is_the_conv1_cell(tiny: TargetCNN) -> None:
    x = to_input(np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8))
    out = FilterActivation(tiny, 1, 4, 9)(x)
    assert out.shape == (3,)
    torch.testing.assert_close(out, tiny.conv1(x)[:, 1, 4, 9])
    with pytest.raises(ValueError, match="position"):
        FilterActivation(tiny, 0, 14, 0)
    with pytest.raises(ValueError, match="filter"):
        FilterActivation(tiny, 8, 0, 0)


@pytest.mark.parametrize("method", ["integrated_gradients", "saliency", "input_x_gradient"])
def test_centre_filter_attributes_only_the_pooled_maximum(tiny: TargetCNN, method: str) -> None:
    """Filter 0 copies the input; after the 2×2 max-pool, cell (r, c) is the brightest pixel of its block.

    Only that pixel can be attributed: IG gives exactly its value (completeness, baseline 0), saliency
    the gradient 1, input × gradient the value again.
    """
    image = np.zeros((28, 28), np.uint8)
    image[10:12, 6:8] = [[40, 200], [90, 10]]  # block of pooled cell (5, 3); its max sits at (10, 7)
    image[0:4, 20:24] = 255  # elsewhere: outside the receptive field, must not matter
    attr = attribute(tiny, image, CENTRE, 5, 3, method)
    assert attr.shape == (28, 28) and attr.dtype == np.float32
    expected = np.zeros((28, 28), np.float32)
    expected[10, 7] = 1.0 if method == "saliency" else 200 / 255
    np.testing.assert_allclose(attr, expected, atol=1e-6)


def test_vertical_edge_attribution_has_the_filters_signs(tiny: TargetCNN) -> None:
    image = np.zeros((28, 28), np.uint8)
    image[:, :14] = 255  # bright left half, dark right: the vertical filter fires on the boundary
    r, c = 7, 7  # pooled cell over input (14..15, 14..15): bright pixels are to its left
    attr = attribute(tiny, image, VERTICAL, r, c, "integrated_gradients")
    rows, cols = receptive_field(r, c)
    outside = np.ones((28, 28), bool)
    outside[rows, cols] = False
    assert (attr[outside] == 0).all()
    assert attr[:, :14].sum() > 0 and (attr[:, :14] >= 0).all()  # bright pixels under + weights raise it
    assert (attr[:, 14:] == 0).all()  # black pixels contribute nothing (their value is the baseline)
    act = tiny.conv1(to_input(image))[0, VERTICAL, r, c].item()
    assert attr.sum() == pytest.approx(act, rel=1e-3)  # completeness: a(x) - a(black), a(black) = 0


def test_attribution_leaves_the_model_as_it_was(tiny: TargetCNN) -> None:
    before = _state(tiny)
    threads = torch.get_num_threads()
    tiny.train()
    image = np.random.default_rng(1).integers(0, 256, (28, 28), dtype=np.uint8)
    for method in ATTRIBUTION_METHODS:
        attribute(tiny, image, VERTICAL, 3, 4, method)
    assert torch.get_num_threads() == threads  # the one-thread block restores the setting
    assert tiny.training  # mode restored
    assert _hooks(tiny) == 0
    assert all(p.grad is None and p.requires_grad for p in tiny.parameters())
    for k, v in tiny.state_dict().items():
        torch.testing.assert_close(v, before[k])
    with pytest.raises(ValueError, match="unknown attribution method"):
        attribute(tiny, image, 0, 0, 0, "occlusion")


def test_attribution_on_the_real_target_stays_in_the_receptive_field(target_model) -> None:
    image = np.zeros((28, 28), np.uint8)
    image[6:22, 12:15] = 255  # a "1"
    image[6:9, 9:13] = 180
    acts = target_model.conv1(to_input(image))[0].detach().numpy()
    f, r, c = np.unravel_index(acts.argmax(), acts.shape)
    attr = attribute(target_model, image, int(f), int(r), int(c))
    rows, cols = receptive_field(int(r), int(c))
    inside = np.zeros((28, 28), bool)
    inside[rows, cols] = True
    assert (attr[~inside] == 0).all() and np.abs(attr[inside]).sum() > 0
    blank = target_model.conv1(torch.zeros(1, 1, 28, 28))[0, f, r, c].item()
    assert attr.sum() == pytest.approx(acts[f, r, c] - blank, rel=0.05)


def test_receptive_field_is_clipped_at_the_border() -> None:
    assert receptive_field(0, 13) == (slice(0, 6), slice(22, 28))
    assert receptive_field(7, 7) == (slice(10, 20), slice(10, 20))


def test_dream_vertical_edge_filter_grows_vertical_structure(tiny: TargetCNN) -> None:
    before = _state(tiny)
    threads = torch.get_num_threads()
    images = dream(tiny)
    assert torch.get_num_threads() == threads
    assert images.shape == (8, 28, 28) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1

    def structure(x: np.ndarray) -> tuple[float, float]:
        """(change across columns, change across rows): vertical stripes vary across columns."""
        return float(np.abs(np.diff(x, axis=1)).mean()), float(np.abs(np.diff(x, axis=0)).mean())

    across_cols, across_rows = structure(images[VERTICAL])
    assert across_cols > 3 * across_rows and images[VERTICAL].std() > 0.1
    across_cols, across_rows = structure(images[HORIZONTAL])
    assert across_rows > 3 * across_cols
    # The centre filter only wants bright pixels: its image ends up brighter than the start noise.
    assert images[CENTRE].mean() > 0.5
    assert _hooks(tiny) == 0 and all(p.grad is None for p in tiny.parameters())
    for k, v in tiny.state_dict().items():
        torch.testing.assert_close(v, before[k])


def test_dream_is_seeded_and_centre_objective_is_local(tiny: TargetCNN) -> None:
    cfg = DreamConfig(objective="centre", steps=24)
    a, b = dream(tiny, cfg), dream(tiny, cfg)
    np.testing.assert_array_equal(a, b)
    # Only the centre cell's 9×9 receptive field is pushed: bright where the weights are +, dark where -,
    # and the L2 penalty keeps the rest of the image near black.
    v = a[VERTICAL]
    assert v[10:19, 10:14].mean() > 0.5 and v[10:19, 15:19].mean() < 0.1
    assert v[:5].mean() < 0.05 and v[:, 24:].mean() < 0.05


@pytest.mark.parametrize("bad", [dict(objective="edges"), dict(steps=0), dict(lr=0), dict(init_scale=2.0)])
def test_dream_config_rejects_bad_values(bad: dict) -> None:
    with pytest.raises(ValueError):
        DreamConfig(**bad)
