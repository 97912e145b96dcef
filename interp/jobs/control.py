"""Fine-tuning and evaluation jobs: a validated spec, run by a registered backend, recorded in the store.

Backends (``BACKENDS``): ``local`` runs a detached worker process on this machine (it outlives a
Streamlit rerun or restart); ``ray`` submits to a Ray cluster's job server (see `interp.jobs.ray_backend`).
Each job's run folder (``metrics.jsonl``, ``status.json``, ``adapter/``) is the truth about progress;
`refresh` reads the backend, marks dead jobs failed with their last log lines, and registers a
finished run in the store. The app never passes a form field through a shell: specs become argument
vectors (`command`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from interp.interpreters.finetune import FinetuneConfig, resolve_dataset
from interp.jobs import storage
from interp.settings import ROOT, Paths

JOB_KINDS = ("finetune", "evaluate")
TERMINAL = ("succeeded", "failed", "stopped")
STATUSES = ("queued", "running", *TERMINAL)
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
ADDRESS_RE = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+(:\d+)?/?$")
LOG_TAIL_LINES = 12


@dataclass(frozen=True)
class EvaluateJobConfig:
    """An evaluation job: describe a held-out set with a run's interpreter and score it (§4)."""

    run: str
    """Run name (a folder under the runs dir / storage) or base:PRESET."""
    eval_set: str = "syn_eval"
    """Held-out set: syn_eval or mnist_eval."""
    n: int = 40
    """Samples to describe."""
    batch_size: int = 8
    """Encodings per generate call."""
    questions: bool = False
    """Also ask one grounded count question per image and store the answers' accuracy."""

    def __post_init__(self) -> None:
        from interp.evaluation.evaluate import EVAL_SETS

        if self.eval_set not in EVAL_SETS:
            raise ValueError(f"eval_set must be one of {EVAL_SETS}, got {self.eval_set!r}")
        if self.n < 1 or self.batch_size < 1:
            raise ValueError("n and batch_size must be ≥ 1")
        if not (self.run.startswith("base:") or NAME_RE.match(self.run)):
            raise ValueError(f"run must be a run name or base:PRESET, got {self.run!r}")


@dataclass(frozen=True)
class JobSpec:
    """What to run, where, and where its artifacts go. Validated on construction."""

    kind: str
    """'finetune' or 'evaluate'."""
    name: str
    """Run name: its folder under the runs dir (or storage) and its id in the store."""
    finetune: FinetuneConfig | None = None
    """The fine-tuning run (its ``out`` and ``sync_to`` are set from name and storage)."""
    evaluate: EvaluateJobConfig | None = None
    """The evaluation run."""
    backend: str = "local"
    """'local' (this machine) or 'ray' (a Ray cluster's job server)."""
    address: str | None = None
    """Ray dashboard address, e.g. http://127.0.0.1:8265 (an SSH tunnel's local end works)."""
    storage: str | None = None
    """Where run folders go: a path both sides can read, or an fsspec URL (s3://…); default: this runs dir."""
    remote_data_dir: str | None = None
    """Ray: the data folder on the cluster (models, datasets cached there); default: this machine's."""
    num_gpus: float = 0.0
    """Ray: GPUs reserved for the job (1 for a 7B QLoRA run)."""
    num_cpus: float = 1.0
    """Ray: CPUs reserved for the job."""
    python: str = "python"
    """Ray: the Python on the cluster that has the project's requirements."""

    def __post_init__(self) -> None:
        if self.kind not in JOB_KINDS:
            raise ValueError(f"kind must be one of {JOB_KINDS}, got {self.kind!r}")
        if not NAME_RE.match(self.name or ""):
            raise ValueError(f"run name must be 1-64 letters, digits, '.', '_' or '-' (starting with a letter "
                             f"or digit), got {self.name!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {sorted(BACKENDS)}, got {self.backend!r}")
        if self.backend == "ray" and not ADDRESS_RE.match(self.address or ""):
            raise ValueError(f"the ray backend needs the cluster's dashboard address as http://HOST:PORT "
                             f"(default port 8265), got {self.address!r}")
        if (self.kind == "finetune") != (self.finetune is not None) or \
                (self.kind == "evaluate") != (self.evaluate is not None):
            raise ValueError(f"a {self.kind} job needs exactly its own config ({self.kind}=...)")
        if self.num_gpus < 0 or self.num_cpus <= 0:
            raise ValueError("num_gpus must be ≥ 0 and num_cpus > 0")
        if self.kind == "evaluate" and self.storage and storage.is_url(self.storage):
            raise ValueError("evaluation jobs read the adapter from a shared path; use a path as storage")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "JobSpec":
        names = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in names}
        if d.get("finetune"):
            d["finetune"] = FinetuneConfig.from_dict(d["finetune"])
        if d.get("evaluate"):
            d["evaluate"] = EvaluateJobConfig(**d["evaluate"])
        return cls(**d)

    @property
    def preset(self) -> str | None:
        return self.finetune.preset if self.finetune else None


