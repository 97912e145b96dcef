"""interp.pipeline: one image → prediction, conv1 activations, bins, encoding and description."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.data.images import ImageError, prepare_drawing
from interp.encoding.encoders import LETTERS, encode_activations, list_encoders
from interp.encoding.thresholds import ThresholdSet
from interp.pipeline import (
    Analysis,
    analyze_image,
    count_tokens,
    describe_image,
    encode_image,
    encode_images,
    interpreter_layer,
    next_example,
    probe_reading,
    thresholds_for,
    to_npy_bytes,
)
from interp.settings import ROOT
from interp.target.activations import image_activations
from interp.target.cnn import TargetCNN, predict_proba
from tests.fakes import FakeInterpreter


@pytest.fixture(scope="module")
def default_thresholds() -> ThresholdSet:
    return ThresholdSet.load(ROOT / "assets" / "thresholds" / "default.json")


def constant_model(conv1_bias: list[float], fc_bias: list[float]) -> TargetCNN:
    """All weights 0: conv1 maps are relu(bias) everywhere and the logits are fc's bias."""
    model = TargetCNN()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.conv1[0].bias.copy_(torch.tensor(conv1_bias))
        model.fc.bias.copy_(torch.tensor(fc_bias))
    return model.eval()


def test_hand_set_model_gives_exact_levels_and_prediction():
    bias = [0.0, 0.375, 0.75, 1.5, 2.5, -1.0, 0.25, 0.5]  # binary fractions: exact in float32
    fc = [0.0] * 10
    fc[3] = np.log(3.0)  # softmax: 3 / 12 for digit 3, 1 / 12 for the others
    thresholds = np.tile([0.25, 0.5, 1.0, 2.0], (8, 1))
    result = analyze_image(constant_model(bias, fc), np.zeros((28, 28), np.uint8), thresholds)

    want_levels = [0, 1, 2, 3, 4, 0, 0, 1]  # a ≤ t1 is z; t1 < a ≤ t2 is l; ...; a > t4 is v
    assert result.prediction == 3
    np.testing.assert_allclose(result.probabilities, [1 / 12] * 3 + [3 / 12] + [1 / 12] * 6, rtol=1e-6)
    np.testing.assert_allclose(result.activations, np.maximum(bias, 0)[:, None, None] * np.ones((8, 14, 14)))
    assert result.bins.dtype == np.int8 and result.bins.shape == (8, 14, 14)
    assert (result.bins == np.array(want_levels)[:, None, None]).all()
    assert result.encoding == "".join("f" + LETTERS[k] * 196 for k in want_levels)
    assert result.encoder == "paper" and result.n_chars == 1576
    assert result.letters[4, 13, 0] == "v" and result.letters.shape == (8, 14, 14)


def test_blank_image_is_all_z_with_the_default_thresholds(target_model, default_thresholds):
    result = analyze_image(target_model, np.zeros((28, 28), np.uint8), default_thresholds)
    assert (result.bins == 0).all()
    assert result.encoding == ("f" + "z" * 196) * 8
    assert result.activations.dtype == np.float32 and (result.activations > 0).any()  # biases: small, not 0


@pytest.mark.parametrize("encoder", list_encoders())
def test_matches_the_separate_stages(target_model, default_thresholds, mnist, encoder):
    image = mnist.test.images[7]
    result = analyze_image(target_model, image, default_thresholds, encoder)
    # One thread vs several sums in another order: the same activations up to float32 rounding.
    np.testing.assert_allclose(result.activations, image_activations(target_model, image), rtol=1e-5, atol=1e-6)
    assert result.encoding == encode_activations(result.activations, default_thresholds, encoder)[0]
    assert result.n_chars == len(result.encoding)
    np.testing.assert_allclose(result.probabilities, predict_proba(target_model, image[None])[0], rtol=1e-5, atol=1e-7)
    assert result.prediction == int(predict_proba(target_model, image[None])[0].argmax())
    assert result.prediction == mnist.test.labels[7]
    assert isinstance(result, Analysis)


