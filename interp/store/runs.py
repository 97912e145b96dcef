"""Runs in the store: built datasets, fine-tuning/evaluation/baseline runs, their predictions and metrics."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from interp.store.core import StoreBase, decode, dumps
from interp.store.records import RunRecord

RUN_KINDS = ("finetune", "evaluate", "baseline")  # the runs.kind CHECK constraint


class Runs(StoreBase):
    """The `runs`, `predictions` and `metrics` tables."""

    def upsert_run(self, id: str, kind: str, preset: str | None, config: dict[str, Any],
                   status: str, path: str | Path | None) -> None:
        if kind not in RUN_KINDS:
            raise ValueError(f"run kind must be one of {RUN_KINDS}, got {kind!r}")
        with self._connect() as con:
            con.execute(
                "INSERT INTO runs (id, kind, preset, config, status, path) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, preset = excluded.preset, "
                "config = excluded.config, status = excluded.status, path = excluded.path, "
                "updated_at = now()",
                [id, kind, preset, json.dumps(config), status, None if path is None else str(path)])

    def get_run(self, id: str) -> RunRecord | None:
        row = self._one("SELECT * FROM runs WHERE id = ?", [id])
        return None if row is None else RunRecord(**{**row, "config": json.loads(row["config"])})

    def list_runs(self, kind: str | None = None) -> pd.DataFrame:
        df = self._df("SELECT * FROM runs WHERE (? IS NULL OR kind = ?) ORDER BY created_at DESC",
                      [kind, kind])
        return decode(df, "config")

    def update_run_status(self, id: str, status: str) -> None:
        with self._connect() as con:
            if not con.execute("UPDATE runs SET status = ?, updated_at = now() WHERE id = ? "
                               "RETURNING id", [status, id]).fetchall():
                raise KeyError(f"no run {id!r}")

    def save_predictions(self, run_id: str, eval_set: str, rows: Sequence[dict[str, Any]]) -> int:
        """Replace a run's predictions on one eval set. Each row: sample_index, prediction,
        and optionally prompt_encoding, truth, parsed (dict). Returns the row count."""
        frame = pd.DataFrame({
            "sample_index": pd.array([int(r["sample_index"]) for r in rows], dtype="Int64"),
            "prompt_encoding": pd.array([r.get("prompt_encoding") for r in rows], dtype=object),
            "prediction": pd.array([r["prediction"] for r in rows], dtype=object),
            "truth": pd.array([r.get("truth") for r in rows], dtype=object),
            "parsed": pd.array([dumps(r.get("parsed")) for r in rows], dtype=object),
        })
        with self._transaction() as con:
            con.execute("DELETE FROM predictions WHERE run_id = ? AND eval_set = ?", [run_id, eval_set])
            # A registered DataFrame inserts n rows in one statement (executemany is per row).
            con.register("new_predictions", frame)
            con.execute("INSERT INTO predictions SELECT ?, ?, sample_index, prompt_encoding::VARCHAR, "
                        "prediction::VARCHAR, truth::VARCHAR, parsed::JSON FROM new_predictions",
                        [run_id, eval_set])
            con.unregister("new_predictions")
        return len(rows)

    def get_predictions(self, run_id: str, eval_set: str | None = None) -> pd.DataFrame:
        df = self._df("SELECT * FROM predictions WHERE run_id = ? AND (? IS NULL OR eval_set = ?) "
                      "ORDER BY eval_set, sample_index", [run_id, eval_set, eval_set])
        return decode(df, "parsed")

    def save_metrics(self, run_id: str, eval_set: str, metrics: dict[str, Any]) -> None:
        """Store (or replace) a run's metrics on one eval set."""
        with self._connect() as con:
            con.execute("INSERT INTO metrics (run_id, eval_set, metrics) VALUES (?, ?, ?) "
                        "ON CONFLICT (run_id, eval_set) DO UPDATE SET metrics = excluded.metrics, "
                        "created_at = now()", [run_id, eval_set, json.dumps(metrics)])

    def get_metrics(self, run_id: str | None = None) -> pd.DataFrame:
        df = self._df("SELECT * FROM metrics WHERE (? IS NULL OR run_id = ?) "
                      "ORDER BY run_id, eval_set", [run_id, run_id])
        return decode(df, "metrics")
