"""D_prep → D_interpret: rows, splits, hashes, annotated MNIST, registration in the store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from interp.encoding.encoders import get_encoder
from interp.encoding.thresholds import ThresholdSet
from interp.interpreters.dataset import DatasetConfig, build_dataset, build_dataset_in, split_rows
from interp.interpreters.prompt import build_prompt
from interp.language import parse_description
from interp.settings import ROOT

DEFAULT = ThresholdSet.load(ROOT / "assets" / "thresholds" / "default.json")


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_build_writes_consistent_rows(tmp_path: Path, target_model, mnist) -> None:
    cfg = DatasetConfig(name="t", n_synthetic=60, encoder="compact", val_share=0.1, test_share=0.1)
    annotations = [{"image_index": 3, "counts": {"vertical": 1, "crossing": 1}},
                   {"image_index": 3, "counts": {"vertical": 2}},  # newest annotation of an image wins
                   {"image_index": 7, "counts": {"ellipse": 1}}]
    manifest = build_dataset(cfg, target_model, DEFAULT, annotations, mnist.test.images, tmp_path / "t")
    assert (manifest["n_train"], manifest["n_val"], manifest["n_test"]) == (50, 6, 6)
    assert manifest["n_mnist"] == 2 and manifest["encoder"] == "compact"
    rows = [r for s in ("train", "val", "test") for r in _rows(tmp_path / "t" / f"{s}.jsonl")]
    assert len(rows) == 62
    for r in rows:
        assert r["prompt"] == build_prompt(r["encoding"], "compact")
        assert r["completion"] == r["description"] + "\n"
        parsed = parse_description(r["description"])
        assert parsed.well_formed and parsed.counts == r["counts"]
        assert get_encoder("compact").decode(r["encoding"]).shape == (8, 14, 14)
    mnist_rows = {r["index"]: r for r in rows if r["source"] == "mnist"}
    assert mnist_rows[3]["description"] == "Image with 2 shapes: 2 verticals"
    assert mnist_rows[7]["description"] == "Image with 1 shape: 1 ellipse"


def test_build_is_reproducible_and_hash_tracks_content(tmp_path: Path, target_model, mnist) -> None:
    a = build_dataset(DatasetConfig(n_synthetic=20), target_model, DEFAULT, [], mnist.test.images, tmp_path / "a")
    b = build_dataset(DatasetConfig(n_synthetic=20), target_model, DEFAULT, [], mnist.test.images, tmp_path / "b")
    c = build_dataset(DatasetConfig(n_synthetic=20, seed=1), target_model, DEFAULT, [], mnist.test.images,
                      tmp_path / "c")
    assert a["hash"] == b["hash"] != c["hash"]
    assert (tmp_path / "a" / "train.jsonl").read_bytes() == (tmp_path / "b" / "train.jsonl").read_bytes()


def test_splits_are_disjoint_and_cover_everything() -> None:
    rows = [{"i": i} for i in range(100)]
    splits = split_rows(rows, DatasetConfig(val_share=0.1, test_share=0.2))
    ids = [r["i"] for s in splits.values() for r in s]
    assert sorted(ids) == list(range(100))
    assert (len(splits["train"]), len(splits["val"]), len(splits["test"])) == (70, 10, 20)


def test_build_in_project_uses_the_stores_annotations_and_lands_in_the_catalog(paths) -> None:
    from interp.bootstrap import ensure_store
    from interp.catalog import dataset_folders
    from interp.store.db import Store

    list(ensure_store(paths))
    Store(paths.db_path).save_annotation("ann", "mnist", 0, {"corner": 1}, "Image with 1 shape: 1 corner")
    manifest = build_dataset_in(paths, DatasetConfig(name="small", n_synthetic=30))
    assert dataset_folders(paths.datasets_dir) == [paths.datasets_dir / "small"]
    assert manifest["n_mnist"] == 1
    assert np.isclose(manifest["threshold_set"]["thresholds"][0][0], DEFAULT.thresholds[0][0])


def test_a_conv2_dataset_encodes_conv2_maps_and_its_manifest_says_so(tmp_path: Path, target_model, mnist,
                                                                      conv2_thresholds) -> None:
    from interp.interpreters.dataset import manifest_layer
    from interp.jsonl import read_manifest
    from interp.pipeline import encode_images

    cfg = DatasetConfig(name="c2", n_synthetic=6, layer="conv2", val_share=0.2, test_share=0.2)
    manifest = build_dataset(cfg, target_model, conv2_thresholds, [{"image_index": 5, "counts": {"corner": 1}}],
                             mnist.test.images, tmp_path / "c2")
    assert manifest["layer"] == "conv2" and manifest["config"]["layer"] == "conv2"
    assert manifest["threshold_set"]["layer"] == "conv2" and manifest["n_mnist"] == 1
    assert manifest_layer(read_manifest(tmp_path / "c2")) == "conv2"
    rows = [r for s in ("train", "val", "test") for r in _rows(tmp_path / "c2" / f"{s}.jsonl")]
    assert len(rows) == 7
    mnist_row = next(r for r in rows if r["source"] == "mnist")
    assert mnist_row["encoding"] == encode_images(target_model, mnist.test.images[5:6], conv2_thresholds,
                                                  "paper", "conv2")[0]
    for r in rows:
        assert len(r["encoding"]) == 800  # 16 × ('f' + 49 letters)
        assert get_encoder("paper").decode(r["encoding"]).shape == (16, 7, 7)

    with pytest.raises(ValueError, match="dataset 'c2' encodes conv2, but threshold set 'default' was made for "
                                         "conv1: name a conv2 set, or none for the store's conv2 default"):
        build_dataset(cfg, target_model, DEFAULT, [], mnist.test.images, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
    with pytest.raises(ValueError, match="unknown layer 'fc'"):
        DatasetConfig(layer="fc")


def test_an_old_manifest_and_config_read_as_conv1() -> None:
    from interp.interpreters.dataset import manifest_layer

    old = {"config": {"name": "paper-30k", "n_synthetic": 30000, "seed": 0, "threshold_set": None, "encoder": "paper",
                      "val_share": 0.05, "test_share": 0.05, "include_mnist": True},  # paper-30k's, before layers
           "threshold_set": DEFAULT.to_dict(), "encoder": "paper", "hash": "59f141e0e4b6cb9a"}
    assert manifest_layer(old) == "conv1" and manifest_layer({}) == "conv1"
    assert DatasetConfig.from_dict(old["config"]).layer == "conv1"
    assert manifest_layer({"layer": "conv2"}) == manifest_layer({"config": {"layer": "conv2"}}) == "conv2"


def test_build_in_project_takes_the_layers_default_set_and_refuses_a_named_set_of_another(
        paths, conv2_thresholds) -> None:
    from dataclasses import replace

    from interp.bootstrap import ensure_store
    from interp.store.db import Store

    bare = replace(paths, db_path=paths.db_path.with_name("bare.duckdb"))  # a store setup never saw
    Store(bare.db_path)
    with pytest.raises(ValueError, match=r"no threshold set \(default for conv2\) in the store"):
        build_dataset_in(bare, DatasetConfig(name="c2", n_synthetic=4, layer="conv2"))
    list(ensure_store(paths))
    store = Store(paths.db_path)
    shipped = build_dataset_in(paths, DatasetConfig(name="c2s", n_synthetic=4, layer="conv2"))
    assert shipped["threshold_set"]["name"] == "conv2-default"  # setup loaded the shipped conv2 default
    store.save_threshold_set("c2", conv2_thresholds.as_array().tolist(), make_default=True, layer="conv2")
    manifest = build_dataset_in(paths, DatasetConfig(name="c2", n_synthetic=4, layer="conv2"))
    assert manifest["layer"] == "conv2" and manifest["threshold_set"]["name"] == "c2"
    with pytest.raises(ValueError, match="threshold set 'default' was made for conv1"):
        build_dataset_in(paths, DatasetConfig(name="c2b", n_synthetic=4, layer="conv2", threshold_set="default"))
