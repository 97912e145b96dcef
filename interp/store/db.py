"""The DuckDB store: threshold sets, samples, annotations, ratings, datasets, runs, jobs,
predictions, metrics and chats. The only module that imports duckdb.

DuckDB lets one process at a time hold a database file (a writer blocks even readers in
other processes), so every public method opens a connection, does its work and closes it;
a connection is never kept on the object. Long jobs append JSONL in their run folder
instead, read here with `read_jsonl`.
"""

from __future__ import annotations

import json
import math
import numbers
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

SCHEMA_VERSION = 1

# Migration i (0-based) takes the schema from version i to i + 1; later versions append.
MIGRATIONS: list[str] = [
    """
    CREATE SEQUENCE samples_id_seq;
    CREATE TABLE samples (
        id BIGINT PRIMARY KEY DEFAULT nextval('samples_id_seq'),
        source VARCHAR NOT NULL,            -- 'mnist' | 'synthetic' | 'upload' | 'drawing'
        split VARCHAR NOT NULL,
        source_index INTEGER,
        label INTEGER,
        pixels BLOB,                        -- 784 uint8 bytes, row-major [28, 28]
        path VARCHAR,
        created_at TIMESTAMP NOT NULL DEFAULT now()
    );
    CREATE TABLE threshold_sets (
        name VARCHAR PRIMARY KEY,
        thresholds JSON NOT NULL,           -- [8][4] floats
        notes VARCHAR NOT NULL DEFAULT '',
        is_default BOOLEAN NOT NULL DEFAULT false,
        created_at TIMESTAMP NOT NULL DEFAULT now(),
        updated_at TIMESTAMP NOT NULL DEFAULT now()
    );
    CREATE SEQUENCE annotations_id_seq;
    CREATE TABLE annotations (
        id BIGINT PRIMARY KEY DEFAULT nextval('annotations_id_seq'),
        annotator VARCHAR NOT NULL,
        image_source VARCHAR NOT NULL,
        image_index INTEGER NOT NULL,
        counts JSON NOT NULL,               -- {shape: n}
        description VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL DEFAULT now(),
        updated_at TIMESTAMP NOT NULL DEFAULT now(),
        UNIQUE (annotator, image_source, image_index)
    );
    CREATE SEQUENCE ratings_id_seq;
    CREATE TABLE ratings (
        id BIGINT PRIMARY KEY DEFAULT nextval('ratings_id_seq'),
        rater VARCHAR NOT NULL,
        run_id VARCHAR,
        image_source VARCHAR NOT NULL,
        image_index INTEGER NOT NULL,
        prediction VARCHAR NOT NULL,
        verdict VARCHAR NOT NULL CHECK (verdict IN ('correct', 'partial', 'wrong')),
        per_shape JSON,
        comment VARCHAR NOT NULL DEFAULT '',
        created_at TIMESTAMP NOT NULL DEFAULT now()
    );
    CREATE TABLE datasets (
        id VARCHAR PRIMARY KEY,             -- content hash
        name VARCHAR NOT NULL,
        path VARCHAR NOT NULL,
        threshold_set VARCHAR,
        encoder VARCHAR NOT NULL,
        n_train INTEGER NOT NULL,
        n_val INTEGER NOT NULL,
        n_test INTEGER NOT NULL,
        manifest JSON NOT NULL,
        created_at TIMESTAMP NOT NULL DEFAULT now()
    );
    CREATE TABLE runs (
        id VARCHAR PRIMARY KEY,
        kind VARCHAR NOT NULL CHECK (kind IN ('finetune', 'evaluate', 'baseline')),
        preset VARCHAR,
        config JSON NOT NULL,
        status VARCHAR NOT NULL,
        path VARCHAR,
        created_at TIMESTAMP NOT NULL DEFAULT now(),
        updated_at TIMESTAMP NOT NULL DEFAULT now()
    );
    CREATE TABLE jobs (
        id VARCHAR PRIMARY KEY,
        run_id VARCHAR,
        backend VARCHAR NOT NULL,
        spec JSON NOT NULL,
        status VARCHAR NOT NULL,
        external_id VARCHAR,
        pid INTEGER,
        address VARCHAR,
        created_at TIMESTAMP NOT NULL DEFAULT now(),
        updated_at TIMESTAMP NOT NULL DEFAULT now(),
        finished_at TIMESTAMP,
        message VARCHAR
    );
    CREATE TABLE predictions (
        run_id VARCHAR NOT NULL,
        eval_set VARCHAR NOT NULL,
        sample_index INTEGER NOT NULL,
        prompt_encoding VARCHAR,
        prediction VARCHAR NOT NULL,
        truth VARCHAR,
        parsed JSON
    );
    CREATE TABLE metrics (
        run_id VARCHAR NOT NULL,
        eval_set VARCHAR NOT NULL,
        metrics JSON NOT NULL,
        created_at TIMESTAMP NOT NULL DEFAULT now(),
        PRIMARY KEY (run_id, eval_set)
    );
    CREATE SEQUENCE conversations_id_seq;
    CREATE TABLE conversations (
        id BIGINT PRIMARY KEY DEFAULT nextval('conversations_id_seq'),
        title VARCHAR NOT NULL,
        image JSON,                         -- {source, index, pixels: [784 ints]}
        encoding VARCHAR,
        threshold_set VARCHAR,
        model VARCHAR,
        created_at TIMESTAMP NOT NULL DEFAULT now()
    );
    CREATE TABLE messages (
        conversation_id BIGINT NOT NULL,
        turn INTEGER NOT NULL,
        role VARCHAR NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
        content VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL DEFAULT now(),
        PRIMARY KEY (conversation_id, turn)
    );
    """,
]
assert len(MIGRATIONS) == SCHEMA_VERSION

