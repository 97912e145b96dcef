"""The home page's stage status: what is in place and the command that fixes what is not."""

from __future__ import annotations

from interp.status import pipeline_status
from interp.store.db import Store


def test_status_names_the_fix_and_counts_runs_and_jobs(paths) -> None:
    stages = {s.stage: s for s in pipeline_status(paths)}
    assert not stages["MNIST"].ready and "python -m interp setup" in stages["MNIST"].detail
    assert stages["Target CNN"].ready  # the committed checkpoint
    assert not stages["Encoding"].ready and "python -m interp setup" in stages["Encoding"].detail

    from interp.bootstrap import ensure_store

    list(ensure_store(paths))
    store = Store(paths.db_path)
    adapter = paths.runs_dir / "r1" / "adapter"  # a trained run is its folder (interp.catalog)
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text("{}")
    (paths.runs_dir / "r2").mkdir()  # started, no adapter yet: not a trained run
    store.upsert_job("j1", "r1", "local", {}, "running")
    store.upsert_job("j2", "r1", "local", {}, "failed")
    stages = {s.stage: s for s in pipeline_status(paths)}
    assert stages["Encoding"].ready and "default" in stages["Encoding"].detail
    assert stages["Interpreter"].detail == ("3 shipped (reader-smollm2, reader-smollm2-conv2, smollm2-compact), 1 trained run(s) under "
                                            "runs/; 2 job(s), 1 queued or running")
    assert not stages["Evaluation"].ready and "Compare" in stages["Evaluation"].detail
    store.upsert_run("r1", "evaluate", None, {}, "done", None)
    store.save_metrics("r1", "syn_eval", {"n": 1, "accuracy": 1.0})
    stages = {s.stage: s for s in pipeline_status(paths)}
    assert stages["Evaluation"].ready and stages["Evaluation"].detail.startswith("1 run(s) evaluated")
