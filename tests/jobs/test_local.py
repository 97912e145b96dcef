"""The local backend's process handling: a trainer dies with its worker; what is left of a dead group is killed."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil

from interp.jobs.local import kill_group
from interp.jobs.worker import die_with_parent
from interp.settings import ROOT

# A stand-in worker: leads its own session, starts a child that outlives it unless told otherwise, exits.
ORPHAN_MAKER = """
import os, subprocess, sys
from interp.jobs.worker import die_with_parent
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"],
                         preexec_fn=die_with_parent(os.getpid()) if sys.argv[1] == "tied" else None)
print(child.pid, flush=True)
sys.stdin.read()
"""


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_dead(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.time() + timeout
    while _alive(pid) and time.time() < deadline:
        time.sleep(0.05)
    return not _alive(pid)


def _start(mode: str) -> tuple[subprocess.Popen, int]:
    worker = subprocess.Popen([sys.executable, "-c", ORPHAN_MAKER, mode], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, start_new_session=True, cwd=ROOT)
    return worker, int(worker.stdout.readline())


def test_a_child_tied_to_its_worker_dies_with_it() -> None:
    worker, child = _start("tied")
    assert _alive(child)
    worker.kill()
    worker.wait(timeout=10)
    assert _wait_dead(child), "the child outlived its worker"


def test_kill_group_ends_what_a_dead_worker_left_and_nothing_else() -> None:
    worker, child = _start("free")
    external_id = f"{worker.pid}:{psutil.Process(worker.pid).create_time()}"  # as LocalBackend.submit records it
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])  # another group
    try:
        worker.kill()
        worker.wait(timeout=10)
        assert _alive(child)  # an orphan, still in the dead worker's process group
        assert kill_group(worker.pid, f"{worker.pid}:None") == []  # no start time: nothing is touched
        assert kill_group(worker.pid, external_id) == [child]
        assert _wait_dead(child) and _alive(bystander.pid)
    finally:
        bystander.kill()
        bystander.wait(timeout=10)
        if _alive(child):
            psutil.Process(child).kill()


def test_die_with_parent_is_a_preexec_function_on_linux() -> None:
    assert callable(die_with_parent(1)) == sys.platform.startswith("linux")