TABLES = ("samples", "threshold_sets", "annotations", "ratings", "datasets", "runs", "jobs",
          "predictions", "metrics", "conversations", "messages")
RUN_KINDS = ("finetune", "evaluate", "baseline")
VERDICTS = ("correct", "partial", "wrong")
ROLES = ("system", "user", "assistant")
# update_job may only touch these columns: the names are formatted into SQL, values never are.
JOB_FIELDS = ("run_id", "backend", "spec", "status", "external_id", "pid", "address",
              "finished_at", "message")
_LOCK_MESSAGE = "Could not set lock"


class StoreLockedError(RuntimeError):
    """Another process held the database file for longer than the lock timeout."""


@dataclass(frozen=True)
class ThresholdSetRecord:
    """A named set of bin thresholds: `thresholds[filter][k]`, 8 filters x 4 edges."""

    name: str
    thresholds: list[list[float]]
    notes: str
    is_default: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Sample:
    """One stored image; `pixels` is 784 uint8 bytes (row-major 28x28) or None."""

    id: int
    source: str
    split: str
    source_index: int | None
    label: int | None
    pixels: bytes | None
    path: str | None
    created_at: datetime

    @property
    def image(self) -> np.ndarray | None:
        """The pixels as uint8 [28, 28]."""
        if self.pixels is None:
            return None
        return np.frombuffer(self.pixels, dtype=np.uint8).reshape(28, 28)


@dataclass(frozen=True)
class Annotation:
    """One annotator's shape counts and description for one image."""

    id: int
    annotator: str
    image_source: str
    image_index: int
    counts: dict[str, int]
    description: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class DatasetRecord:
    """A built D_interpret dataset on disk; `id` is its content hash."""

    id: str
    name: str
    path: str
    threshold_set: str | None
    encoder: str
    n_train: int
    n_val: int
    n_test: int
    manifest: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class RunRecord:
    """A fine-tuning, evaluation or baseline run and its folder."""

    id: str
    kind: str
    preset: str | None
    config: dict[str, Any]
    status: str
    path: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class JobRecord:
    """A job submitted to a backend (`local`, `ray`) on behalf of a run."""

    id: str
    run_id: str | None
    backend: str
    spec: dict[str, Any]
    status: str
    external_id: str | None
    pid: int | None
    address: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    message: str | None


@dataclass(frozen=True)
class Conversation:
    """A chat with the interpreter about one image."""

    id: int
    title: str
    image: dict[str, Any] | None
    encoding: str | None
    threshold_set: str | None
    model: str | None
    created_at: datetime


@dataclass(frozen=True)
class Message:
    """One turn of a conversation."""

    conversation_id: int
    turn: int
    role: str
    content: str
    created_at: datetime


