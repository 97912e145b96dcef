"""What a job's run folder and log say while it runs: metrics rows, a terminal-like log, a `JobView`."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime

from interp import storage
from interp.jobs.spec import JobSpec

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


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
    progress: tuple[str, int, int] | None = None
    """An active evaluation job's last progress bar: (label, done, total)."""

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


TQDM = re.compile(r"(?:^|\n)([^\n|]*?):?\s*\d+%\|[^|\n]*\|\s*(\d+)/(\d+)")


def log_progress(log: str) -> tuple[str, int, int] | None:
    """(label, done, total) of the last progress bar in a cleaned log ("describe (x): 45%|…| 225/500"), else None."""
    found = TQDM.findall(log)
    if not found:
        return None
    label, done, total = found[-1]
    return label.strip(), int(done), int(total)


def clean_log(text: str) -> str:
    """What a terminal would show: progress bars redrawn with '\r' keep their last state, no escapes."""
    lines = []
    for line in ANSI.sub("", text).split("\n"):
        last = line.rstrip("\r").rsplit("\r", 1)[-1]
        if last.strip():
            lines.append(last)
    return "\n".join(lines)


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
