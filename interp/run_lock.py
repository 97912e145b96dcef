"""One writer per run folder: an advisory lock (``flock``) on ``<run>/.writer.lock``, held by the trainer.

Two trainers in one folder would interleave their metrics and overwrite each other's checkpoints, so
fine-tuning holds this lock for the whole run and a second trainer fails at once (`RunFolderBusy`).
The kernel drops the lock when its holder dies, however it dies: a SIGKILL leaves no stale lock.
The file itself stays (unlinking it would let two processes lock two different inodes); it holds
the last holder's pid, which is only read while the lock is held.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_FILE = ".writer.lock"


class RunFolderBusy(RuntimeError):
    """Another process writes this run folder."""

    def __init__(self, folder: Path, pid: int | None) -> None:
        who = f"process {pid}" if pid else "another process"
        super().__init__(f"run folder {folder} is being written by {who}; stop that job first")
        self.folder, self.pid = folder, pid


@contextmanager
def run_writer(folder: str | Path) -> Iterator[Path]:
    """Hold the run folder's writer lock (creating the folder) until the block ends; raise `RunFolderBusy` if held."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fh = open(folder / LOCK_FILE, "a+")  # not inherited by child processes (PEP 446)
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunFolderBusy(folder, _read_pid(folder)) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        yield folder
    finally:
        fh.close()  # closing the last descriptor releases the lock


def ensure_no_writer(folder: str | Path) -> None:
    """Raise `RunFolderBusy` if a process writes ``folder`` now (checked before starting a second one)."""
    path = Path(folder) / LOCK_FILE
    if not path.exists():
        return
    with open(path) as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunFolderBusy(Path(folder), _read_pid(Path(folder))) from None
        fcntl.flock(fh, fcntl.LOCK_UN)


def _read_pid(folder: Path) -> int | None:
    try:
        return int((folder / LOCK_FILE).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
