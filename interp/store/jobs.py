"""Jobs in the store: what was submitted to a backend (`local`, `ray`) for a run, and its state."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from interp.store.core import StoreBase, decode
from interp.store.records import JobRecord

# update_job may only touch these columns: the names are formatted into SQL, values never are.
JOB_FIELDS = ("run_id", "backend", "spec", "status", "external_id", "pid", "address",
              "finished_at", "message")


class Jobs(StoreBase):
    """The `jobs` table."""

    def upsert_job(self, id: str, run_id: str | None, backend: str, spec: dict[str, Any],
                   status: str, external_id: str | None = None, pid: int | None = None,
                   address: str | None = None, message: str | None = None) -> None:
        with self._connect() as con:
            con.execute(
                "INSERT INTO jobs (id, run_id, backend, spec, status, external_id, pid, address, "
                "message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                "run_id = excluded.run_id, backend = excluded.backend, spec = excluded.spec, "
                "status = excluded.status, external_id = excluded.external_id, pid = excluded.pid, "
                "address = excluded.address, message = excluded.message, updated_at = now()",
                [id, run_id, backend, json.dumps(spec), status, external_id, pid, address, message])

    def get_job(self, id: str) -> JobRecord | None:
        row = self._one("SELECT * FROM jobs WHERE id = ?", [id])
        return None if row is None else JobRecord(**{**row, "spec": json.loads(row["spec"])})

    def list_jobs(self, status: str | None = None, run_id: str | None = None) -> pd.DataFrame:
        df = self._df("SELECT * FROM jobs WHERE (? IS NULL OR status = ?) "
                      "AND (? IS NULL OR run_id = ?) ORDER BY created_at DESC",
                      [status, status, run_id, run_id])
        return decode(df, "spec")

    def update_job(self, id: str, **fields: Any) -> None:
        """Set some of JOB_FIELDS (e.g. status=, pid=, finished_at=datetime, message=)."""
        unknown = set(fields) - set(JOB_FIELDS)
        if unknown or not fields:
            raise ValueError(f"update_job takes some of {JOB_FIELDS}, got {sorted(fields)}")
        if "spec" in fields:
            fields["spec"] = json.dumps(fields["spec"])
        assignments = ", ".join(f"{k} = ?" for k in fields)
        with self._connect() as con:
            if not con.execute(f"UPDATE jobs SET {assignments}, updated_at = now() WHERE id = ? "
                               "RETURNING id", [*fields.values(), id]).fetchall():
                raise KeyError(f"no job {id!r}")
