"""Reading the files a dataset or run folder holds: JSONL rows and a dataset's ``manifest.json``.

The one JSONL reader: dataset splits (``train.jsonl`` ...), predictions files. A run's
``metrics.jsonl`` may end in a half-written line while training; `read_metrics` in `interp.jobs`
reads it from (possibly remote) storage and skips such a line.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def read_jsonl(path: str | Path, limit: int | None = None,
               check: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file, blank lines skipped, at most ``limit`` of them.

    A line that is not a JSON object, or that ``check(row)`` rejects with ValueError, raises
    ValueError naming the file and the 1-based line number (``path:3: ...``).
    """
    path = Path(path)
    rows: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if limit is not None and len(rows) >= limit:
                break
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({err.msg})") from err
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            if check is not None:
                try:
                    check(row)
                except ValueError as err:
                    raise ValueError(f"{path}:{lineno}: {err}") from err
            rows.append(row)
    return rows


def read_manifest(dataset_dir: str | Path) -> dict[str, Any]:
    """A dataset folder's ``manifest.json`` (config, encoder, threshold_set, hash, sizes); {} if absent."""
    path = Path(dataset_dir) / "manifest.json"
    return json.loads(path.read_text()) if path.exists() else {}
