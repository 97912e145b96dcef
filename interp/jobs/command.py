"""The job's worker command: an argument vector and environment built from a spec (never a shell string).

Before it runs, what the command needs is put in place: a fine-tuning dataset is shipped to storage when
storage is set, and an evaluation job's own store is seeded from this one (merged back by `interp.jobs.results`).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from interp import storage
from interp.configs import config_to_argv
from interp.interpreters.training import resolve_dataset
from interp.jobs.spec import SHIPPED_PREFIX, JobSpec
from interp.settings import Paths
from interp.store.db import Store


def run_location(spec: JobSpec, paths: Paths, name: str | None = None) -> str:
    """The run folder (of ``name``, default the spec's run), as both sides see it: under storage or this runs dir."""
    return storage.join(spec.storage or str(paths.runs_dir), name or spec.name)


def command(spec: JobSpec, paths: Paths) -> tuple[list[str], dict[str, str]]:
    """The job's argument vector and environment. Ships the dataset to storage when storage is set."""
    python = sys.executable if spec.backend == "local" else spec.python
    location = run_location(spec, paths)
    env = {"PYTHONUNBUFFERED": "1", "N2W_DATA_DIR": spec.remote_data_dir or str(paths.data_dir)}
    if spec.backend == "local":
        env["N2W_RUNS_DIR"] = str(paths.runs_dir)
    if spec.kind == "finetune":
        cfg = spec.finetune
        dataset = str(resolve_dataset(cfg.dataset, paths.datasets_dir).resolve())
        if spec.storage:
            shipped = storage.join(spec.storage, "datasets", Path(dataset).name)
            if not storage.exists(storage.join(shipped, "train.jsonl")):
                storage.put(Path(dataset), shipped)
            dataset = shipped
        if storage.is_url(location):  # write locally on the worker, mirror to storage
            cfg = dataclasses.replace(cfg, dataset=dataset, out=f"runs/{spec.name}", sync_to=location)
        else:
            cfg = dataclasses.replace(cfg, dataset=dataset, out=location, sync_to=None)
        return [python, "-m", "interp", "finetune", *config_to_argv(cfg)], env
    if spec.kind == "effects":
        fx = spec.effects
        return [python, "-m", "interp", "intervene", "effects", "--interpreter", interpreter_path(spec, paths, fx.run),
                "--name", spec.name, "--n", str(fx.n), "--n-mnist", str(fx.n_mnist)], env
    ev = spec.evaluate
    seed_eval_store(Path(location) / "eval.duckdb", paths)
    target = interpreter_path(spec, paths, ev.run)
    env["N2W_DB"] = storage.join(location, "eval.duckdb")  # the job's own store, merged home when it ends
    # No --json: the log's progress bars are the job's progress (`interp.jobs.progress.log_progress`).
    return [python, "-m", "interp", "evaluate", "--run", target, "--set", ev.eval_set, "--n", str(ev.n),
            "--batch-size", str(ev.batch_size), "--run-id", spec.name,
            *(["--questions"] if ev.questions else [])], env


def interpreter_path(spec: JobSpec, paths: Paths, run: str) -> str:
    """What `load_interpreter` takes on the worker for a job's interpreter reference (run name, shipped:NAME, base:)."""
    if run.startswith("base:"):
        return run
    if run.startswith(SHIPPED_PREFIX):  # in git: the project folder here, Ray's working_dir there
        shipped = paths.interpreters_dir / run[len(SHIPPED_PREFIX):]
        return str(shipped if spec.backend == "local" else shipped.relative_to(paths.root))
    return run_location(spec, paths, run)


def seed_eval_store(db: Path, paths: Paths) -> None:
    """The evaluation job's own store starts with this store's default thresholds and MNIST annotations."""
    home, job_store = Store(paths.db_path), Store(db)
    default = home.get_threshold_set()
    if default is not None:
        job_store.save_threshold_set(default.name, default.thresholds, notes=default.notes, make_default=True)
    job_store.save_annotations(home.list_annotations(image_source="mnist").to_dict("records"))
