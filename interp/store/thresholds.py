"""Threshold sets in the store: named [8, 4] tables of bin thresholds (§3.2), one the default.

Rows are checked by `interp.encoding.thresholds.validate_thresholds`, the one validator; the
dependency points one way (store -> encoding.thresholds, a numpy-only leaf module).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from interp.encoding.thresholds import ThresholdSet, validate_thresholds
from interp.store.core import StoreBase, decode
from interp.store.records import ThresholdSetRecord


class ThresholdSets(StoreBase):
    """The `threshold_sets` table."""

    def save_threshold_set(self, name: str, thresholds: Sequence[Sequence[float]],
                           notes: str = "", make_default: bool = False) -> ThresholdSetRecord:
        """Create or overwrite a named threshold set [8 filters, 4 edges]; ValueError if invalid."""
        rows = validate_thresholds(thresholds).tolist()
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
        return decode(df, "thresholds")

    def set_default_threshold_set(self, name: str) -> None:
        """Make `name` the one default set."""
        with self._transaction() as con:
            if con.execute("SELECT 1 FROM threshold_sets WHERE name = ?", [name]).fetchone() is None:
                raise KeyError(f"no threshold set named {name!r}")
            con.execute("UPDATE threshold_sets SET is_default = (name = ?)", [name])


def resolve_threshold_set(spec: str | None, db_path: Path) -> ThresholdSet:
    """A ThresholdSet from a JSON file, a set's name in the store, or (None) the store's default.

    Every fault is one ValueError saying what is wrong: a malformed file names the file and the
    fault (`ThresholdSet.load`), a missing ``*.json`` file is not looked up as a name.
    """
    if spec:
        path = Path(spec)
        if path.is_dir():
            raise ValueError(f"{spec} is a folder, not a threshold-set JSON file")
        if path.exists():
            return ThresholdSet.load(path)
        if path.suffix.lower() == ".json":
            raise ValueError(f"threshold-set file {spec} not found")
    record = ThresholdSets(db_path).get_threshold_set(spec)  # this table is all it reads
    if record is None:
        raise ValueError(f"no threshold set {spec or '(default)'} in the store: give a JSON file or a stored "
                         "set's name (`python -m interp thresholds list`), or run `python -m interp setup`")
    try:
        return ThresholdSet(name=record.name, thresholds=record.thresholds, notes=record.notes)
    except ValueError as exc:
        raise ValueError(f"threshold set {record.name!r} in the store {db_path}: {exc}") from exc
