"""The ``local`` jobs backend: a detached worker process per job on this machine, and process liveness.

The worker (`interp.jobs.worker`) leads its own session, so it outlives a Streamlit rerun or restart;
it writes the command's exit code to ``exit.json`` in the job folder (``<data>/jobs/<job id>``).
Its trainer stays in its process group (whose id is the worker's pid) and dies with it; should one
outlive it all the same, the poll that finds the worker gone kills what is left of the group.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil

from interp import storage
from interp.jobs.backend import Launch
from interp.settings import ROOT, Paths


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
        if process_alive(job.pid, job.external_id):
            return "running", None
        kill_group(job.pid, job.external_id)  # a trainer must not go on writing a run folder of a failed job
        return "failed", "the worker process is gone without an exit code (killed, or the machine restarted)"

    def logs(self, job, paths) -> str:
        return storage.read_text(job_dir(paths, job.id) / "log.txt") or ""

    def stop(self, job, paths) -> None:
        if job.pid and process_alive(job.pid, job.external_id):
            os.killpg(job.pid, signal.SIGTERM)  # the worker leads its own session: it and the trainer
        else:
            kill_group(job.pid, job.external_id)


def _started(external_id: str | None) -> float | None:
    """The worker's start time recorded in its ``external_id`` ("pid:create_time"), None if unknown."""
    started = (external_id or "").partition(":")[2]
    return None if started in ("", "None") else float(started)


def _create_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def kill_group(pgid: int | None, external_id: str | None) -> list[int]:
    """SIGKILL what is left of a dead worker's process group; returns the pids signalled.

    Only processes started since the worker are touched: a process group id names the worker's pid,
    which the system may have handed to an unrelated process once the whole group was gone.
    """
    started = _started(external_id)
    if not pgid or started is None:
        return []  # without the worker's start time nothing tells its group from a later one
    since = started - 1.0
    killed = []
    for proc in psutil.process_iter(["pid", "create_time"]):
        try:
            if proc.pid == os.getpid() or os.getpgid(proc.pid) != pgid:
                continue
            if proc.info["create_time"] < since:
                continue
            proc.kill()
            killed.append(proc.pid)
        except (psutil.Error, ProcessLookupError, PermissionError):
            continue
    return killed


def process_alive(pid: int | None, external_id: str | None) -> bool:
    """Is this the same process (pid and start time: pids get reused), and not a zombie?"""
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
        started = _started(external_id)
        return started is None or abs(proc.create_time() - started) < 1.0
    except psutil.Error:
        return False
