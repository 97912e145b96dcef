"""Majority baseline, the activation probe, and the `baseline` CLI on a tiny dataset."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from interp.encoding.encoders import get_encoder
from interp.encoding.thresholds import ThresholdSet
from interp.evaluation.baselines import MajorityInterpreter, fit_majority, majority_description
from interp.evaluation.evaluate import evaluate
from interp.interpreters.probe import (
    ProbeConfig,
    ProbeInterpreter,
    bins_from_encodings,
    counts_matrix,
    load_probe,
    predict_counts,
    probe_inputs,
    save_probe,
    train_probe,
)
from interp.language import SHAPES, counts_from_vector, format_description
from interp.store.db import Store


def row(counts: dict) -> dict:
    full = {s: counts.get(s, 0) for s in SHAPES}
    return {"counts": full, "description": format_description(full)}


def test_majority_description_modes() -> None:
    rows = [row({"ellipse": 1}), row({"ellipse": 1}), row({"corner": 2}), row({"corner": 2}), row({"vertical": 1})]
    # Tie between two descriptions: the alphabetically first wins (deterministic).
    assert majority_description(rows) == "Image with 1 shape: 1 ellipse"
    # Per shape type the most frequent count is 0 for every type here.
    assert majority_description(rows, "per_shape") == "Image with 0 shapes"
    rows += [row({"corner": 1, "ellipse": 1})] * 4
    assert majority_description(rows, "per_shape") == "Image with 2 shapes: 1 ellipse, 1 corner"
    with pytest.raises(ValueError):
        majority_description(rows, "median")
    with pytest.raises(ValueError):
        majority_description([])


def test_majority_interpreter_is_evaluated_like_any_interpreter(tmp_path: Path) -> None:
    rows = [{"index": i, "encoding": f"e{i}", **row(c)}
            for i, c in enumerate([{"ellipse": 1}, {"ellipse": 1}, {"corner": 1}, {"ellipse": 2}])]
    majority = MajorityInterpreter(majority_description(rows))
    assert majority.describe(["x", "y"]) == ["Image with 1 shape: 1 ellipse"] * 2
    metrics = evaluate(majority, rows, "maj", Store(tmp_path / "s.duckdb"), progress=False, kind="baseline")
    assert metrics["accuracy"] == 0.5
    assert (metrics["tp"], metrics["fp"], metrics["fn"]) == (3, 1, 2)


def test_probe_inputs_onehot_and_scaled() -> None:
    bins = np.zeros((2, 8, 14, 14), dtype=np.int8)
    bins[0, 3, 5, 6] = 4
    bins[1, 0, 0, 0] = 1
    x = probe_inputs(bins, "onehot")
    assert x.shape == (2, 32, 14, 14) and x.sum() == 2
    assert x[0, 3 * 4 + 3, 5, 6] == 1 and x[1, 0, 0, 0] == 1  # level v of filter 3; level l of filter 0
    s = probe_inputs(bins, "scaled")
    assert s.shape == (2, 8, 14, 14) and s[0, 3, 5, 6] == 1.0 and s[1, 0, 0, 0] == 0.25
    with pytest.raises(ValueError):
        probe_inputs(np.zeros((2, 8, 14)), "onehot")


def test_probe_config_validates_and_round_trips() -> None:
    cfg = ProbeConfig(channels=4, epochs=3, inputs="scaled")
    assert ProbeConfig.from_dict(cfg.to_dict()) == cfg
    for bad in ({"inputs": "raw"}, {"epochs": 0}, {"learning_rate": 0.0}, {"max_count": 0}):
        with pytest.raises(ValueError):
            ProbeConfig(**bad)


def trivial_task(n: int, seed: int, channels: int = 8, side: int = 14) -> tuple[np.ndarray, np.ndarray]:
    """Every filter map is one constant level; the count of the first shape type is filter 0's level, others 0
    (conv1's [8, 14, 14] maps by default)."""
    levels = np.random.default_rng(seed).integers(0, 5, (n, channels))
    bins = np.broadcast_to(levels[:, :, None, None], (n, channels, side, side)).astype(np.int8).copy()
    counts = np.zeros((n, 8), dtype=np.int64)
    counts[:, 0] = levels[:, 0]
    return bins, counts


def test_probe_learns_a_trivial_task_and_round_trips(tmp_path: Path) -> None:
    x, y = trivial_task(320, 0)
    xv, yv = trivial_task(100, 1)
    cfg = ProbeConfig(channels=8, hidden=32, epochs=15, batch_size=16, learning_rate=5e-3)
    result = train_probe(x, y, cfg, val=(xv, yv), progress=False)
    losses = [h["loss"] for h in result.history]
    assert len(losses) == 15 and losses[-1] < 0.25 * losses[0]
    pred = predict_counts(result.model, xv, cfg.inputs)
    assert (pred[:, 0] == yv[:, 0]).mean() > 0.5  # chance: 0.2 (five count classes)
    assert result.history[-1]["val_shape_acc"] == (pred == yv).mean() > 0.9

    save_probe(result.model, cfg, tmp_path / "probe", {"note": "tiny"})
    model, cfg2, summary = load_probe(tmp_path / "probe")
    assert cfg2 == cfg and summary == {"note": "tiny"}
    assert np.array_equal(predict_counts(model, xv, cfg2.inputs), pred)
    for a, b in zip(result.model.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b)

    # Behind the Interpreter interface it reads encodings, exactly what the LLM reads.
    texts = get_encoder("compact").encode_batch(xv[:5])
    assert np.array_equal(bins_from_encodings(texts, "compact"), xv[:5])
    probe = ProbeInterpreter(model, cfg2, encoder="compact")
    assert probe.describe(texts) == [format_description(counts_from_vector(c)) for c in pred[:5]]


def test_probe_training_is_seeded() -> None:
    x, y = trivial_task(64, 0)
    cfg = ProbeConfig(channels=4, hidden=8, epochs=2, batch_size=16)
    a, b = (train_probe(x, y, cfg, progress=False) for _ in range(2))
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]


