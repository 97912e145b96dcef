"""The layer registry, and capture of any registered layer through the real TargetCNN forward."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from interp.target.activations import blank_response, capture, capture_conv1, image_activations
from interp.target.cnn import TargetCNN, to_input
from interp.target.layers import (
    DEFAULT_LAYER,
    LAYERS,
    Layer,
    get_layer,
    layer_of_channels,
    layer_of_shape,
    list_layers,
    shapes_text,
)


def _hooks(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


def test_registry_holds_conv1_and_conv2_in_network_order() -> None:
    assert list_layers() == ["conv1", "conv2"] and DEFAULT_LAYER == "conv1"
    conv1, conv2 = get_layer("conv1"), get_layer("conv2")
    assert (conv1.channels, conv1.side, conv1.cells, conv1.shape) == (8, 14, 196, (8, 14, 14))
    assert (conv2.channels, conv2.side, conv2.cells, conv2.shape) == (16, 7, 49, (16, 7, 7))
    assert get_layer(conv2) is conv2
    with pytest.raises(dataclasses.FrozenInstanceError):
        conv1.side = 7  # type: ignore[misc]
    assert conv1.describe() == "[8, 14, 14] (conv1)" and conv2.describe("b") == "[b, 16, 7, 7] (conv2)"
    assert shapes_text("n") == "[n, 8, 14, 14] (conv1) or [n, 16, 7, 7] (conv2)"


def test_unknown_layer_names_the_registered_ones() -> None:
    with pytest.raises(ValueError, match=r"^unknown layer 'fc'; registered: conv1, conv2$"):
        get_layer("fc")
    with pytest.raises(ValueError, match="at least|channels"):
        Layer("bad", channels=0, side=3, module="conv1")


def test_layer_of_a_shape_or_a_channel_count() -> None:
    assert layer_of_shape((8, 14, 14)).name == "conv1"
    assert layer_of_shape((3, 8, 14, 14)).name == "conv1"
    assert layer_of_shape((16, 7, 7)).name == "conv2"
    assert layer_of_shape(np.zeros((2, 16, 7, 7)).shape).name == "conv2"
    for bad in [(8, 14), (16, 14, 14), (1, 1, 8, 14, 14), (8, 7, 7)]:
        with pytest.raises(ValueError, match=r"\[b, 8, 14, 14\] \(conv1\) or \[b, 16, 7, 7\] \(conv2\)"):
            layer_of_shape(bad)
    assert layer_of_channels(16) is LAYERS["conv2"] and layer_of_channels(8) is LAYERS["conv1"]
    assert layer_of_channels(10) is None


def test_every_layer_module_is_a_block_of_the_target() -> None:
    model = TargetCNN()
    x = to_input(np.zeros((2, 28, 28), np.uint8))
    for layer in LAYERS.values():
        block = getattr(model, layer.module)
        x = block(x)
        assert tuple(x.shape[1:]) == layer.shape


def test_capture_conv2_shape_values_and_no_hook_left(target_model, mnist) -> None:
    images = mnist.test.images[:10]
    acts = capture(target_model, images, "conv2")
    assert acts.shape == (10, 16, 7, 7) and acts.dtype == np.float32 and (acts >= 0).all()
    assert _hooks(target_model) == 0
    with torch.no_grad():
        expected = target_model.conv2(target_model.conv1(to_input(images))).numpy()
    np.testing.assert_allclose(acts, expected, rtol=1e-5, atol=1e-6)
    # batching does not change what is captured
    np.testing.assert_allclose(capture(target_model, images, "conv2", batch_size=3), acts, rtol=1e-6, atol=1e-7)


def test_capture_conv1_is_capture_on_conv1(target_model, mnist) -> None:
    images = mnist.test.images[:4]
    np.testing.assert_array_equal(capture(target_model, images), capture_conv1(target_model, images))
    np.testing.assert_array_equal(capture(target_model, images, "conv1"), capture_conv1(target_model, images))
    assert capture(target_model, images[:0], "conv2").shape == (0, 16, 7, 7)
    with pytest.raises(ValueError, match="unknown layer 'conv3'"):
        capture(target_model, images, "conv3")
    assert _hooks(target_model) == 0


def test_single_image_and_blank_response_of_conv2(target_model) -> None:
    img = np.zeros((28, 28), np.uint8)
    img[5:23, 13:15] = 255
    assert image_activations(target_model, img, "conv2").shape == (16, 7, 7)
    blank = blank_response(target_model, "conv2")
    assert blank.shape == (16,) and (blank >= 0).all()
    assert blank_response(target_model).shape == (8,)
