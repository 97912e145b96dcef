"""``python -m interp.jobs.worker JOB_DIR``: runs one local job's command and records its exit code.

Started detached (its own session) by the ``local`` backend, so it outlives the app. It appends the
command's output to ``log.txt`` and writes ``exit.json`` when the command ends; a worker killed
outright leaves no ``exit.json``, which the jobs layer reports as a failure.

The command (the trainer) stays in the worker's process group, so stopping the group stops both, and on
Linux it is told to die with the worker (``PR_SET_PDEATHSIG``): a SIGKILL on the worker alone leaves no
trainer writing the run folder behind the jobs layer's back.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from interp.settings import Paths


def main(folder: Path) -> int:
    job = json.loads((folder / "job.json").read_text())
    os.nice(int(job.get("nice", 0)))  # the app on the same machine stays responsive
    stopped = False
    with open(folder / "log.txt", "ab", buffering=0) as log:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        log.write(f"[worker] {stamp} attempt {job.get('attempt', 1)}: {' '.join(job['argv'])}\n".encode())
        proc = subprocess.Popen(job["argv"], cwd=job["cwd"], env={**os.environ, **job["env"]},
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                preexec_fn=die_with_parent(os.getpid()))

        def on_term(signum, frame):
            nonlocal stopped
            stopped = True
            proc.terminate()

        signal.signal(signal.SIGTERM, on_term)
        rc = proc.wait()
        log.write(f"[worker] exit code {rc}{' (stopped)' if stopped else ''}\n".encode())
    tmp = folder / "exit.json.tmp"
    tmp.write_text(json.dumps({"rc": rc, "stopped": stopped, "time": time.time()}))
    tmp.replace(folder / "exit.json")
    register(job, folder)
    return 0


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent: int):
    """A ``preexec_fn`` for the child: SIGKILL it when ``parent`` dies (Linux); elsewhere nothing is set."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # loaded before the fork: the child only calls into it

    def preexec() -> None:
        if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            os._exit(111)  # cannot promise to die with the worker: do not train at all
        if os.getppid() != parent:  # the worker died before prctl took effect
            os._exit(112)

    return preexec


def register(job: dict, folder: Path) -> None:
    """Record the outcome in the app's store now, not at the page's next poll (which would also do it)."""
    if "home" not in job:
        return
    # Deferred: control pulls in torch (FinetuneConfig) and the store; the worker stays small while the trainer runs.
    from interp.jobs import control as jobs

    home = job["home"]
    try:
        jobs.refresh(job["job_id"], Paths(data_dir=Path(home["data_dir"]), runs_dir=Path(home["runs_dir"]),
                                          db_path=Path(home["db_path"])))
    except Exception as exc:  # the app's next refresh retries; the job itself is done
        with open(folder / "log.txt", "a") as log:
            log.write(f"[worker] could not register the outcome yet (the app retries): {exc}\n")


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
