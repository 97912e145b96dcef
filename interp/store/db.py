"""The DuckDB store: `Store` combines one mixin per entity over the connection core.

    core.py         connection per call, lock wait, migrations (schema.py)
    thresholds.py   threshold sets
    annotations.py  annotations and ratings
    runs.py         datasets, runs, predictions, metrics
    jobs.py         jobs
    chats.py        conversations and messages

Only `interp.store` imports duckdb; it returns the dataclasses of `records.py` or DataFrames.
Long jobs append JSONL to their run folder instead of holding the file (`read_metrics` in `interp.jobs`).
"""

from __future__ import annotations

from interp.store.annotations import Annotations
from interp.store.chats import Chats
from interp.store.core import StoreLockedError
from interp.store.jobs import Jobs
from interp.store.records import Annotation, Conversation, JobRecord, Message, RunRecord, ThresholdSetRecord
from interp.store.runs import Runs
from interp.store.schema import MIGRATIONS, SCHEMA_VERSION
from interp.store.thresholds import ThresholdSets

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Annotation", "Conversation", "JobRecord", "Message", "RunRecord",
           "Store", "StoreLockedError", "ThresholdSetRecord"]


class Store(ThresholdSets, Annotations, Runs, Jobs, Chats):
    """The project's DuckDB database; one short-lived connection per call."""
