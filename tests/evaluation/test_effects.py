"""The effect map with a tiny hand-set CNN whose filters are known (ablating the vertical filter removes the
verticals), and on conv2's 16 filters with the shipped target."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from interp.evaluation.effects import EffectConfig, EffectMap, effect_map, shape_effects
from interp.interventions import Intervention
from interp.language import SHAPES
from tests.test_interventions import THRESHOLDS, BinReader, hand_set_cnn, horizontal, vertical


def test_shape_effects_counts_removed_added_and_change() -> None:
    before = np.zeros((4, 8), int)
    after = np.zeros((4, 8), int)
    v, h = SHAPES.index("vertical"), SHAPES.index("horizontal")
    before[:, v] = [1, 1, 2, 0]
    after[:, v] = [0, 1, 0, 0]
    after[:, h] = [0, 0, 0, 2]
    e = shape_effects(before, after)
    assert e["vertical"] == {"detected": 4, "removed": 0.75, "added": 0.0, "mean_change": -0.75}
    assert e["horizontal"]["removed"] is None and e["horizontal"]["added"] == 0.5


def test_ablating_the_vertical_filter_removes_the_verticals_and_nothing_else(tmp_path: Path) -> None:
    model, reader = hand_set_cnn(), BinReader()
    images = np.stack([vertical(), horizontal(), vertical(), horizontal()])
    cfg = EffectConfig(n=4, n_mnist=4, interventions=(Intervention(0, "ablate"), Intervention(1, "ablate"),
                                                      Intervention(5, "ablate")))
    seen = []
    result = effect_map(model, images, reader, THRESHOLDS, cfg, probe=BinReader(),
                        mnist=(images, np.array([1, 7, 1, 7])), progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    table = result.table()
    assert table.loc["ablate filter 0", "vertical"] == 1.0 and table.loc["ablate filter 0", "horizontal"] == 0.0
    assert table.loc["ablate filter 1", "horizontal"] == 1.0 and table.loc["ablate filter 1", "vertical"] == 0.0
    assert table.loc["ablate filter 5"].fillna(0).eq(0).all()  # a filter that never fires changes nothing
    assert result.table("probe").equals(table)
    lines = result.summary()
    assert lines[0].startswith("Ablate filter 0 removes 100% of detected verticals (probe: 100%)")
    assert "digit accuracy" in lines[0] and lines[2].startswith("Ablate filter 5 removes no detected shape")
    # Each distinct encoding is described once: the 2 originals, then one empty map (the vertical without
    # filter 0 and the horizontal without filter 1 both leave nothing); filter 5 changes no encoding.
    assert reader.calls == [2, 1]
    again = EffectMap.load(result.save(tmp_path / "fx").parent)
    assert again.table().equals(table) and again.config == cfg


def test_a_broken_effect_map_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "effects.json").write_text("{")
    with pytest.raises(ValueError, match="effects.json"):
        EffectMap.load(tmp_path)
    with pytest.raises(ValueError):
        EffectConfig(interventions=())


def test_a_conv2_effect_map_ablates_each_of_its_16_filters(tmp_path: Path, target_model, conv2_thresholds,
                                                           mnist) -> None:
    images, labels = mnist.test.images[:6], mnist.test.labels[:6]
    reader = BinReader()  # reads conv2's filters 0 and 1 as "vertical" and "horizontal"
    result = effect_map(target_model, images, reader, conv2_thresholds, EffectConfig(n=6, n_mnist=6),
                        mnist=(images, labels))
    assert result.layer == "conv2" and len(result.rows) == 16
    assert result.config.interventions == tuple(Intervention(f, "ablate") for f in range(16))  # what it ran
    assert list(result.table().index) == [f"ablate filter {f}" for f in range(16)]
    assert result.table().loc[["ablate filter 0", "ablate filter 1"]].max().max() > 0  # the filters it reads
    assert result.table().loc["ablate filter 5"].fillna(0).eq(0).all()  # one it does not read
    again = EffectMap.load(result.save(tmp_path / "fx").parent)
    assert again.layer == "conv2" and again.config == result.config

    with pytest.raises(ValueError, match="filter 16 is not a filter of conv2, which has 16"):
        effect_map(target_model, images, BinReader(), conv2_thresholds,
                   EffectConfig(n=6, n_mnist=0, interventions=(Intervention(16, "ablate"),)))
    with pytest.raises(ValueError, match="the probe reads conv1, the interpreter conv2"):
        effect_map(target_model, images, BinReader(), conv2_thresholds, EffectConfig(n=6, n_mnist=0),
                   probe=BinReader(), probe_thresholds=THRESHOLDS)


def test_an_effect_map_saved_before_layers_is_conv1(tmp_path: Path) -> None:
    result = effect_map(hand_set_cnn(), np.stack([vertical()]), BinReader(), THRESHOLDS, EffectConfig(n=1, n_mnist=0))
    assert result.layer == "conv1" and len(result.rows) == 8
    d = result.to_dict()
    del d["layer"]
    assert EffectMap.from_dict(d).layer == "conv1"
