"""Jobs: validated specs, a real tiny fine-tuning job through the local backend, kill → failed → resume
with one writer per run folder."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from interp.interpreters.training import FinetuneConfig, last_complete_checkpoint
from interp.jobs import control as jobs
from interp.jobs.command import command
from interp.jobs.local import job_dir, process_alive
from interp.jobs.progress import clean_log, log_progress, read_metrics
from interp.jobs.spec import EffectsJobConfig, EvaluateJobConfig, JobSpec
from interp.run_lock import RunFolderBusy, ensure_no_writer, run_writer
from interp.store.db import Store
from tests.conftest import COMPLETION, PROMPT, tiny_model, tiny_tokenizer


def make_tiny(tmp: Path, n_train: int = 8) -> tuple[Path, Path]:
    """A tiny random Mistral and a dataset of the conftest sample: (model dir, dataset dir)."""
    model_dir = tmp / "tiny-mistral"
    tok = tiny_tokenizer(model_dir)
    tiny_model("mistral", model_dir, len(tok))
    data = tmp / "ds-tiny"
    data.mkdir()
    row = json.dumps({"prompt": PROMPT, "completion": COMPLETION})
    (data / "train.jsonl").write_text((row + "\n") * n_train)
    (data / "val.jsonl").write_text((row + "\n") * 2)
    (data / "manifest.json").write_text(json.dumps({"hash": "tinyhash"}))
    return model_dir, data


def tiny_finetune(model: Path, data: Path, **kw) -> FinetuneConfig:
    base = dict(dataset=str(data), out="", preset=str(model), max_steps=6, learning_rate=5e-2, batch_size=4,
                grad_accum=1, logging_steps=1, eval_steps=3, save_steps=3, warmup_steps=0, device="cpu",
                bf16=False, lora_r=4, lora_alpha=8, lora_dropout=0.0, threads=1)
    return FinetuneConfig(**{**base, **kw})


@pytest.fixture
def tiny(tmp_path: Path, paths) -> Iterator[tuple[Path, Path]]:
    yield make_tiny(tmp_path)
    stop_all(paths)


def stop_all(paths) -> None:
    """No test leaves a worker behind."""
    store = Store(paths.db_path)
    for job_id in store.list_jobs()["id"]:
        jobs.stop(job_id, paths, store)


def test_spec_validation_rejects_bad_fields(tiny) -> None:
    model, data = tiny
    ft = tiny_finetune(model, data)
    with pytest.raises(ValueError, match="run name"):
        JobSpec(kind="finetune", name="../etc; rm -rf /", finetune=ft)
    with pytest.raises(ValueError, match="backend"):
        JobSpec(kind="finetune", name="a", finetune=ft, backend="slurm")
    with pytest.raises(ValueError, match="dashboard address"):
        JobSpec(kind="finetune", name="a", finetune=ft, backend="ray", address="127.0.0.1:8265; echo")
    with pytest.raises(ValueError, match="exactly its own config"):
        JobSpec(kind="evaluate", name="a", finetune=ft)
    with pytest.raises(ValueError, match="eval_set"):
        EvaluateJobConfig(run="r", eval_set="train")
    spec = JobSpec(kind="finetune", name="a", finetune=ft, backend="ray", address="http://127.0.0.1:8265")
    assert JobSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_command_is_an_argument_vector(tiny, paths) -> None:
    model, data = tiny
    spec = JobSpec(kind="finetune", name="run-1", finetune=tiny_finetune(model, data, learning_rate=2e-3))
    argv, env = command(spec, paths)
    assert argv[1:4] == ["-m", "interp", "finetune"]
    assert argv[argv.index("--out") + 1] == str(paths.runs_dir / "run-1")
    assert argv[argv.index("--learning-rate") + 1] == "0.002"
    assert env["N2W_DATA_DIR"] == str(paths.data_dir)

    reader = JobSpec(kind="finetune", name="run-r", finetune=tiny_finetune(model, data, interpreter="reader",
                                                                           lora_targets=("q_proj", "o_proj")))
    argv, _ = command(reader, paths)
    assert argv[argv.index("--interpreter") + 1] == "reader"
    assert argv[argv.index("--lora-targets") + 1 : argv.index("--lora-targets") + 3] == ["q_proj", "o_proj"]
    ev = JobSpec(kind="evaluate", name="run-r-eval", evaluate=EvaluateJobConfig(run="run-r", questions=True))
    argv, _ = command(ev, paths)
    assert argv[1:4] == ["-m", "interp", "evaluate"] and argv[-1] == "--questions"
    assert "--json" not in argv  # the log's progress bars are the job's progress
    shipped = JobSpec(kind="evaluate", name="ev-shipped", evaluate=EvaluateJobConfig(run="shipped:reader-smollm2"))
    argv, _ = command(shipped, paths)
    assert argv[argv.index("--run") + 1] == str(paths.assets_dir / "interpreters" / "reader-smollm2")
    fx = JobSpec(kind="effects", name="fx-1", effects=EffectsJobConfig(run="shipped:reader-smollm2", n=300))
    argv, _ = command(fx, paths)
    assert argv[3:5] == ["intervene", "effects"] and argv[argv.index("--n") + 1] == "300"
    assert argv[argv.index("--interpreter") + 1] == str(paths.assets_dir / "interpreters" / "reader-smollm2")

    url = f"file://{paths.data_dir / 'bucket'}"
    spec = JobSpec(kind="finetune", name="run-1", finetune=tiny_finetune(model, data), backend="ray",
                   address="http://127.0.0.1:8265", storage=url)
    argv, _ = command(spec, paths)
    assert argv[argv.index("--sync-to") + 1] == f"{url}/run-1"
    assert argv[argv.index("--dataset") + 1] == f"{url}/datasets/ds-tiny"
    assert (paths.data_dir / "bucket" / "datasets" / "ds-tiny" / "train.jsonl").exists()  # shipped


def test_local_job_runs_to_completion_and_registers_its_run(tiny, paths) -> None:
    model, data = tiny
    store = Store(paths.db_path)
    spec = JobSpec(kind="finetune", name="tiny-local", finetune=tiny_finetune(model, data))
    job_id = jobs.submit(spec, paths, store)
    assert store.get_job(job_id).status == "running"
    assert store.get_run("tiny-local").status == "running"
    with pytest.raises(ValueError, match="already has a running job"):
        jobs.submit(spec, paths, store)

    deadline = time.time() + 300  # the worker registers the outcome itself, before anyone polls
    while store.get_job(job_id).status == "running" and time.time() < deadline:
        time.sleep(0.5)
    assert store.get_job(job_id).status == "succeeded", jobs.logs(job_id, paths, store)
    view = jobs.view(job_id, paths, store)
    assert view.step == 6 and view.last("loss") is not None and view.last("eval_loss") is not None
    assert view.finished_at is not None and view.elapsed_s > 0
    run = store.get_run("tiny-local")
    assert run.status == "succeeded" and run.kind == "finetune"
    assert run.config["total_steps"] == 6 and Path(run.path, "adapter", "adapter_model.safetensors").exists()
    log = jobs.logs(job_id, paths, store)
    assert "[worker] exit code 0" in log and "adapter saved to" in log
    raw = (job_dir(paths, job_id) / "log.txt").read_bytes().decode()
    assert "\r" in raw and "\r" not in log  # progress bars shown in their last state, not every redraw
    assert log.count("/6 [") < raw.count("/6 [")

    # "Evaluate this run": a job with its own store file, merged into the app's store when it ends.
    from interp.bootstrap import ensure_store

    list(ensure_store(paths))  # the default threshold set the job's store is seeded with
    ev = JobSpec(kind="evaluate", name="tiny-local-eval", evaluate=EvaluateJobConfig(run="tiny-local", n=3))
    ev_id = jobs.submit(ev, paths, store)
    assert jobs.wait(ev_id, paths, timeout=300, store=store) == "succeeded", jobs.logs(ev_id, paths, store)
    metrics = store.get_metrics("tiny-local-eval")
    assert metrics["eval_set"].tolist() == ["syn_eval"] and metrics["metrics"][0]["n"] == 3
    assert len(store.get_predictions("tiny-local-eval", "syn_eval")) == 3
    label, done, total = log_progress(jobs.logs(ev_id, paths, store))  # what the Compare page's bar shows
    assert label.startswith("describe") and done == total == 3


def _alive(pid: int) -> bool:
    """Running or still exiting. A zombie waiting for its reaper is dead (it holds no files and no locks),
    but a multithreaded process's leader shows as a zombie while its other threads are still exiting and
    still hold its files (the run folder's lock among them): dead means a zombie with no other thread."""
    try:
        if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
            return True
        return len(os.listdir(f"/proc/{pid}/task")) > 1
    except (psutil.NoSuchProcess, FileNotFoundError):
        return False


def _loss_steps(run: Path) -> list[int]:
    """The step of every training-loss row in the run's metrics.jsonl, in file order."""
    steps = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "loss" in row:
            steps.append(row["step"])
    return steps


def test_killed_worker_takes_its_trainer_along_and_resume_has_one_writer(tiny, paths) -> None:
    """SIGKILL on the worker alone (what the OOM killer does): no trainer survives it, the job is failed,
    and resume continues from the last complete checkpoint with one trainer writing the run folder."""
    model, data = tiny
    store = Store(paths.db_path)
    spec = JobSpec(kind="finetune", name="tiny-kill",
                   finetune=tiny_finetune(model, data, max_steps=40, save_steps=2, eval_steps=0))
    job_id = jobs.submit(spec, paths, store)
    run = paths.runs_dir / "tiny-kill"
    deadline = time.time() + 240
    while last_complete_checkpoint(run / "checkpoints") is None and time.time() < deadline:
        time.sleep(0.2)
    assert last_complete_checkpoint(run / "checkpoints"), jobs.logs(job_id, paths, store)
    worker = psutil.Process(store.get_job(job_id).pid)
    [trainer] = worker.children()
    with pytest.raises(RunFolderBusy, match=f"being written by process {trainer.pid}; stop that job first"):
        ensure_no_writer(run)

    os.kill(worker.pid, signal.SIGKILL)
    deadline = time.time() + 30
    while _alive(trainer.pid) and time.time() < deadline:
        time.sleep(0.1)
    assert not _alive(trainer.pid), "the trainer outlived its worker"
    ensure_no_writer(run)  # its lock went with it
    resume_step = int(Path(last_complete_checkpoint(run / "checkpoints")).name.split("-")[1])
    assert jobs.wait(job_id, paths, timeout=30, store=store) == "failed"
    job = store.get_job(job_id)
    assert "gone without an exit code" in job.message and job.finished_at is not None
    assert store.get_run("tiny-kill").status == "failed"
    first_run = _loss_steps(run)
    assert first_run == list(range(1, len(first_run) + 1)) and len(first_run) >= resume_step

    jobs.resume(job_id, paths, store)
    assert jobs.wait(job_id, paths, timeout=300, store=store) == "succeeded", jobs.logs(job_id, paths, store)
    # One writer at a time: the first trainer's steps, then the resumed one's from its checkpoint, never mixed.
    assert _loss_steps(run) == first_run + list(range(resume_step + 1, 41))
    assert jobs.view(job_id, paths, store).step == 40
    assert store.get_job(job_id).spec["attempt"] == 2


def test_resume_is_refused_while_a_trainer_still_writes_the_run_folder(tiny, paths) -> None:
    model, data = tiny
    store = Store(paths.db_path)
    spec = JobSpec(kind="finetune", name="tiny-busy", finetune=tiny_finetune(model, data))
    store.upsert_job("ft-tiny-busy-1", spec.name, "local", {**spec.to_dict(), "attempt": 1}, "failed")
    run = paths.runs_dir / "tiny-busy"
    message = f"run folder {run} is being written by process {os.getpid()}; stop that job first"
    with run_writer(run):  # e.g. a trainer started by hand with `n2w finetune --out runs/tiny-busy`
        with pytest.raises(ValueError, match=re.escape(message)):
            jobs.resume("ft-tiny-busy-1", paths, store)
        with pytest.raises(ValueError, match=re.escape(message)):
            jobs.submit(JobSpec(kind="finetune", name="tiny-busy", finetune=spec.finetune), paths, store)
    job = store.get_job("ft-tiny-busy-1")
    assert job.status == "failed" and job.spec["attempt"] == 1  # nothing was started or changed
    assert len(store.list_jobs()) == 1


def test_stop_marks_the_job_stopped(tiny, paths) -> None:
    model, data = tiny
    store = Store(paths.db_path)
    spec = JobSpec(kind="finetune", name="tiny-stop", finetune=tiny_finetune(model, data, max_steps=500))
    job_id = jobs.submit(spec, paths, store)
    jobs.stop(job_id, paths, store)
    assert store.get_job(job_id).status == "stopped"
    deadline = time.time() + 30
    while process_alive(store.get_job(job_id).pid, store.get_job(job_id).external_id) and time.time() < deadline:
        time.sleep(0.2)
    assert not process_alive(store.get_job(job_id).pid, store.get_job(job_id).external_id)
    assert jobs.refresh(job_id, paths, store) == "stopped"
    with pytest.raises(ValueError, match="only a failed or stopped"):
        jobs.resume(jobs.submit(JobSpec(kind="finetune", name="other", finetune=spec.finetune), paths, store),
                    paths, store)


def test_read_metrics_drops_steps_a_resume_redid(tmp_path: Path) -> None:
    lines = [{"step": s, "loss": 1.0} for s in (5, 10, 15)] + [{"step": 15, "eval_loss": 0.9}]
    lines += [{"step": 12, "loss": 0.5}, {"step": 15, "loss": 0.4}]  # resumed from checkpoint-10
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + '\n{"step": 2')
    rows = read_metrics(str(tmp_path))
    assert [(r["step"], r.get("loss")) for r in rows] == [(5, 1.0), (10, 1.0), (12, 0.5), (15, 0.4)]


def test_log_progress_reads_the_last_bar() -> None:
    log = clean_log("loading\ndescribe (r): 40%|####  | 2/5 [00:01<00:01]\r describe (r): 60%|######| 3/5 [00:02<00:01]\n"
                    "answer (r):  20%|##        | 1/5 [00:00<00:02]")
    assert log_progress(log) == ("answer (r)", 1, 5)
    assert log_progress("loading the model") is None


def test_clean_log_keeps_the_last_state_of_progress_bars() -> None:
    raw = "start\n 10%|#  | 1/10\r 20%|## | 2/10\r\x1b[A\r 30%|###| 3/10\n\n\x1b[31merror\x1b[0m: boom\n"
    assert clean_log(raw) == "start\n 30%|###| 3/10\nerror: boom"
