"""The jobs API the page and CLI call: submit, resume, stop, refresh, wait, view, list, logs.

A job record lives in the store; its backend (``BACKENDS``, `interp.jobs.registry`) runs it. Each job's
run folder (``metrics.jsonl``, ``status.json``, ``adapter/``) is the truth about progress: `refresh` asks
the backend, marks a dead job failed with its last log lines, and registers a finished run in the store.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime

from interp import storage
from interp.jobs.command import command, run_location
from interp.jobs.progress import JobView, clean_log, log_progress, read_metrics
from interp.jobs.registry import BACKENDS
from interp.jobs.results import register_run
from interp.jobs.spec import RUN_KINDS, TERMINAL, JobSpec
from interp.run_lock import RunFolderBusy, ensure_no_writer
from interp.settings import Paths
from interp.store.db import Store

LOG_TAIL_LINES = 12


def _store(paths: Paths) -> Store:
    return Store(paths.db_path)


def submit(spec: JobSpec, paths: Paths, store: Store | None = None) -> str:
    """Start a job; returns its id. Raises ValueError with a readable message when it cannot start."""
    store = store or _store(paths)
    for row in store.list_jobs().to_dict("records"):
        if row["spec"].get("name") == spec.name and row["status"] in ("queued", "running"):
            raise ValueError(f"run '{spec.name}' already has a {row['status']} job ({row['id']}); stop it first")
    _ensure_one_writer(spec, paths)
    job_id = f"{spec.kind[:2]}-{spec.name}-{uuid.uuid4().hex[:6]}"
    record = {**spec.to_dict(), "attempt": 1}
    store.upsert_job(job_id, spec.name, spec.backend, record, "queued", address=spec.address)
    return _launch(job_id, spec, 1, paths, store)


def resume(job_id: str, paths: Paths, store: Store | None = None) -> str:
    """Start a stopped or failed job again under the same id; fine-tuning resumes from its last checkpoint."""
    store = store or _store(paths)
    job = _get(store, job_id)
    if job.status not in ("failed", "stopped"):
        raise ValueError(f"job {job_id} is {job.status}; only a failed or stopped job can be resumed")
    spec = JobSpec.from_dict(job.spec)
    _ensure_one_writer(spec, paths)
    attempt = int(job.spec.get("attempt", 1)) + 1
    store.update_job(job_id, spec={**spec.to_dict(), "attempt": attempt}, status="queued", finished_at=None,
                     message=None)
    return _launch(job_id, spec, attempt, paths, store)


def _ensure_one_writer(spec: JobSpec, paths: Paths) -> None:
    """A run folder has one trainer at a time (`interp.run_lock`): refuse to start a second one beside it."""
    location = run_location(spec, paths)
    if spec.kind != "finetune" or storage.is_url(location):
        return  # a remote trainer holds its own lock on its machine
    try:
        ensure_no_writer(location)
    except RunFolderBusy as exc:
        raise ValueError(str(exc)) from exc


def _launch(job_id: str, spec: JobSpec, attempt: int, paths: Paths, store: Store) -> str:
    try:
        argv, env = command(spec, paths)
        launch = BACKENDS[spec.backend].submit(job_id, attempt, argv, env, spec, paths)
    except Exception as exc:
        store.update_job(job_id, status="failed", finished_at=datetime.now(), message=f"could not start: {exc}")
        raise ValueError(f"could not start the job: {exc}") from exc
    store.update_job(job_id, status="running" if spec.backend == "local" else "queued",
                     external_id=launch.external_id, pid=launch.pid)
    if spec.kind in RUN_KINDS:
        store.upsert_run(spec.name, spec.kind, spec.preset, {"job": job_id, "spec": spec.to_dict()}, "running",
                         run_location(spec, paths))
    return job_id


def stop(job_id: str, paths: Paths, store: Store | None = None) -> None:
    store = store or _store(paths)
    job = _get(store, job_id)
    if job.status in TERMINAL:
        return
    try:
        BACKENDS[job.backend].stop(job, paths)
    except Exception as exc:
        raise ValueError(f"could not stop {job_id}: {exc}") from exc
    store.update_job(job_id, status="stopped", finished_at=datetime.now(), message="stopped by the user")
    _update_run(store, JobSpec.from_dict(job.spec), "stopped")


def logs(job_id: str, paths: Paths, store: Store | None = None) -> str:
    """The job's output so far (progress bars collapsed to their last state)."""
    store = store or _store(paths)
    job = _get(store, job_id)
    try:
        return clean_log(BACKENDS[job.backend].logs(job, paths))
    except Exception as exc:  # an unreachable cluster must not break the page
        return f"(logs unavailable: {exc})"


