"""Threshold sets in the store: named [C, 4] tables of bin thresholds (§3.2), each for one layer
(`interp.target.layers`: [8, 4] for conv1, [16, 4] for conv2), one default per layer.

Rows are checked by `interp.encoding.thresholds.validate_thresholds`, the one validator; the
dependency points one way (store -> encoding.thresholds, a numpy-only leaf module). A stored set
comes back as a `ThresholdSet` carrying its layer (`to_threshold_set`), so binning refuses it for
another layer's activations.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from interp.encoding.thresholds import ThresholdSet, validate_thresholds
from interp.store.core import StoreBase, decode
from interp.store.records import ThresholdSetRecord
from interp.target.layers import DEFAULT_LAYER, get_layer


class ThresholdSets(StoreBase):
    """The `threshold_sets` table."""

    def save_threshold_set(self, name: str, thresholds: Sequence[Sequence[float]], notes: str = "",
                           make_default: bool = False, layer: str = DEFAULT_LAYER) -> ThresholdSetRecord:
        """Create or overwrite a named threshold set [C filters of ``layer``, 4 edges]; ValueError if invalid,
        or if ``name`` is taken by a set of another layer (a set never changes its layer)."""
        layer = get_layer(layer).name
        rows = validate_thresholds(thresholds, layer).tolist()
        if not name.strip():
            raise ValueError("a threshold set needs a non-empty name")
        with self._transaction() as con:
            held = con.execute("SELECT layer FROM threshold_sets WHERE name = ?", [name]).fetchone()
            if held is not None and held[0] != layer:
                raise ValueError(f"the name {name!r} is taken by a {held[0]} threshold set; "
                                 f"give this {layer} set another name")
            con.execute("INSERT INTO threshold_sets (name, thresholds, notes, layer) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT (name) DO UPDATE SET thresholds = excluded.thresholds, "
                        "notes = excluded.notes, updated_at = now()",
                        [name, json.dumps(rows), notes, layer])
            if make_default:
                con.execute("UPDATE threshold_sets SET is_default = (name = ?) WHERE layer = ?", [name, layer])
        record = self.get_threshold_set(name)
        assert record is not None
        return record

    def get_threshold_set(self, name: str | None = None, layer: str = DEFAULT_LAYER) -> ThresholdSetRecord | None:
        """The named set (of whichever layer), or ``layer``'s default set when `name` is None; None if absent."""
        if name is None:
            row = self._one("SELECT * FROM threshold_sets WHERE is_default AND layer = ?", [get_layer(layer).name])
        else:
            row = self._one("SELECT * FROM threshold_sets WHERE name = ?", [name])
        if row is None:
            return None
        return ThresholdSetRecord(**{**row, "thresholds": json.loads(row["thresholds"])})

    def list_threshold_sets(self, layer: str | None = None) -> pd.DataFrame:
        """All threshold sets (or ``layer``'s), default first."""
        if layer is None:
            df = self._df("SELECT * FROM threshold_sets ORDER BY is_default DESC, name")
        else:
            df = self._df("SELECT * FROM threshold_sets WHERE layer = ? ORDER BY is_default DESC, name",
                          [get_layer(layer).name])
        return decode(df, "thresholds")

    def set_default_threshold_set(self, name: str) -> None:
        """Make `name` the one default set of its layer."""
        with self._transaction() as con:
            row = con.execute("SELECT layer FROM threshold_sets WHERE name = ?", [name]).fetchone()
            if row is None:
                raise KeyError(f"no threshold set named {name!r}")
            con.execute("UPDATE threshold_sets SET is_default = (name = ?) WHERE layer = ?", [name, row[0]])


def to_threshold_set(record: ThresholdSetRecord) -> ThresholdSet:
    """A stored set as the `ThresholdSet` the encoders take, with its layer."""
    return ThresholdSet(name=record.name, thresholds=record.thresholds, notes=record.notes, layer=record.layer)


def resolve_threshold_set(spec: str | None, db_path: Path, layer: str = DEFAULT_LAYER) -> ThresholdSet:
    """A ThresholdSet from a JSON file, a set's name in the store, or (None) the store's default for ``layer``.

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
    record = ThresholdSets(db_path).get_threshold_set(spec, layer)  # this table is all it reads
    if record is None:
        default = "(default)" if layer == DEFAULT_LAYER else f"(default for {layer})"
        raise ValueError(f"no threshold set {spec or default} in the store: give a JSON file or a stored "
                         "set's name (`python -m interp thresholds list`), or run `python -m interp setup`")
    try:
        return to_threshold_set(record)
    except ValueError as exc:
        raise ValueError(f"threshold set {record.name!r} in the store {db_path}: {exc}") from exc