def test_counts_matrix() -> None:
    assert counts_matrix([row({"corner": 2, "crossing": 1})]).tolist() == [[0, 0, 0, 0, 0, 0, 2, 1]]


@pytest.fixture
def tiny_dataset(paths, target_model) -> Path:
    """A dataset folder of 40 synthetic rows (compact encoding) under the isolated data dir."""
    from interp.interpreters.dataset import make_rows, synthetic_images
    from interp.pipeline import encode_images

    tset = ThresholdSet.load(paths.assets_dir / "thresholds" / "default.json")
    data = synthetic_images(40, 3)
    rows = make_rows(data, encode_images(target_model, data.images, tset, "compact"), "compact")
    out = paths.datasets_dir / "tiny"
    out.mkdir(parents=True)
    (out / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:32]))
    (out / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[32:]))
    (out / "manifest.json").write_text(json.dumps({"config": {"seed": 3}, "encoder": "compact",
                                                   "threshold_set": tset.to_dict()}))
    return out


def test_fit_majority_encodes_like_its_dataset(tiny_dataset: Path) -> None:
    majority = fit_majority(tiny_dataset)
    assert majority.encoder == "compact" and majority.thresholds.name == "default"
    assert majority.description.startswith("Image with ")


def test_cli_baselines(paths, tiny_dataset: Path, capsys, monkeypatch) -> None:
    from interp.cli.main import main

    monkeypatch.setattr(os, "nice", lambda _n: 0)  # the probe command nices itself; not the test process
    assert main(["baseline", "majority", "--dataset", "tiny", "--n", "10", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["run_id"] == "majority-tiny" and out["eval_set"] == "syn_eval" and out["n"] == 10

    assert main(["baseline", "probe", "--dataset", "tiny", "--n", "10", "--epochs", "1", "--channels", "4",
                 "--hidden", "8", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["run_id"] == "probe-tiny" and 0 <= out["accuracy"] <= 1 and len(out["history"]) == 1
    assert (paths.runs_dir / "probe-tiny" / "model.safetensors").exists()

    store = Store(paths.db_path)
    runs = store.list_runs().set_index("id")
    assert runs.loc["probe-tiny", "kind"] == "baseline" and runs.loc["probe-tiny", "status"] == "done"
    config = runs.loc["probe-tiny", "config"]
    assert config["baseline"] == "probe" and config["encoder"] == "compact" and config["seed"] == 1_000_003
    assert config["probe"]["channels"] == 4
    assert set(store.get_metrics()["run_id"]) == {"majority-tiny", "probe-tiny"}
    assert len(store.get_predictions("probe-tiny", "syn_eval")) == 10


def trivial_conv2_task(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`trivial_task` on conv2's [16, 7, 7] maps."""
    return trivial_task(n, seed, channels=16, side=7)


def test_probe_inputs_of_conv2_bins() -> None:
    bins = np.zeros((1, 16, 7, 7), dtype=np.int8)
    bins[0, 15, 6, 0] = 2
    x = probe_inputs(bins, "onehot")
    assert x.shape == (1, 64, 7, 7) and x.sum() == 1 and x[0, 15 * 4 + 1, 6, 0] == 1
    assert probe_inputs(bins, "scaled").shape == (1, 16, 7, 7)
    with pytest.raises(ValueError, match=r"bins must be \[b, 8, 14, 14\] \(conv1\) or \[b, 16, 7, 7\] \(conv2\)"):
        probe_inputs(np.zeros((1, 16, 14, 14)), "onehot")


def test_a_conv2_probe_learns_from_conv2_bins_and_refuses_conv1_encodings(tmp_path: Path) -> None:
    x, y = trivial_conv2_task(64, 0)
    cfg = ProbeConfig(channels=4, hidden=16, epochs=2, batch_size=16, layer="conv2")
    assert cfg.in_channels == 64 and ProbeConfig(layer="conv2", inputs="scaled").in_channels == 16
    result = train_probe(x, y, cfg, val=trivial_conv2_task(16, 1), progress=False)
    assert len(result.history) == 2 and result.history[-1]["loss"] < result.history[0]["loss"]
    save_probe(result.model, cfg, tmp_path / "p2")
    probe = ProbeInterpreter.load(tmp_path / "p2")
    assert probe.layer == probe.config.layer == "conv2"

    texts = get_encoder("rle").encode_batch(x[:3])
    assert np.array_equal(bins_from_encodings(texts, "rle"), x[:3])
    probe.encoder = "rle"
    assert len(probe.describe(texts)) == 3 and probe.describe([]) == []
    conv1_texts = get_encoder("rle").encode_batch(trivial_task(2, 0)[0])
    with pytest.raises(ValueError, match=r"this probe reads conv2 \[16, 7, 7\]; the encoding is conv1 \[8, 14, 14\]"):
        probe.describe(conv1_texts)
    with pytest.raises(ValueError, match=r"more than one layer \(\[8, 14, 14\] \(conv1\) and \[16, 7, 7\] \(conv2\)\)"):
        bins_from_encodings([texts[0], conv1_texts[0]], "rle")
    with pytest.raises(ValueError, match=r"the bins are conv1's \[8, 14, 14\], but the probe config reads conv2"):
        train_probe(*trivial_task(8, 0), cfg, progress=False)


def test_a_probe_saved_before_layers_loads_as_conv1() -> None:
    from interp.settings import ROOT

    old = json.loads((ROOT / "assets" / "probes" / "probe-paper-30k" / "config.json").read_text())["config"]
    assert "layer" not in old  # the shipped probe predates layers
    assert ProbeConfig.from_dict(old).layer == "conv1"
    probe = ProbeInterpreter.load(ROOT / "assets" / "probes" / "probe-paper-30k")
    assert probe.layer == "conv1" and probe.thresholds.layer == "conv1"
    texts = get_encoder("paper").encode_batch(trivial_conv2_task(1, 0)[0])
    with pytest.raises(ValueError, match=r"this probe reads conv1 \[8, 14, 14\]; the encoding is conv2 \[16, 7, 7\]"):
        probe.describe(texts)


@pytest.fixture
def tiny_conv2_dataset(paths, target_model, conv2_thresholds) -> Path:
    """A conv2 dataset folder of 24 synthetic rows (rle encoding) under the isolated data dir."""
    from interp.interpreters.dataset import DatasetConfig, build_dataset

    out = paths.datasets_dir / "tiny2"
    build_dataset(DatasetConfig(name="tiny2", n_synthetic=24, seed=3, encoder="rle", layer="conv2", test_share=0),
                  target_model, conv2_thresholds, [], np.zeros((0, 28, 28), np.uint8), out)
    return out


def test_baselines_on_a_conv2_dataset_read_and_evaluate_conv2(paths, tiny_conv2_dataset: Path, capsys,
                                                               monkeypatch) -> None:
    from interp.cli.main import main

    majority = fit_majority(tiny_conv2_dataset)
    assert majority.layer == "conv2" and majority.thresholds.name == "c2"

    monkeypatch.setattr(os, "nice", lambda _n: 0)
    assert main(["baseline", "probe", "--dataset", "tiny2", "--n", "6", "--epochs", "1", "--channels", "4",
                 "--hidden", "8", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["run_id"] == "probe-tiny2" and out["n"] == 6
    probe = ProbeInterpreter.load(paths.runs_dir / "probe-tiny2")
    assert probe.layer == "conv2" and probe.encoder == "rle" and probe.thresholds.layer == "conv2"
    summary = json.loads((paths.runs_dir / "probe-tiny2" / "config.json").read_text())["summary"]
    assert summary["layer"] == "conv2" and summary["n_train"] == 23

    store = Store(paths.db_path)
    config = store.get_run("probe-tiny2").config
    assert (config["layer"], config["encoder"], config["thresholds"]) == ("conv2", "rle", "c2")
    assert config["eval_sets"]["syn_eval"]["layer"] == "conv2"
    encodings = store.get_predictions("probe-tiny2", "syn_eval")["prompt_encoding"]
    assert [get_encoder("rle").decode(e).shape for e in encodings] == [(16, 7, 7)] * 6


def test_the_shipped_probe_of_a_layer(tmp_path: Path) -> None:
    from interp.interpreters.probe import shipped_probe
    from interp.settings import ROOT

    def folder(name: str, config: dict) -> Path:
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.safetensors").write_bytes(b"")
        (tmp_path / name / "config.json").write_text(json.dumps({"config": config, "summary": {}}))
        return tmp_path / name

    deep = folder("a-deep", {"layer": "conv2"})  # sorts first, reads conv2
    old = folder("b-old", {"channels": 16})  # saved before layers: conv1
    assert shipped_probe(tmp_path) == old and shipped_probe(tmp_path, "conv2") == deep
    assert shipped_probe(tmp_path / "none") is None and shipped_probe(old, "conv2") is None
    assert shipped_probe(ROOT / "assets" / "probes") == ROOT / "assets" / "probes" / "probe-paper-30k"
