"""The store held by another process, for page tests: for real (a second DuckDB connection in a subprocess)
or simulated (every connection refused at once, without the store's 5 s lock wait)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from interp.store.core import StoreBase, StoreLockedError

HOLDER_PID = 4242
"""The pid `store_refused` says holds the file."""

HOLD = """
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)  # even a reader keeps every other process out of the file
print("held", flush=True)
sys.stdin.read()
"""


@contextmanager
def store_held(db: Path) -> Iterator[int]:
    """Another process holds the DuckDB file until the block ends; yields its pid."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder.pid
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


@contextmanager
def store_refused() -> Iterator[None]:
    """Every store connection fails as if process `HOLDER_PID` held the file."""
    def refused(self):
        raise StoreLockedError(self.path, 5.0, "IO Error: Could not set lock on file: Conflicting lock is held in "
                                               f"/usr/bin/python3 (PID {HOLDER_PID})")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(StoreBase, "_connect", refused)
        yield