def validate_threshold_rows(thresholds: Sequence[Sequence[float]]) -> list[list[float]]:
    """Check `thresholds` is 8 rows x 4 finite numbers; return it as plain floats."""
    try:
        rows = [list(row) for row in thresholds]
    except TypeError as e:
        raise ValueError(f"thresholds must be 8 rows x 4 numbers, got {thresholds!r}") from e
    if len(rows) != 8 or any(len(row) != 4 for row in rows):
        shape = [len(row) for row in rows]
        raise ValueError(f"thresholds must be 8 rows x 4 numbers (one row per conv1 filter), "
                         f"got {len(rows)} rows of lengths {shape}")
    for i, row in enumerate(rows):
        for j, v in enumerate(row):
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
                raise ValueError(f"thresholds[{i}][{j}] must be a finite number, got {v!r}")
    return [[float(v) for v in row] for row in rows]


def read_jsonl(path: str | Path) -> pd.DataFrame:
    """Read a run folder's JSONL log, skipping bad lines (the last may be half-written).

    Uses an in-memory DuckDB, so it never touches the store's file.
    """
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return pd.DataFrame()
    # sample_size=-1: keys that first appear late (eval rows) still become columns.
    sql = ("SELECT * FROM read_json(?, format='newline_delimited', ignore_errors=true, "
           "sample_size=-1)")
    with duckdb.connect() as con:
        df = con.execute(sql, [str(path)]).df()
    # A skipped line still yields an all-NULL row.
    df = df.dropna(how="all").reset_index(drop=True)
    return df if len(df) else pd.DataFrame()


