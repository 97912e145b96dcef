"""One writer per run folder: the second acquisition fails at once and names the holder; a killed holder frees it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from interp.run_lock import LOCK_FILE, RunFolderBusy, ensure_no_writer, run_writer

HOLD = """
import sys, time
from interp.run_lock import run_writer
with run_writer(sys.argv[1]):
    print("held", flush=True)
    time.sleep(300)
"""


def busy(folder: Path, pid: int) -> str:
    return re.escape(f"run folder {folder} is being written by process {pid}; stop that job first")


def test_second_writer_fails_at_once_with_the_holders_pid(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "a"
    with run_writer(run):
        assert (run / LOCK_FILE).read_text().strip() == str(os.getpid())
        with pytest.raises(RunFolderBusy, match=busy(run, os.getpid())) as caught, run_writer(run):
            pass
        assert caught.value.pid == os.getpid() and caught.value.folder == run
        with pytest.raises(RunFolderBusy, match=busy(run, os.getpid())):
            ensure_no_writer(run)
    ensure_no_writer(run)  # released when the block ends
    with run_writer(run):
        pass
    ensure_no_writer(tmp_path / "never-locked")


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[1])
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunFolderBusy, match=busy(run, holder.pid)):
            ensure_no_writer(run)
        with pytest.raises(RunFolderBusy, match=busy(run, holder.pid)), run_writer(run):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    ensure_no_writer(run)  # the kernel dropped the lock with its holder
    with run_writer(run):
        assert (run / LOCK_FILE).read_text().strip() == str(os.getpid())


def test_finetune_refuses_a_folder_another_trainer_writes(tmp_path: Path) -> None:
    from interp.interpreters.finetune import finetune
    from interp.interpreters.training import FinetuneConfig

    run, data = tmp_path / "run", tmp_path / "ds"
    data.mkdir()
    (data / "train.jsonl").write_text("")
    cfg = FinetuneConfig(dataset=str(data), out=str(run), device="cpu")
    with run_writer(run), pytest.raises(RunFolderBusy, match=busy(run, os.getpid())):
        finetune(cfg, tmp_path / "models", tmp_path / "datasets")  # refused before any data or model is read