def test_hook_is_removed_and_errors_are_clear(target_model, default_thresholds):
    analyze_image(target_model, np.zeros((28, 28), np.uint8), default_thresholds)
    assert not target_model.conv1._forward_hooks
    with pytest.raises(ValueError, match="28×28"):
        analyze_image(target_model, np.zeros((32, 32), np.uint8), default_thresholds)
    with pytest.raises(ValueError, match="unknown encoder"):
        analyze_image(target_model, np.zeros((28, 28), np.uint8), default_thresholds, "morse")
    with pytest.raises(ValueError, match="non-decreasing"):
        analyze_image(target_model, np.zeros((28, 28), np.uint8), np.tile([0.1, 0.5, 0.4, 1.0], (8, 1)))
    assert not target_model.conv1._forward_hooks


def test_conv2_hand_set_model_gives_exact_levels():
    """conv1 off, conv2 biases only: every conv2 map is relu(bias), binned with a [16, 4] table."""
    model = constant_model([0.0] * 8, [0.0] * 10)
    bias = [0.0, 0.375, 0.75, 1.5, 2.5, -1.0, 0.25, 0.5] * 2
    with torch.no_grad():
        model.conv2[0].bias.copy_(torch.tensor(bias))
    thresholds = ThresholdSet("c2", np.tile([0.25, 0.5, 1.0, 2.0], (16, 1)), layer="conv2")
    result = analyze_image(model, np.zeros((28, 28), np.uint8), thresholds, "rle", layer="conv2")
    want_levels = [0, 1, 2, 3, 4, 0, 0, 1] * 2
    assert result.layer == "conv2" and result.activations.shape == result.bins.shape == (16, 7, 7)
    np.testing.assert_allclose(result.activations, np.maximum(bias, 0)[:, None, None] * np.ones((16, 7, 7)))
    assert (result.bins == np.array(want_levels)[:, None, None]).all()
    assert result.encoding == "".join("fz49" if k == 0 else "f" + LETTERS[k] * 49 for k in want_levels)
    assert encode_image(model, np.zeros((28, 28), np.uint8), thresholds, "paper", "conv2") == "".join(
        "f" + LETTERS[k] * 49 for k in want_levels)


def test_conv2_analysis_matches_capture_and_refuses_a_conv1_set(target_model, default_thresholds, mnist):
    from interp.target.activations import capture

    image = mnist.test.images[3]
    table = np.tile([0.0, 0.5, 1.0, 2.0], (16, 1))
    result = analyze_image(target_model, image, table, "compact", layer="conv2")
    np.testing.assert_allclose(result.activations, capture(target_model, image, "conv2")[0], rtol=1e-5, atol=1e-6)
    assert result.encoding == encode_activations(result.activations, table, "compact")[0]
    assert not target_model.conv2._forward_hooks
    with pytest.raises(ValueError, match=r"threshold set 'default' was made for conv1 \(8 filters\), but these "
                                         r"activations are conv2's \[16, 7, 7\]: use a conv2 threshold set"):
        analyze_image(target_model, image, default_thresholds, layer="conv2")
    with pytest.raises(ValueError, match="unknown layer 'fc'"):
        analyze_image(target_model, image, default_thresholds, layer="fc")


def test_a_drawn_stroke_becomes_a_non_blank_encoding(target_model, default_thresholds):
    canvas = np.zeros((280, 280, 4), np.uint8)
    canvas[..., 3] = 255  # the app's canvas has an opaque black background
    canvas[40:240, 130:148, :3] = 255  # a vertical white stroke: a "1"
    image = prepare_drawing(canvas)
    result = analyze_image(target_model, image, default_thresholds)
    assert result.prediction == 1
    assert (result.bins > 0).any()
    with pytest.raises(ImageError, match="empty"):
        prepare_drawing(np.dstack([np.zeros((280, 280, 3), np.uint8), np.full((280, 280), 255, np.uint8)]))
    with pytest.raises(ImageError, match="canvas is empty"):
        prepare_drawing(None)


