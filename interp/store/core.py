"""The store's connection core: open the DuckDB file per call, wait out other processes' locks,
run the schema migrations, and the JSON helpers every entity module shares.

DuckDB lets one process at a time hold a database file (a writer blocks even readers in
other processes), so every public method opens a connection, does its work and closes it;
a connection is never kept on the object.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from interp.store.schema import MIGRATIONS, SCHEMA_VERSION

_LOCK_MESSAGE = "Could not set lock"


class StoreLockedError(RuntimeError):
    """Another process held the database file for longer than the lock timeout.

    ``path`` is the file, ``holder_pid`` the holding process when DuckDB names it (else None).
    """

    def __init__(self, path: Path, waited: float, detail: str = "") -> None:
        self.path = Path(path)
        self.waited = waited
        pid = re.search(r"PID (\d+)", detail)
        self.holder_pid = int(pid.group(1)) if pid else None
        super().__init__(f"another process holds the database {self.path} (waited {waited:g} s); DuckDB "
                         f"allows one process per file: close that process or wait for it to finish. ({detail})")


def dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def decode(df: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """Turn JSON text columns into Python objects."""
    for c in columns:
        df[c] = [loads(v) if isinstance(v, str) else None for v in df[c]]
    return df


def _version(con: duckdb.DuckDBPyConnection) -> int:
    """The file's schema version; 0 for a new file."""
    if not con.execute("SELECT 1 FROM duckdb_tables() WHERE table_name = 'schema_version' "
                       "AND schema_name = 'main'").fetchone():
        return 0
    return con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]


class StoreBase:
    """A DuckDB file brought up to SCHEMA_VERSION; one short-lived connection per call.

    The entity mixins (`interp.store.thresholds`, `annotations`, `runs`, `jobs`, `chats`)
    subclass this and `interp.store.db.Store` combines them.
    """

    def __init__(self, path: str | Path, lock_timeout: float = 5.0) -> None:
        self.path = Path(path)
        self.lock_timeout = lock_timeout
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._migrate()

    @contextmanager
    def _connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open the file, retrying while another process holds its lock; always close."""
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.02
        while True:
            try:
                con = duckdb.connect(str(self.path))
                break
            except duckdb.IOException as e:
                if _LOCK_MESSAGE not in str(e):
                    raise
                if time.monotonic() >= deadline:
                    raise StoreLockedError(self.path, self.lock_timeout, str(e)) from e
                time.sleep(delay)
                delay = min(delay * 2, 0.25)
        try:
            yield con
        finally:
            con.close()

    @contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection inside BEGIN ... COMMIT, rolled back on error."""
        with self._connect() as con:
            con.begin()
            try:
                yield con
            except BaseException:
                con.rollback()
                raise
            con.commit()

    def _migrate(self) -> None:
        """Bring the file up to SCHEMA_VERSION; only a read when it is already there."""
        with self._connect() as con:
            if _version(con) == SCHEMA_VERSION:
                return
        with self._transaction() as con:
            con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
                        "applied_at TIMESTAMP NOT NULL DEFAULT now())")
            current = _version(con)  # re-read: another process may have migrated meanwhile
            if current > SCHEMA_VERSION:
                raise RuntimeError(f"{self.path} has schema version {current}, newer than this "
                                   f"code's {SCHEMA_VERSION}; update the project")
            for version in range(current + 1, SCHEMA_VERSION + 1):
                con.execute(MIGRATIONS[version - 1])
                con.execute("INSERT INTO schema_version (version) VALUES (?)", [version])

    def _df(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        with self._connect() as con:
            return con.execute(sql, list(params)).df()

    def _one(self, sql: str, params: Sequence[Any]) -> dict[str, Any] | None:
        """The first row as a dict of Python values, or None."""
        with self._connect() as con:
            cur = con.execute(sql, list(params))
            row = cur.fetchone()
            return None if row is None else dict(zip([d[0] for d in cur.description], row, strict=True))
