"""Interventions on conv1 with a tiny hand-set CNN (filter 0 sees vertical strokes, filter 1 horizontal ones),
and on conv2 with the shipped target."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.encoding.thresholds import ThresholdSet
from interp.interpreters.probe import bins_from_encodings
from interp.interventions import Intervention, apply_interventions, bin_value, intervene_image, run_intervened
from interp.target.activations import capture
from interp.target.cnn import TargetCNN

THRESHOLDS = ThresholdSet(name="hand", thresholds=[[0.0, 1.0, 2.0, 3.0]] * 8)


def hand_set_cnn() -> TargetCNN:
    """Filter 0: a vertical line detector (centre column +1, bias −4); filter 1: horizontal; 2–7 never fire."""
    torch.manual_seed(0)
    model = TargetCNN().eval()
    w = torch.zeros(8, 1, 9, 9)
    w[0, 0, :, 4] = 1.0
    w[1, 0, 4, :] = 1.0
    b = torch.full((8,), -1.0)
    b[:2] = -4.0
    with torch.no_grad():
        model.conv1[0].weight.copy_(w)
        model.conv1[0].bias.copy_(b)
    return model


def vertical() -> np.ndarray:
    img = np.zeros((28, 28), np.uint8)
    img[4:24, 13] = 255
    return img


def horizontal() -> np.ndarray:
    img = np.zeros((28, 28), np.uint8)
    img[14, 4:24] = 255
    return img


class BinReader:
    """A fake interpreter that reads the bins: a vertical if filter 0 fires anywhere, a horizontal if filter 1 does."""

    name, encoder, thresholds = "bin-reader", "paper", None

    def __init__(self) -> None:
        self.calls: list[int] = []

    def describe(self, encodings, max_new_tokens=48):
        self.calls.append(len(encodings))
        out = []
        for b in bins_from_encodings(list(encodings), "paper"):
            items = [name for f, name in ((0, "vertical"), (1, "horizontal")) if b[f].any()]
            out.append(f"Image with {len(items)} shape{'s' if len(items) != 1 else ''}"
                       + (": " + ", ".join(f"1 {i}" for i in items) if items else ""))
        return out


def test_interventions_validate_their_fields() -> None:
    for bad in [dict(filter=-1), dict(filter=1.5), dict(filter=0, op="erase"), dict(filter=0, op="scale", value=4),
                dict(filter=0, op="scale", value=None), dict(filter=0, op="clamp", value="x")]:
        with pytest.raises(ValueError):
            Intervention(**bad)
    assert Intervention(3, "scale", 1.5).label == "scale filter 3 ×1.5"
    assert Intervention.from_dict(Intervention(2, "clamp", "h").to_dict()) == Intervention(2, "clamp", "h")


def test_apply_ablates_scales_and_clamps_only_the_chosen_filter() -> None:
    acts = torch.arange(2 * 8 * 14 * 14, dtype=torch.float32).reshape(2, 8, 14, 14) % 5
    out = apply_interventions(acts, [Intervention(1, "ablate"), Intervention(2, "scale", 2.0),
                                     Intervention(3, "clamp", "h")], THRESHOLDS)
    assert (out[:, 1] == 0).all() and torch.equal(out[:, 2], acts[:, 2] * 2)
    assert set(out[:, 3].unique().tolist()) == {0.0, bin_value(THRESHOLDS, 3, "h")} == {0.0, 2.5}
    assert torch.equal((out[:, 3] > 0), (acts[:, 3] > 0))  # clamped where it fired, nowhere else
    assert torch.equal(out[:, [0, 4, 5, 6, 7]], acts[:, [0, 4, 5, 6, 7]])
    assert bin_value(THRESHOLDS, 0, "v") == 3.5 and bin_value(THRESHOLDS, 0, "z") == 0.0


def test_the_hook_changes_the_prediction_and_is_removed() -> None:
    model = hand_set_cnn()
    images = np.stack([vertical(), horizontal()])
    acts, probs = run_intervened(model, images, [])
    ablated, probs_ablated = run_intervened(model, images, [Intervention(0, "ablate")])
    assert acts[0, 0].max() > 0 and ablated[0, 0].max() == 0 and np.array_equal(acts[:, 1:], ablated[:, 1:])
    assert not np.allclose(probs[0], probs_ablated[0])  # conv2 and the classifier saw the change
    assert np.allclose(probs[1], probs_ablated[1])  # filter 0 never fired on the horizontal stroke
    assert not model.conv1._forward_hooks  # nothing left behind


def test_intervene_image_shows_the_shape_that_disappears() -> None:
    model, reader = hand_set_cnn(), BinReader()
    result = intervene_image(model, vertical(), [Intervention(0, "ablate")], THRESHOLDS, describe=reader.describe)
    assert result.description_before == "Image with 1 shape: 1 vertical"
    assert result.description_after == "Image with 0 shapes"
    assert result.changed == {"vertical": (1, 0)} and result.changed_cells > 0
    assert result.after.encoding != result.before.encoding and reader.calls == [2]  # one batch of two
    same = intervene_image(model, vertical(), [Intervention(1, "ablate")], THRESHOLDS, describe=reader.describe)
    assert same.changed == {} and same.changed_cells == 0 and reader.calls == [2, 1]  # one encoding, read once
    cache: dict[str, str] = {}
    intervene_image(model, vertical(), [Intervention(0, "scale", 0.5)], THRESHOLDS, describe=reader.describe,
                    cache=cache)
    intervene_image(model, vertical(), [Intervention(0, "scale", 0.2)], THRESHOLDS, describe=reader.describe,
                    cache=cache)
    assert reader.calls[2:] == [2, 1] and len(cache) == 3  # the original is read once, then only what changed


def test_a_filter_the_layer_lacks_is_refused_naming_the_layer() -> None:
    model = hand_set_cnn()
    with pytest.raises(ValueError, match=r"filter 8 is not a filter of conv1, which has 8 \(0..7\)"):
        run_intervened(model, vertical(), [Intervention(8, "ablate")])
    with pytest.raises(ValueError, match="filter 12 is not a filter of conv1"):
        apply_interventions(torch.zeros(8, 14, 14), [Intervention(12, "ablate")])
    with pytest.raises(ValueError, match="filter 8 is not a filter of conv1"):
        intervene_image(model, vertical(), [Intervention(8, "ablate")], THRESHOLDS, describe=BinReader().describe)
    with pytest.raises(ValueError, match=r"registered layer's maps .* got \[5, 14, 14\]"):
        apply_interventions(torch.zeros(5, 14, 14), [Intervention(0, "ablate")])
    assert not model.conv1._forward_hooks and not model.conv2._forward_hooks


def test_conv2_interventions_change_conv2_maps_only_downstream(target_model, conv2_thresholds, mnist) -> None:
    images = mnist.test.images[:16]
    before = capture(target_model, images, "conv2")
    fires = int(before.reshape(16, 16, -1).max(-1).sum(0).argmax())  # the conv2 filter that fires most
    acts, probs = run_intervened(target_model, images, [], conv2_thresholds, layer="conv2")
    ablated, probs_ablated = run_intervened(target_model, images, [Intervention(fires, "ablate"),
                                                                   Intervention(15, "scale", 2.0)],
                                            conv2_thresholds, layer="conv2")
    np.testing.assert_allclose(acts, before, rtol=1e-5, atol=1e-6)
    assert ablated.shape == (16, 16, 7, 7) and ablated[:, fires].max() == 0 < before[:, fires].max()
    np.testing.assert_allclose(ablated[:, 15], 2 * before[:, 15], rtol=1e-5, atol=1e-6)
    others = [f for f in range(16) if f not in (fires, 15)]
    np.testing.assert_allclose(ablated[:, others], before[:, others], rtol=1e-5, atol=1e-6)
    assert not np.allclose(probs, probs_ablated)  # the classifier after conv2 saw the change
    assert not target_model.conv2._forward_hooks

    clamped, _ = run_intervened(target_model, images, [Intervention(fires, "clamp", "h")], conv2_thresholds,
                                layer="conv2")
    values = np.unique(clamped[:, fires])  # 0 where it did not fire, the middle of its h bin where it did
    assert values[0] == 0 and len(values) == 2 and np.isclose(values[1], bin_value(conv2_thresholds, fires, "h"))
    assert np.array_equal(clamped[:, fires] > 0, before[:, fires] > conv2_thresholds.as_array()[fires, 0])

    result = intervene_image(target_model, images[int(before[:, fires].max((1, 2)).argmax())],
                             [Intervention(fires, "ablate")], conv2_thresholds, describe=BinReader().describe)
    assert result.before.layer == result.after.layer == "conv2" and result.after.bins.shape == (16, 7, 7)
    assert result.changed_cells > 0 and not result.after.bins[fires].any()
