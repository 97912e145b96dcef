"""The frozen dataclasses the store returns for single rows (lists come back as DataFrames)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class ThresholdSetRecord:
    """A named set of bin thresholds: `thresholds[filter][k]`, C filters x 4 edges (8 for conv1).

    ``is_default``: the default set of its ``layer`` (one per layer)."""

    name: str
    thresholds: list[list[float]]
    notes: str
    is_default: bool
    created_at: datetime
    updated_at: datetime
    layer: str = "conv1"


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