# --- backends ----------------------------------------------------------------------------------

@dataclass
class Launch:
    """What a backend returns from submit: how to find the job again."""

    external_id: str | None = None
    pid: int | None = None


class Backend(Protocol):
    def submit(self, job_id: str, attempt: int, argv: list[str], env: dict[str, str], spec: JobSpec,
               paths: Paths) -> Launch: ...

    def poll(self, job: Any, paths: Paths) -> tuple[str | None, str | None]:
        """(status in STATUSES, message); status None when the backend cannot tell right now."""

    def logs(self, job: Any, paths: Paths) -> str: ...

    def stop(self, job: Any, paths: Paths) -> None: ...


def job_dir(paths: Paths, job_id: str) -> Path:
    return paths.data_dir / "jobs" / job_id


class LocalBackend:
    """A detached worker (`interp.jobs.worker`) per job, in its own session; exit code in ``exit.json``."""

    def submit(self, job_id, attempt, argv, env, spec, paths) -> Launch:
        folder = job_dir(paths, job_id)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "exit.json").unlink(missing_ok=True)
        home = {"data_dir": str(paths.data_dir), "runs_dir": str(paths.runs_dir), "db_path": str(paths.db_path)}
        (folder / "job.json").write_text(json.dumps({"argv": argv, "env": env, "cwd": str(ROOT), "nice": 5,
                                                     "attempt": attempt, "job_id": job_id, "home": home}))
        proc = subprocess.Popen([sys.executable, "-m", "interp.jobs.worker", str(folder)], cwd=ROOT,
                                env={**os.environ, **env}, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
        return Launch(external_id=f"{proc.pid}:{_create_time(proc.pid)}", pid=proc.pid)

    def poll(self, job, paths):
        folder = job_dir(paths, job.id)
        done = storage.read_json(folder / "exit.json")
        if done is not None:
            if done.get("rc") == 0:
                return "succeeded", None
            if done.get("stopped"):
                return "stopped", "stopped by the user"
            return "failed", f"exit code {done.get('rc')}"
        if _alive(job.pid, job.external_id):
            return "running", None
        return "failed", "the worker process is gone without an exit code (killed, or the machine restarted)"

    def logs(self, job, paths) -> str:
        return storage.read_text(job_dir(paths, job.id) / "log.txt") or ""

    def stop(self, job, paths) -> None:
        if job.pid and _alive(job.pid, job.external_id):
            os.killpg(job.pid, signal.SIGTERM)  # the worker leads its own session: it and the trainer


def _create_time(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _alive(pid: int | None, external_id: str | None) -> bool:
    """Is this the same process (pid and start time: pids get reused), and not a zombie?"""
    import psutil

    if not pid:
        return False
    try:
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our child that has exited
    except ChildProcessError:
        pass
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        started = (external_id or "").partition(":")[2]
        return not started or started == "None" or abs(proc.create_time() - float(started)) < 1.0
    except psutil.Error:
        return False


class _RayProxy:
    """Imports Ray only when a Ray job is touched (the app starts without it)."""

    def __getattr__(self, name: str) -> Any:
        from interp.jobs.ray_backend import RayBackend

        return getattr(RayBackend(), name)


BACKENDS: dict[str, Backend] = {"local": LocalBackend(), "ray": _RayProxy()}


# --- building the command ------------------------------------------------------------------------

def run_location(spec: JobSpec, paths: Paths, name: str | None = None) -> str:
    """The run folder (of ``name``, default the spec's run), as both sides see it: under storage or this runs dir."""
    return storage.join(spec.storage or str(paths.runs_dir), name or spec.name)


def command(spec: JobSpec, paths: Paths) -> tuple[list[str], dict[str, str]]:
    """The job's argument vector and environment. Ships the dataset to storage when storage is set."""
    from interp.configs import config_to_argv

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
    ev = spec.evaluate
    _seed_eval_store(Path(location) / "eval.duckdb", paths)
    target = ev.run if ev.run.startswith("base:") else run_location(spec, paths, ev.run)
    env["N2W_DB"] = storage.join(location, "eval.duckdb")  # the job's own store, merged home when it ends
    return [python, "-m", "interp", "evaluate", "--run", target, "--set", ev.eval_set, "--n", str(ev.n),
            "--batch-size", str(ev.batch_size), "--run-id", spec.name, "--json",
            *(["--questions"] if ev.questions else [])], env


def _seed_eval_store(db: Path, paths: Paths) -> None:
    """The evaluation job's own store starts with this store's default thresholds and MNIST annotations."""
    from interp.store.db import Store

    home, job_store = _store(paths), Store(db)
    default = home.get_threshold_set()
    if default is not None:
        job_store.save_threshold_set(default.name, default.thresholds, notes=default.notes, make_default=True)
    for a in home.list_annotations(image_source="mnist").to_dict("records"):
        job_store.save_annotation(a["annotator"], a["image_source"], a["image_index"], a["counts"],
                                  a["description"])


# --- the job lifecycle ---------------------------------------------------------------------------

@dataclass
class JobView:
    """A job record plus what its run folder says (for the jobs page and CLI)."""

    id: str
    spec: JobSpec
    status: str
    backend: str
    message: str | None
    created_at: datetime
    finished_at: datetime | None
    location: str
    metrics: list[dict] = field(default_factory=list)
    total_steps: int | None = None

    @property
    def elapsed_s(self) -> float:
        end = self.finished_at or datetime.now(self.created_at.tzinfo)
        return max(0.0, (end - self.created_at).total_seconds())

    @property
    def step(self) -> int | None:
        return max((m["step"] for m in self.metrics if "step" in m), default=None)

    @property
    def eta_s(self) -> float | None:
        if self.status != "running":
            return None
        etas = [m.get("eta_s") for m in self.metrics if m.get("eta_s") is not None]
        return etas[-1] if etas else None

    def last(self, key: str) -> float | None:
        values = [m[key] for m in self.metrics if key in m]
        return values[-1] if values else None


def _store(paths: Paths):
    from interp.store.db import Store

    return Store(paths.db_path)


def submit(spec: JobSpec, paths: Paths, store=None) -> str:
    """Start a job; returns its id. Raises ValueError with a readable message when it cannot start."""
    store = store or _store(paths)
    for row in store.list_jobs().to_dict("records"):
        if row["spec"].get("name") == spec.name and row["status"] in ("queued", "running"):
            raise ValueError(f"run '{spec.name}' already has a {row['status']} job ({row['id']}); stop it first")
    job_id = f"{spec.kind[:2]}-{spec.name}-{uuid.uuid4().hex[:6]}"
    record = {**spec.to_dict(), "attempt": 1}
    store.upsert_job(job_id, spec.name, spec.backend, record, "queued", address=spec.address)
    return _launch(job_id, spec, 1, paths, store)


def resume(job_id: str, paths: Paths, store=None) -> str:
    """Start a stopped or failed job again under the same id; fine-tuning resumes from its last checkpoint."""
    store = store or _store(paths)
    job = _get(store, job_id)
    if job.status not in ("failed", "stopped"):
        raise ValueError(f"job {job_id} is {job.status}; only a failed or stopped job can be resumed")
    spec = JobSpec.from_dict(job.spec)
    attempt = int(job.spec.get("attempt", 1)) + 1
    store.update_job(job_id, spec={**spec.to_dict(), "attempt": attempt}, status="queued", finished_at=None,
                     message=None)
    return _launch(job_id, spec, attempt, paths, store)


def _launch(job_id: str, spec: JobSpec, attempt: int, paths: Paths, store) -> str:
    try:
        argv, env = command(spec, paths)
        launch = BACKENDS[spec.backend].submit(job_id, attempt, argv, env, spec, paths)
    except Exception as exc:
        store.update_job(job_id, status="failed", finished_at=datetime.now(), message=f"could not start: {exc}")
        raise ValueError(f"could not start the job: {exc}") from exc
    store.update_job(job_id, status="running" if spec.backend == "local" else "queued",
                     external_id=launch.external_id, pid=launch.pid)
    store.upsert_run(spec.name, spec.kind, spec.preset, {"job": job_id, "spec": spec.to_dict()}, "running",
                     run_location(spec, paths))
    return job_id


def stop(job_id: str, paths: Paths, store=None) -> None:
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


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def clean_log(text: str) -> str:
    """What a terminal would show: progress bars redrawn with '\r' keep their last state, no escapes."""
    lines = []
    for line in ANSI.sub("", text).split("\n"):
        last = line.rstrip("\r").rsplit("\r", 1)[-1]
        if last.strip():
            lines.append(last)
    return "\n".join(lines)


def logs(job_id: str, paths: Paths, store=None) -> str:
    """The job's output so far (progress bars collapsed to their last state)."""
    store = store or _store(paths)
    job = _get(store, job_id)
    try:
        return clean_log(BACKENDS[job.backend].logs(job, paths))
    except Exception as exc:  # an unreachable cluster must not break the page
        return f"(logs unavailable: {exc})"


def refresh(job_id: str, paths: Paths, store=None) -> str:
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
            _register(spec, paths, store)
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


def refresh_all(paths: Paths, store=None) -> None:
    store = store or _store(paths)
    for job_id in store.list_jobs()["id"]:
        refresh(job_id, paths, store)


def _get(store, job_id: str):
    job = store.get_job(job_id)
    if job is None:
        raise ValueError(f"no job {job_id!r}")
    return job


def _update_run(store, spec: JobSpec, status: str) -> None:
    if store.get_run(spec.name) is not None:
        store.update_run_status(spec.name, status)


def _register(spec: JobSpec, paths: Paths, store) -> None:
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
    from interp.store.db import Store

    job_store = Store(Path(location) / "eval.duckdb")
    run = job_store.get_run(spec.name)
    if run is None:
        raise FileNotFoundError(f"the evaluation wrote no run into {location}/eval.duckdb")
    store.upsert_run(run.id, run.kind, run.preset, run.config, run.status, run.path)
    for rec in job_store.get_metrics(run.id).to_dict("records"):
        preds = job_store.get_predictions(run.id, rec["eval_set"]).to_dict("records")
        store.save_predictions(run.id, rec["eval_set"], preds)
        store.save_metrics(run.id, rec["eval_set"], rec["metrics"])


# --- reading progress --------------------------------------------------------------------------

def read_metrics(location: str) -> list[dict]:
    """The run's metrics.jsonl rows (a half-written last line is skipped; rows a resume redid are dropped)."""
    text = storage.read_text(storage.join(location, "metrics.jsonl")) or ""
    rows: list[dict] = []
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if rows and row.get("step", 0) < rows[-1].get("step", 0):
            # resumed from an earlier checkpoint: the steps logged after it were redone
            rows = [r for r in rows if r.get("step", 0) < row.get("step", 0)]
        rows.append(row)
    return rows


def view(job_id: str, paths: Paths, store=None) -> JobView:
    store = store or _store(paths)
    job = _get(store, job_id)
    spec = JobSpec.from_dict(job.spec)
    location = run_location(spec, paths)
    config = (storage.read_json(storage.join(location, "run_config.json")) or {}) if spec.kind == "finetune" else {}
    return JobView(id=job.id, spec=spec, status=job.status, backend=job.backend, message=job.message,
                   created_at=job.created_at, finished_at=job.finished_at, location=location,
                   metrics=read_metrics(location) if spec.kind == "finetune" else [],
                   total_steps=config.get("total_steps"))


def list_views(paths: Paths, store=None) -> list[JobView]:
    """Every job, refreshed from its backend first."""
    store = store or _store(paths)
    refresh_all(paths, store)
    return [view(job_id, paths, store) for job_id in store.list_jobs()["id"]]


def wait(job_id: str, paths: Paths, timeout: float = 600.0, poll_s: float = 1.0, store=None) -> str:
    """Refresh until the job ends (tests, CLI); returns the final status."""
    store = store or _store(paths)
    deadline = time.time() + timeout
    while True:
        status = refresh(job_id, paths, store)
        if status in TERMINAL or time.time() > deadline:
            return status
        time.sleep(poll_s)
