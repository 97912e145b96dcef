"""A finished job's run recorded in the app's store: a remote adapter brought home, or an evaluation
job's own store (``<run>/eval.duckdb``, seeded by `interp.jobs.command`) merged in."""

from __future__ import annotations

from pathlib import Path

from interp import storage
from interp.jobs.command import run_location
from interp.jobs.spec import JobSpec
from interp.settings import Paths
from interp.store.db import Store


def register_run(spec: JobSpec, paths: Paths, store: Store) -> None:
    """Record the finished run in this app's store; bring a remote adapter home."""
    location = run_location(spec, paths)
    if spec.kind == "finetune":
        local = paths.runs_dir / spec.name
        if storage.is_url(location):
            for name in ("adapter", "metrics.jsonl", "run_config.json", "status.json"):
                storage.get(storage.join(location, name), local / name)
        config = storage.read_json(storage.join(location, "run_config.json")) or {}
        if not storage.exists(storage.join(location, "adapter", "adapter_config.json")):
            raise FileNotFoundError(f"no adapter in {location}")
        store.upsert_run(spec.name, "finetune", spec.preset, config, "succeeded",
                         str(local) if storage.is_url(location) else location)
        return
    if spec.kind == "effects":  # the folder is the result (`interp.catalog.effect_maps`)
        if not storage.exists(storage.join(location, "effects.json")):
            raise FileNotFoundError(f"no effects.json in {location}")
        return
    job_store = Store(Path(location) / "eval.duckdb")
    run = job_store.get_run(spec.name)
    if run is None:
        raise FileNotFoundError(f"the evaluation wrote no run into {location}/eval.duckdb")
    store.upsert_run(run.id, run.kind, run.preset, run.config, run.status, run.path)
    for rec in job_store.get_metrics(run.id).to_dict("records"):
        preds = job_store.get_predictions(run.id, rec["eval_set"]).to_dict("records")
        store.save_predictions(run.id, rec["eval_set"], preds)
        store.save_metrics(run.id, rec["eval_set"], rec["metrics"])
