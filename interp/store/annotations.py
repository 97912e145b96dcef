"""Human labels in the store: annotations (shape counts per image) and ratings (verdicts on predictions)."""

from __future__ import annotations

import json
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from interp.store.core import StoreBase, decode, dumps
from interp.store.records import Annotation

VERDICTS = ("correct", "partial", "wrong")  # the ratings.verdict CHECK constraint
ANNOTATION_FIELDS = ("annotator", "image_source", "image_index", "counts", "description")


def _checked(annotator: str, counts: Mapping[str, int]) -> str:
    """The counts as the JSON the table stores; a missing annotator or a bad count is a ValueError."""
    if not annotator.strip():
        raise ValueError("an annotation needs an annotator name")
    if any(not isinstance(n, numbers.Integral) or n < 0 for n in counts.values()):
        raise ValueError(f"shape counts must be non-negative integers, got {counts}")
    return json.dumps({k: int(v) for k, v in counts.items()})


class Annotations(StoreBase):
    """The `annotations` and `ratings` tables."""

    def save_annotation(self, annotator: str, image_source: str, image_index: int,
                        counts: dict[str, int], description: str) -> int:
        """Save an annotator's label for an image; saving again edits it. Returns its id."""
        text = _checked(annotator, counts)
        with self._connect() as con:
            return con.execute(
                "INSERT INTO annotations (annotator, image_source, image_index, counts, description) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (annotator, image_source, image_index) DO UPDATE "
                "SET counts = excluded.counts, description = excluded.description, updated_at = now() "
                "RETURNING id",
                [annotator, image_source, int(image_index), text, description]).fetchone()[0]

    def save_annotations(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Save many labels (mappings with `ANNOTATION_FIELDS`) in one transaction: all of them, or none
        when anything fails. A label of the same annotator and image is replaced; within ``rows`` the last
        one wins. Returns how many labels were written."""
        latest: dict[tuple, tuple] = {}
        for r in rows:  # every row is checked before anything is written
            key = (r["annotator"], r["image_source"], int(r["image_index"]))
            latest.pop(key, None)
            latest[key] = (*key, _checked(r["annotator"], r["counts"]), r["description"])
        if not latest:
            return 0
        incoming = pd.DataFrame(list(latest.values()), columns=list(ANNOTATION_FIELDS))
        with self._transaction() as con:  # one statement over a registered frame: not a connection per row
            con.register("incoming_annotations", incoming)
            con.execute(
                "INSERT INTO annotations (annotator, image_source, image_index, counts, description) "
                "SELECT annotator, image_source, image_index, counts, description FROM incoming_annotations "
                "ON CONFLICT (annotator, image_source, image_index) DO UPDATE "
                "SET counts = excluded.counts, description = excluded.description, updated_at = now()")
            con.unregister("incoming_annotations")
        return len(incoming)

    def get_annotation(self, annotator: str, image_source: str, image_index: int) -> Annotation | None:
        row = self._one("SELECT * FROM annotations WHERE annotator = ? AND image_source = ? "
                        "AND image_index = ?", [annotator, image_source, int(image_index)])
        return None if row is None else Annotation(**{**row, "counts": json.loads(row["counts"])})

    def list_annotations(self, annotator: str | None = None,
                         image_source: str | None = None) -> pd.DataFrame:
        df = self._df("SELECT * FROM annotations WHERE (? IS NULL OR annotator = ?) "
                      "AND (? IS NULL OR image_source = ?) ORDER BY id",
                      [annotator, annotator, image_source, image_source])
        return decode(df, "counts")

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
                 dumps(per_shape), comment]).fetchone()[0]

    def list_ratings(self, run_id: str | None = None) -> pd.DataFrame:
        df = self._df("SELECT * FROM ratings WHERE (? IS NULL OR run_id = ?) ORDER BY id",
                      [run_id, run_id])
        return decode(df, "per_shape")
