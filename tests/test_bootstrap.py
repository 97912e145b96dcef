"""interp.bootstrap: a fresh store gets each layer's committed default threshold set."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from interp.bootstrap import ensure_store, shipped_thresholds_path
from interp.encoding.thresholds import ThresholdSet
from interp.settings import ROOT, Paths
from interp.store.db import Store


@pytest.fixture
def fresh(tmp_path: Path) -> Paths:
    """A store in tmp_path and an assets folder holding only conv1's committed default."""
    (tmp_path / "assets" / "thresholds").mkdir(parents=True)
    shutil.copy(ROOT / "assets" / "thresholds" / "default.json", tmp_path / "assets" / "thresholds")
    return replace(Paths(), assets_dir=tmp_path / "assets", db_path=tmp_path / "s.duckdb")


def test_the_shipped_files_are_named_by_layer() -> None:
    assert shipped_thresholds_path(Path("a")) == Path("a/thresholds/default.json")
    assert shipped_thresholds_path(Path("a"), "conv2") == Path("a/thresholds/conv2-default.json")


def test_each_layers_shipped_default_becomes_the_stores(fresh: Paths, conv2_thresholds) -> None:
    [line] = ensure_store(fresh)
    assert line.endswith("(default threshold set conv1 'default')")
    store = Store(fresh.db_path)
    assert store.get_threshold_set(layer="conv2") is None  # none shipped: none loaded

    ThresholdSet("conv2-default", conv2_thresholds.thresholds, layer="conv2").save(
        shipped_thresholds_path(fresh.assets_dir, "conv2"))
    [line] = ensure_store(fresh)
    assert line.endswith("(default threshold set conv1 'default', conv2 'conv2-default')")
    record = store.get_threshold_set(layer="conv2")
    assert record.name == "conv2-default" and record.layer == "conv2" and record.is_default
    assert store.get_threshold_set().name == "default"

    # A default the store already has is kept.
    store.save_threshold_set("mine", conv2_thresholds.as_array().tolist(), make_default=True, layer="conv2")
    list(ensure_store(fresh))
    assert store.get_threshold_set(layer="conv2").name == "mine"


def test_a_shipped_file_of_the_wrong_layer_is_refused(fresh: Paths) -> None:
    shutil.copy(fresh.assets_dir / "thresholds" / "default.json", shipped_thresholds_path(fresh.assets_dir, "conv2"))
    with pytest.raises(ValueError, match="conv2-default.json: a conv1 threshold set, expected conv2's"):
        list(ensure_store(fresh))