def refresh(job_id: str, paths: Paths, store: Store | None = None) -> str:
    """Ask the backend; on a change record it. A finished run is registered; a dead one marked failed."""
    store = store or _store(paths)
    job = _get(store, job_id)
    if job.status in TERMINAL:
        return job.status
    try:
        status, message = BACKENDS[job.backend].poll(job, paths)
    except Exception as exc:
        status, message = None, f"cannot reach the backend: {exc}"
    if status is None:
        if message and message != job.message:
            store.update_job(job_id, message=message)
        return job.status
    spec = JobSpec.from_dict(job.spec)
    if status == "succeeded":
        try:
            register_run(spec, paths, store)
        except Exception as exc:
            status, message = "failed", f"finished, but its results could not be registered: {exc}"
    if status in ("failed", "stopped"):
        tail = "\n".join(logs(job_id, paths, store).rstrip().splitlines()[-LOG_TAIL_LINES:])
        message = f"{message}\n{tail}" if tail else message
        _update_run(store, spec, status)
    if status != job.status or message != job.message:
        store.update_job(job_id, status=status, message=message,
                         **({"finished_at": datetime.now()} if status in TERMINAL else {}))
    return status


def refresh_all(paths: Paths, store: Store | None = None) -> None:
    store = store or _store(paths)
    for job_id in store.list_jobs()["id"]:
        refresh(job_id, paths, store)


def _get(store: Store, job_id: str):
    job = store.get_job(job_id)
    if job is None:
        raise ValueError(f"no job {job_id!r}")
    return job


def _update_run(store: Store, spec: JobSpec, status: str) -> None:
    if store.get_run(spec.name) is not None:
        store.update_run_status(spec.name, status)


def view(job_id: str, paths: Paths, store: Store | None = None) -> JobView:
    store = store or _store(paths)
    job = _get(store, job_id)
    spec = JobSpec.from_dict(job.spec)
    location = run_location(spec, paths)
    config = (storage.read_json(storage.join(location, "run_config.json")) or {}) if spec.kind == "finetune" else {}
    active = spec.kind != "finetune" and job.status in ("queued", "running")
    return JobView(id=job.id, spec=spec, status=job.status, backend=job.backend, message=job.message,
                   created_at=job.created_at, finished_at=job.finished_at, location=location,
                   metrics=read_metrics(location) if spec.kind == "finetune" else [],
                   total_steps=config.get("total_steps"),
                   progress=log_progress(logs(job_id, paths, store)) if active else None)


def list_views(paths: Paths, store: Store | None = None) -> list[JobView]:
    """Every job, refreshed from its backend first."""
    store = store or _store(paths)
    refresh_all(paths, store)
    return [view(job_id, paths, store) for job_id in store.list_jobs()["id"]]


def wait(job_id: str, paths: Paths, timeout: float = 600.0, poll_s: float = 1.0, store: Store | None = None) -> str:
    """Refresh until the job ends (tests, CLI); returns the final status."""
    store = store or _store(paths)
    deadline = time.time() + timeout
    while True:
        status = refresh(job_id, paths, store)
        if status in TERMINAL or time.time() > deadline:
            return status
        time.sleep(poll_s)
