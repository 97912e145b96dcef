"""The effect map with a tiny hand-set CNN whose filters are known: ablating the vertical filter removes the verticals."""

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