class _CharTokenizer:
    """Stands in for a Hugging Face tokenizer: one token per pair of characters, plus a BOS if asked."""

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict:
        ids = list(range((len(text) + 1) // 2))
        return {"input_ids": ([0] if add_special_tokens else []) + ids}


def test_count_tokens():
    assert count_tokens("fzzz", None) is None
    assert count_tokens("fzzzz", _CharTokenizer()) == 3  # special tokens are not counted
    assert count_tokens("", _CharTokenizer()) == 0


def test_count_tokens_with_smollm2_if_fetched():
    from interp.interpreters.models import ModelUnavailable, load_tokenizer

    try:
        tok = load_tokenizer("smollm2-135m", ROOT / "data" / "models")
    except (ModelUnavailable, OSError, KeyError):
        pytest.skip("SmolLM2 tokenizer not fetched")
    assert count_tokens("f" + "z" * 196, tok) == len(tok("f" + "z" * 196, add_special_tokens=False)["input_ids"])
    assert count_tokens("Image with 1 shape: 1 corner", tok) < 12


def test_next_example_wraps_around():
    labels = np.array([3, 1, 3, 0, 3])
    assert next_example(labels, 3) == 0
    assert next_example(labels, 3, after=0) == 2
    assert next_example(labels, 3, after=2) == 4
    assert next_example(labels, 3, after=4) == 0
    assert next_example(labels, 1, after=1) == 1
    with pytest.raises(ValueError, match="no image with label 7"):
        next_example(labels, 7)


def test_npy_bytes_round_trip():
    import io

    acts = np.random.default_rng(0).random((8, 14, 14), dtype=np.float32)
    back = np.load(io.BytesIO(to_npy_bytes(acts)), allow_pickle=False)
    assert back.dtype == np.float32 and np.array_equal(back, acts)


def test_an_upload_of_dark_ink_on_grey_paper_becomes_white_on_black(target_model, default_thresholds):
    import io

    from PIL import Image

    from interp.data.images import prepare_upload

    page = np.full((300, 240), 230, np.uint8)  # light grey paper, not pure white
    page[40:260, 110:130] = 20  # a dark vertical stroke
    buf = io.BytesIO()
    Image.fromarray(page).save(buf, "PNG")
    original, image = prepare_upload(buf.getvalue())
    assert original.shape == (300, 240)
    assert image[:, :8].max() == 0 and image[:, -8:].max() == 0  # the paper is black, as in MNIST
    assert image.max() == 255
    assert analyze_image(target_model, image, default_thresholds).prediction == 1


def test_single_thread_restores_the_thread_count(target_model, default_thresholds):
    from interp.target.activations import single_thread

    before = torch.get_num_threads()
    with single_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    analyze_image(target_model, np.zeros((28, 28), np.uint8), default_thresholds)
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), single_thread():
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("encoder", ["paper", "compact"])
def test_one_image_and_the_batch_path_agree_with_the_stages(target_model, default_thresholds, mnist, encoder):
    images = mnist.test.images[:5]
    expected = [encode_activations(image_activations(target_model, im), default_thresholds, encoder)[0] for im in images]
    assert encode_images(target_model, images, default_thresholds, encoder) == expected
    assert [encode_image(target_model, im, default_thresholds, encoder) for im in images] == expected


def test_thresholds_for_prefers_the_interpreters_own_set(default_thresholds):
    own = ThresholdSet(name="own", thresholds=default_thresholds.as_array() * 2)
    calls = []

    def active():
        calls.append(1)
        return default_thresholds

    assert thresholds_for(own, active) is own and not calls  # the fallback is not even computed
    assert thresholds_for(own.to_dict(), active) == own
    assert thresholds_for(None, active) is default_thresholds and calls == [1]
    assert thresholds_for(None, default_thresholds) is default_thresholds


def test_encode_images_of_conv2_match_the_stages_and_refuse_a_set_of_the_other_layer(
        target_model, default_thresholds, conv2_thresholds, mnist):
    from interp.target.activations import capture

    images = mnist.test.images[:4]
    texts = encode_images(target_model, images, conv2_thresholds, "rle", layer="conv2")
    assert texts == encode_activations(capture(target_model, images, "conv2"), conv2_thresholds, "rle")
    assert texts == [encode_image(target_model, im, conv2_thresholds, "rle", "conv2") for im in images]
    with pytest.raises(ValueError, match=r"threshold set 'c2' was made for conv2 \(16 filters\), but these "
                                         r"activations are conv1's \[8, 14, 14\]"):
        encode_images(target_model, images, conv2_thresholds)
    with pytest.raises(ValueError, match="threshold set 'default' was made for conv1"):
        encode_images(target_model, images, default_thresholds, layer="conv2")


def test_thresholds_for_refuses_a_set_of_another_layer(default_thresholds, conv2_thresholds):
    assert interpreter_layer(FakeInterpreter(str)) == "conv1"
    assert interpreter_layer(object()) == "conv1"  # made before layers: conv1
    assert interpreter_layer(FakeInterpreter(str, layer="conv2")) == "conv2"
    assert thresholds_for(conv2_thresholds.to_dict(), default_thresholds, "conv2") == conv2_thresholds
    assert thresholds_for(None, lambda: conv2_thresholds, "conv2") is conv2_thresholds
    with pytest.raises(ValueError, match=r"this interpreter reads conv2 \[16, 7, 7\]; threshold set 'default' was "
                                         r"made for conv1: give it a conv2 threshold set"):
        thresholds_for(None, default_thresholds, "conv2")
    with pytest.raises(ValueError, match=r"reads conv1 \[8, 14, 14\]; threshold set 'c2' was made for conv2"):
        thresholds_for(conv2_thresholds, default_thresholds)


def test_describe_image_and_probe_reading_encode_the_readers_own_layer(target_model, conv2_thresholds, mnist):
    image = mnist.test.images[0]
    seen = []
    fake = FakeInterpreter(lambda e: seen.append(e) or "Image with 1 shape: 1 corner", layer="conv2")
    said = describe_image(fake, target_model, image, conv2_thresholds)
    assert seen == [encode_image(target_model, image, conv2_thresholds, "paper", "conv2")] and len(seen[0]) == 800
    assert said.thresholds == "c2" and said.counts["corner"] == 1

    probe = FakeInterpreter(lambda e: seen.append(e) or "Image with 1 shape: 1 ellipse", encoder="compact",
                            thresholds=conv2_thresholds, layer="conv2")
    assert probe_reading(probe, target_model, image, lambda: pytest.fail("the probe has its own"))["ellipse"] == 1
    assert seen[-1] == encode_image(target_model, image, conv2_thresholds, "compact", "conv2")


def test_describe_image_encodes_with_the_interpreters_encoder_and_parses(target_model, default_thresholds, mnist):
    seen = []

    def reply(encoding: str) -> str:
        seen.append(encoding)
        return "Image with 2 shapes: 1 corner, 1 ellipse"

    fake = FakeInterpreter(reply, encoder="compact")
    said = describe_image(fake, target_model, mnist.test.images[0], default_thresholds)
    assert seen == [encode_image(target_model, mnist.test.images[0], default_thresholds, "compact")]
    assert said.encoding == seen[0] and said.thresholds == default_thresholds.name
    assert said.text == "Image with 2 shapes: 1 corner, 1 ellipse" and said.well_formed
    assert said.counts["corner"] == 1 and said.counts["ellipse"] == 1 and sum(said.counts.values()) == 2
    garbled = describe_image(FakeInterpreter(lambda _: "hhhvz"), target_model, mnist.test.images[0], default_thresholds)
    assert not garbled.well_formed and sum(garbled.counts.values()) == 0
