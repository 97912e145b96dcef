"""Conv1 activation capture: shape, values, and a hook that never outlives its block."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.target.activations import blank_response, capture_conv1, hooked, image_activations
from interp.target.cnn import TargetCNN, to_input


def _hooks(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


def test_capture_shape_values_and_no_hook_left(target_model, mnist) -> None:
    acts = capture_conv1(target_model, mnist.test.images[:10])
    assert acts.shape == (10, 8, 14, 14) and acts.dtype == np.float32
    assert (acts >= 0).all()
    assert _hooks(target_model) == 0
    expected = target_model.conv1(to_input(mnist.test.images[:10])).detach().numpy()
    np.testing.assert_allclose(acts, expected, rtol=1e-5, atol=1e-6)


def test_hook_removed_when_forward_raises() -> None:
    model = TargetCNN()
    with pytest.raises(RuntimeError), hooked(model.conv1):
        assert _hooks(model) == 1
        model(torch.zeros(1, 1, 5, 5))  # wrong size for fc → raises inside the block
    assert _hooks(model) == 0


def test_single_image_and_blank_response(target_model) -> None:
    img = np.zeros((28, 28), np.uint8)
    img[5:23, 13:15] = 255
    assert image_activations(target_model, img).shape == (8, 14, 14)
    blank = blank_response(target_model)
    assert blank.shape == (8,) and (blank >= 0).all()
    assert image_activations(target_model, img).max() > blank.max()


def test_hand_set_conv_gives_exact_values() -> None:
    model = TargetCNN()
    with torch.no_grad():
        model.conv1[0].weight.zero_()
        model.conv1[0].bias.zero_()
        model.conv1[0].weight[2, 0, 4, 4] = 1.0  # filter 2 copies the pixel
        model.conv1[0].bias[5] = -1.0  # filter 5 is always negative → 0 after ReLU
    img = np.zeros((28, 28), np.uint8)
    img[10, 6] = 255
    acts = capture_conv1(model, img)[0]
    assert acts[2, 5, 3] == pytest.approx(1.0)  # max-pool cell (10//2, 6//2)
    assert acts[2].sum() == pytest.approx(1.0)
    assert acts[5].max() == 0.0