def _version(con: duckdb.DuckDBPyConnection) -> int:
    """The file's schema version; 0 for a new file."""
    if not con.execute("SELECT 1 FROM duckdb_tables() WHERE table_name = 'schema_version' "
                       "AND schema_name = 'main'").fetchone():
        return 0
    return con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _decode(df: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """Turn JSON text columns into Python objects."""
    for c in columns:
        df[c] = [_loads(v) if isinstance(v, str) else None for v in df[c]]
    return df


def _bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


def _pixels(image: Any) -> bytes | None:
    """An image as 784 uint8 bytes: accepts uint8 [28, 28] / [784] arrays or raw bytes."""
    if image is None:
        return None
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
    else:
        arr = np.asarray(image)
        if arr.dtype != np.uint8:
            raise ValueError(f"image pixels must be uint8, got {arr.dtype}")
        data = arr.tobytes()
    if len(data) != 784:
        raise ValueError(f"an image must be 784 uint8 pixels (28x28), got {len(data)} bytes")
    return data


class Store:
    """The project's DuckDB database; one short-lived connection per call."""

    def __init__(self, path: str | Path, lock_timeout: float = 5.0) -> None:
        self.path = Path(path)
        self.lock_timeout = lock_timeout
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._migrate()

    # -- connections and schema ------------------------------------------------------------

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
                    raise StoreLockedError(
                        f"another process holds the database {self.path} (waited "
                        f"{self.lock_timeout:g} s); DuckDB allows one process per file: "
                        f"close that process or wait for it to finish. ({e})") from e
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

    def schema_version(self) -> int:
        """The schema version recorded in the file."""
        with self._connect() as con:
            return _version(con)

    def _df(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        with self._connect() as con:
            return con.execute(sql, list(params)).df()

    def _one(self, sql: str, params: Sequence[Any]) -> dict[str, Any] | None:
        """The first row as a dict of Python values, or None."""
        with self._connect() as con:
            cur = con.execute(sql, list(params))
            row = cur.fetchone()
            return None if row is None else dict(zip([d[0] for d in cur.description], row, strict=True))

    def counts(self) -> dict[str, int]:
        """Row count per table, for the home page."""
        with self._connect() as con:
            # Table names come from the fixed TABLES tuple, never from callers.
            return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}

    read_jsonl = staticmethod(read_jsonl)

    # -- threshold sets --------------------------------------------------------------------

    def save_threshold_set(self, name: str, thresholds: Sequence[Sequence[float]],
                           notes: str = "", make_default: bool = False) -> ThresholdSetRecord:
        """Create or overwrite a named threshold set [8 filters, 4 edges]."""
        rows = validate_threshold_rows(thresholds)
        if not name.strip():
            raise ValueError("a threshold set needs a non-empty name")
        with self._transaction() as con:
            con.execute("INSERT INTO threshold_sets (name, thresholds, notes) VALUES (?, ?, ?) "
                        "ON CONFLICT (name) DO UPDATE SET thresholds = excluded.thresholds, "
                        "notes = excluded.notes, updated_at = now()",
                        [name, json.dumps(rows), notes])
            if make_default:
                con.execute("UPDATE threshold_sets SET is_default = (name = ?)", [name])
        record = self.get_threshold_set(name)
        assert record is not None
        return record

    def get_threshold_set(self, name: str | None = None) -> ThresholdSetRecord | None:
        """The named set, or the default one when `name` is None; None if absent."""
        if name is None:
            row = self._one("SELECT * FROM threshold_sets WHERE is_default", [])
        else:
            row = self._one("SELECT * FROM threshold_sets WHERE name = ?", [name])
        if row is None:
            return None
        return ThresholdSetRecord(**{**row, "thresholds": json.loads(row["thresholds"])})

    def list_threshold_sets(self) -> pd.DataFrame:
        """All threshold sets, default first."""
        df = self._df("SELECT * FROM threshold_sets ORDER BY is_default DESC, name")
        return _decode(df, "thresholds")

    def set_default_threshold_set(self, name: str) -> None:
        """Make `name` the one default set."""
        with self._transaction() as con:
            if con.execute("SELECT 1 FROM threshold_sets WHERE name = ?", [name]).fetchone() is None:
                raise KeyError(f"no threshold set named {name!r}")
            con.execute("UPDATE threshold_sets SET is_default = (name = ?)", [name])

    def delete_threshold_set(self, name: str) -> bool:
        """Delete a set; True if it existed. Deleting the default leaves no default."""
        with self._connect() as con:
            return bool(con.execute("DELETE FROM threshold_sets WHERE name = ? RETURNING name",
                                    [name]).fetchall())

    # -- samples ---------------------------------------------------------------------------

    def add_samples(self, source: str, split: str, *, images: Sequence[Any] | np.ndarray | None = None,
                    labels: Sequence[int | None] | None = None,
                    source_indices: Sequence[int | None] | None = None,
                    paths: Sequence[str | None] | None = None) -> list[int]:
        """Store n images (uint8 [n, 28, 28]) and/or labels, indices, paths; return their ids."""
        columns = {"pixels": images, "label": labels, "source_index": source_indices, "path": paths}
        given = {k: v for k, v in columns.items() if v is not None}
        lengths = {k: len(v) for k, v in given.items()}
        if not lengths or len(set(lengths.values())) != 1:
            raise ValueError(f"add_samples needs columns of one equal length, got {lengths}")
        n = next(iter(lengths.values()))
        data = {k: list(given.get(k, [None] * n)) for k in columns}
        data["pixels"] = [_pixels(p) for p in data["pixels"]]
        for k in ("label", "source_index"):
            data[k] = [None if v is None else int(v) for v in data[k]]
        frame = pd.DataFrame({"source": [source] * n, "split": [split] * n, **data})
        frame = frame.astype({"label": "Int64", "source_index": "Int64", "path": object})
        with self._transaction() as con:
            # A registered DataFrame inserts n rows in one statement (executemany is per row).
            con.register("new_samples", frame)
            ids = con.execute(
                "INSERT INTO samples (source, split, source_index, label, pixels, path) "
                "SELECT source, split, source_index, label, pixels::BLOB, path FROM new_samples "
                "RETURNING id").fetchall()
            con.unregister("new_samples")
        return sorted(i for (i,) in ids)

    def get_sample(self, sample_id: int) -> Sample | None:
        row = self._one("SELECT * FROM samples WHERE id = ?", [sample_id])
        return None if row is None else Sample(**{**row, "pixels": _bytes(row["pixels"])})

    def list_samples(self, source: str | None = None, split: str | None = None) -> pd.DataFrame:
        """Samples (pixels as bytes), optionally filtered, in id order."""
        return self._df("SELECT * FROM samples WHERE (? IS NULL OR source = ?) "
                        "AND (? IS NULL OR split = ?) ORDER BY id", [source, source, split, split])

    # -- annotations and ratings -----------------------------------------------------------

    def save_annotation(self, annotator: str, image_source: str, image_index: int,
                        counts: dict[str, int], description: str) -> int:
        """Save an annotator's label for an image; saving again edits it. Returns its id."""
        if not annotator.strip():
            raise ValueError("an annotation needs an annotator name")
        if any(not isinstance(n, numbers.Integral) or n < 0 for n in counts.values()):
            raise ValueError(f"shape counts must be non-negative integers, got {counts}")
        with self._connect() as con:
            return con.execute(
                "INSERT INTO annotations (annotator, image_source, image_index, counts, description) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (annotator, image_source, image_index) DO UPDATE "
                "SET counts = excluded.counts, description = excluded.description, updated_at = now() "
                "RETURNING id",
                [annotator, image_source, int(image_index),
                 json.dumps({k: int(v) for k, v in counts.items()}), description]).fetchone()[0]

    def get_annotation(self, annotator: str, image_source: str, image_index: int) -> Annotation | None:
        row = self._one("SELECT * FROM annotations WHERE annotator = ? AND image_source = ? "
                        "AND image_index = ?", [annotator, image_source, int(image_index)])
        return None if row is None else Annotation(**{**row, "counts": json.loads(row["counts"])})

    def list_annotations(self, annotator: str | None = None,
                         image_source: str | None = None) -> pd.DataFrame:
        df = self._df("SELECT * FROM annotations WHERE (? IS NULL OR annotator = ?) "
                      "AND (? IS NULL OR image_source = ?) ORDER BY id",
                      [annotator, annotator, image_source, image_source])
        return _decode(df, "counts")

    def delete_annotation(self, annotation_id: int) -> bool:
        """Delete by id; True if it existed."""
        with self._connect() as con:
            return bool(con.execute("DELETE FROM annotations WHERE id = ? RETURNING id",
                                    [annotation_id]).fetchall())

    def save_rating(self, rater: str, run_id: str | None, image_source: str, image_index: int,
                    prediction: str, verdict: str, per_shape: dict[str, str] | None = None,
                    comment: str = "") -> int:
        """Record a human verdict on a prediction; returns the rating id."""
        if verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {verdict!r}")
        with self._connect() as con:
            return con.execute(
                "INSERT INTO ratings (rater, run_id, image_source, image_index, prediction, verdict, "
                "per_shape, comment) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                [rater, run_id, image_source, int(image_index), prediction, verdict,
                 _dumps(per_shape), comment]).fetchone()[0]

    def list_ratings(self, run_id: str | None = None) -> pd.DataFrame:
        df = self._df("SELECT * FROM ratings WHERE (? IS NULL OR run_id = ?) ORDER BY id",
                      [run_id, run_id])
        return _decode(df, "per_shape")

    # -- datasets, runs, jobs --------------------------------------------------------------

    def register_dataset(self, id: str, name: str, path: str | Path, threshold_set: str | None,
                         encoder: str, n_train: int, n_val: int, n_test: int,
                         manifest: dict[str, Any]) -> None:
        """Record a built dataset; the same content hash again updates name/path/manifest."""
        with self._connect() as con:
            con.execute(
                "INSERT INTO datasets (id, name, path, threshold_set, encoder, n_train, n_val, "
                "n_test, manifest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE "
                "SET name = excluded.name, path = excluded.path, manifest = excluded.manifest",
                [id, name, str(path), threshold_set, encoder, n_train, n_val, n_test,
                 json.dumps(manifest)])

    def get_dataset(self, id_or_name: str) -> DatasetRecord | None:
        """By content hash, else the newest dataset with that name."""
        row = self._one("SELECT * FROM datasets WHERE id = ? OR name = ? "
                        "ORDER BY (id = ?) DESC, created_at DESC LIMIT 1",
                        [id_or_name, id_or_name, id_or_name])
        return None if row is None else DatasetRecord(**{**row, "manifest": json.loads(row["manifest"])})

    def list_datasets(self) -> pd.DataFrame:
        return _decode(self._df("SELECT * FROM datasets ORDER BY created_at DESC"), "manifest")

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
        return _decode(df, "config")

    def update_run_status(self, id: str, status: str) -> None:
        with self._connect() as con:
            if not con.execute("UPDATE runs SET status = ?, updated_at = now() WHERE id = ? "
                               "RETURNING id", [status, id]).fetchall():
                raise KeyError(f"no run {id!r}")

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
        return _decode(df, "spec")

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

    # -- predictions and metrics -----------------------------------------------------------

    def save_predictions(self, run_id: str, eval_set: str, rows: Sequence[dict[str, Any]]) -> int:
        """Replace a run's predictions on one eval set. Each row: sample_index, prediction,
        and optionally prompt_encoding, truth, parsed (dict). Returns the row count."""
        frame = pd.DataFrame({
            "sample_index": pd.array([int(r["sample_index"]) for r in rows], dtype="Int64"),
            "prompt_encoding": pd.array([r.get("prompt_encoding") for r in rows], dtype=object),
            "prediction": pd.array([r["prediction"] for r in rows], dtype=object),
            "truth": pd.array([r.get("truth") for r in rows], dtype=object),
            "parsed": pd.array([_dumps(r.get("parsed")) for r in rows], dtype=object),
        })
        with self._transaction() as con:
            con.execute("DELETE FROM predictions WHERE run_id = ? AND eval_set = ?", [run_id, eval_set])
            con.register("new_predictions", frame)
            con.execute("INSERT INTO predictions SELECT ?, ?, sample_index, prompt_encoding::VARCHAR, "
                        "prediction::VARCHAR, truth::VARCHAR, parsed::JSON FROM new_predictions",
                        [run_id, eval_set])
            con.unregister("new_predictions")
        return len(rows)

    def get_predictions(self, run_id: str, eval_set: str | None = None) -> pd.DataFrame:
        df = self._df("SELECT * FROM predictions WHERE run_id = ? AND (? IS NULL OR eval_set = ?) "
                      "ORDER BY eval_set, sample_index", [run_id, eval_set, eval_set])
        return _decode(df, "parsed")

    def save_metrics(self, run_id: str, eval_set: str, metrics: dict[str, Any]) -> None:
        """Store (or replace) a run's metrics on one eval set."""
        with self._connect() as con:
            con.execute("INSERT INTO metrics (run_id, eval_set, metrics) VALUES (?, ?, ?) "
                        "ON CONFLICT (run_id, eval_set) DO UPDATE SET metrics = excluded.metrics, "
                        "created_at = now()", [run_id, eval_set, json.dumps(metrics)])

    def get_metrics(self, run_id: str | None = None) -> pd.DataFrame:
        df = self._df("SELECT * FROM metrics WHERE (? IS NULL OR run_id = ?) "
                      "ORDER BY run_id, eval_set", [run_id, run_id])
        return _decode(df, "metrics")

    # -- conversations ---------------------------------------------------------------------

    def create_conversation(self, title: str, image: dict[str, Any] | None = None,
                            encoding: str | None = None, threshold_set: str | None = None,
                            model: str | None = None) -> int:
        """Start a chat; `image` is {source, index, pixels: [784 ints]}. Returns its id."""
        with self._connect() as con:
            return con.execute(
                "INSERT INTO conversations (title, image, encoding, threshold_set, model) "
                "VALUES (?, ?, ?, ?, ?) RETURNING id",
                [title, _dumps(image), encoding, threshold_set, model]).fetchone()[0]

    def add_message(self, conversation_id: int, role: str, content: str) -> int:
        """Append a turn; returns its turn number (0-based)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        with self._transaction() as con:
            if con.execute("SELECT 1 FROM conversations WHERE id = ?",
                           [conversation_id]).fetchone() is None:
                raise KeyError(f"no conversation {conversation_id}")
            return con.execute(
                "INSERT INTO messages (conversation_id, turn, role, content) SELECT ?, "
                "coalesce(max(turn) + 1, 0), ?, ? FROM messages WHERE conversation_id = ? "
                "RETURNING turn", [conversation_id, role, content, conversation_id]).fetchone()[0]

    def get_conversation(self, conversation_id: int) -> Conversation | None:
        row = self._one("SELECT * FROM conversations WHERE id = ?", [conversation_id])
        return None if row is None else Conversation(**{**row, "image": _loads(row["image"])})

    def list_conversations(self) -> pd.DataFrame:
        """Conversations, newest first, with their message count."""
        df = self._df("SELECT c.*, count(m.turn) AS n_messages FROM conversations c "
                      "LEFT JOIN messages m ON m.conversation_id = c.id "
                      "GROUP BY ALL ORDER BY c.created_at DESC, c.id DESC")
        return _decode(df, "image")

    def get_messages(self, conversation_id: int) -> list[Message]:
        with self._connect() as con:
            rows = con.execute("SELECT conversation_id, turn, role, content, created_at FROM messages "
                               "WHERE conversation_id = ? ORDER BY turn", [conversation_id]).fetchall()
        return [Message(*row) for row in rows]
