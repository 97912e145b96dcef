"""Human evaluation (§4.1–4.2): shape-count annotations of MNIST digits, verdicts on interpreter
outputs, agreement between annotators, and CSV/JSONL import and export of annotations.

Annotations are D_mnist for the dataset builder (`interp.interpreters.dataset.annotated_mnist`): one record per
(annotator, MNIST test image) with the count of each of the 8 shape types of L and the description
built from them. Ratings are a rater's verdict (correct / partly correct / wrong) on one stored
prediction of an evaluation run on held-out MNIST images (eval set ``mnist_eval``, whose
``sample_index`` is the MNIST test index).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from interp.language import SHAPES, format_description

N_ANNOTATE = 100
"""§4.1: the paper annotated the first 100 images of the MNIST test set."""
IMAGE_SOURCE = "mnist"
EVAL_SET = "mnist_eval"
"""The eval set whose predictions the Rate step shows; its sample_index is the MNIST test index."""
CSV_COLUMNS: tuple[str, ...] = ("annotator", "image_index", *SHAPES)
"""Required columns of an annotation CSV, in the order the export writes them."""
OPTIONAL_CSV_COLUMNS: tuple[str, ...] = ("description",)
"""Written by the export; on import it is ignored and rebuilt from the counts."""
VERDICT_LABELS = {"correct": "correct", "partial": "partly correct", "wrong": "wrong"}
SHAPE_NOTES = ("", "right", "too many", "too few", "missing", "not there")
"""Per-shape notes a rater may add to a verdict ("" = no note)."""


def empty_counts() -> dict[str, int]:
    return dict.fromkeys(SHAPES, 0)


def describe_counts(counts: Mapping[str, int]) -> str:
    """The canonical description of ``counts`` in SHAPES order (zeros left out)."""
    return format_description({s: int(counts.get(s, 0)) for s in SHAPES})


# --- annotating ---------------------------------------------------------------------------------------

def annotated_indices(annotations: pd.DataFrame, annotator: str, image_source: str = IMAGE_SOURCE) -> set[int]:
    """Image indices ``annotator`` has labelled."""
    if annotations.empty:
        return set()
    mine = annotations[(annotations["annotator"] == annotator) & (annotations["image_source"] == image_source)]
    return {int(i) for i in mine["image_index"]}


def next_unannotated(done: Iterable[int], start: int = 0, limit: int = N_ANNOTATE) -> int | None:
    """The first index ≥ ``start`` below ``limit`` not in ``done``, wrapping to 0; None when all are done."""
    done = set(done)
    for i in [*range(max(start, 0), limit), *range(0, min(max(start, 0), limit))]:
        if i not in done:
            return i
    return None


def progress(done: Iterable[int], limit: int = N_ANNOTATE) -> tuple[int, int]:
    """(how many of the first ``limit`` images are labelled, ``limit``)."""
    return sum(1 for i in set(done) if 0 <= i < limit), limit


# --- agreement ------------------------------------------------------------------------------------------

def cohen_kappa(a: Sequence[Any], b: Sequence[Any]) -> float:
    """Cohen's kappa of two raters' labels for the same items: (p_o − p_e) / (1 − p_e).

    p_o is the share of items both label alike; p_e = Σ_k p_a(k) · p_b(k), the agreement two
    raters with these label frequencies would reach by chance. NaN when p_e = 1 (both give one
    and the same label to every item: kappa is undefined) or when there are no items.
    """
    if len(a) != len(b):
        raise ValueError(f"both raters must label the same items, got {len(a)} and {len(b)} labels")
    n = len(a)
    if n == 0:
        return math.nan
    po = sum(x == y for x, y in zip(a, b, strict=True)) / n
    labels = set(a) | set(b)
    pe = sum((list(a).count(k) / n) * (list(b).count(k) / n) for k in labels)
    if math.isclose(pe, 1.0):
        return math.nan
    return (po - pe) / (1 - pe)


def shared_images(annotations: pd.DataFrame, annotator_a: str, annotator_b: str,
                  image_source: str = IMAGE_SOURCE) -> list[int]:
    """Image indices both annotators labelled, ascending."""
    return sorted(annotated_indices(annotations, annotator_a, image_source)
                  & annotated_indices(annotations, annotator_b, image_source))


def agreement(annotations: pd.DataFrame, annotator_a: str, annotator_b: str,
              image_source: str = IMAGE_SOURCE) -> pd.DataFrame:
    """Per shape type, over the images both labelled: n, observed agreement and Cohen's kappa of the counts.

    Each count (0, 1, 2, ...) is one category. Columns: shape, n_images, observed, kappa.
    """
    idx = shared_images(annotations, annotator_a, annotator_b, image_source)

    def counts_of(who: str) -> dict[int, Mapping[str, int]]:
        rows = annotations[(annotations["annotator"] == who) & (annotations["image_source"] == image_source)]
        return {int(r.image_index): r.counts for r in rows.itertuples()}

    ca, cb = counts_of(annotator_a), counts_of(annotator_b)
    rows = []
    for shape in SHAPES:
        a = [int(ca[i].get(shape, 0)) for i in idx]
        b = [int(cb[i].get(shape, 0)) for i in idx]
        observed = float(np.mean([x == y for x, y in zip(a, b, strict=True)])) if idx else math.nan
        rows.append({"shape": shape, "n_images": len(idx), "observed": observed, "kappa": cohen_kappa(a, b)})
    return pd.DataFrame(rows, columns=["shape", "n_images", "observed", "kappa"])


def annotator_pairs(annotations: pd.DataFrame, image_source: str = IMAGE_SOURCE) -> pd.DataFrame:
    """Every pair of annotators with the number of images both labelled (pairs with none left out)."""
    names = sorted(set(annotations["annotator"])) if not annotations.empty else []
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            n = len(shared_images(annotations, a, b, image_source))
            if n:
                rows.append({"annotator_a": a, "annotator_b": b, "shared_images": n})
    return pd.DataFrame(rows, columns=["annotator_a", "annotator_b", "shared_images"])


# --- export and import --------------------------------------------------------------------------------

def annotations_to_csv(annotations: pd.DataFrame) -> str:
    """One row per annotation: annotator, image_index, the 8 shape counts, description (importable)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*CSV_COLUMNS, *OPTIONAL_CSV_COLUMNS])
    for r in annotations.itertuples():
        writer.writerow([r.annotator, int(r.image_index), *(int(r.counts.get(s, 0)) for s in SHAPES),
                         r.description])
    return buf.getvalue()


def annotations_to_jsonl(annotations: pd.DataFrame) -> str:
    """One JSON object per annotation, every stored field."""
    lines = []
    for r in annotations.itertuples():
        lines.append(json.dumps({"id": int(r.id), "annotator": r.annotator, "image_source": r.image_source,
                                 "image_index": int(r.image_index), "counts": {s: int(r.counts.get(s, 0)) for s in SHAPES},
                                 "description": r.description, "created_at": str(r.created_at),
                                 "updated_at": str(r.updated_at)}))
    return "".join(line + "\n" for line in lines)


def ratings_to_csv(ratings: pd.DataFrame) -> str:
    cols = ["id", "rater", "run_id", "image_source", "image_index", "prediction", "verdict", "per_shape",
            "comment", "created_at"]
    out = ratings.reindex(columns=cols).copy()
    out["per_shape"] = [json.dumps(v) if isinstance(v, dict) else "" for v in out["per_shape"]]
    return out.to_csv(index=False, lineterminator="\n")


@dataclass(frozen=True)
class ImportRow:
    """One valid row of an annotation CSV."""

    line: int
    annotator: str
    image_index: int
    counts: dict[str, int]


@dataclass(frozen=True)
class ImportReport:
    """What `parse_annotation_csv` made of a file: valid rows, rejected rows, or a file-level error."""

    rows: list[ImportRow] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)
    """(line number in the file, the header being line 1; reason)."""
    error: str | None = None
    """Set when the whole file is rejected (unreadable, missing or unknown columns); then rows is empty."""

    @property
    def ok(self) -> bool:
        return self.error is None


def _whole_number(text: str) -> int | None:
    """A non-negative whole number written in ASCII digits ("3", " 3 ", "+3"), else None."""
    t = text.strip().removeprefix("+")
    return int(t) if t.isascii() and t.isdigit() else None


def parse_annotation_csv(data: str | bytes, n_images: int) -> ImportReport:
    """Validate an annotation CSV: columns ``annotator,image_index,<8 shape columns>`` (+ optional description).

    The file is rejected as a whole when it cannot be read, lacks a required column, repeats a
    column or has an unknown one. A row is rejected (line number + reason) when a field is
    missing or extra, the annotator is empty, image_index is not a whole number in 0..n_images-1,
    a count is not a whole number (empty, "1.5", "two") or is negative, or the same
    (annotator, image_index) came earlier in the file.
    """
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            return ImportReport(error=f"the file is not UTF-8 text ({exc.reason} at byte {exc.start})")
    data = data.removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(data))
    try:
        header = next(reader, None)
    except csv.Error as exc:
        return ImportReport(error=f"not a readable CSV: {exc}")
    if header is None or not any(h.strip() for h in header):
        return ImportReport(error="the file is empty: expected a header line " + ",".join(CSV_COLUMNS))
    names = [h.strip().lower() for h in header]
    repeated = sorted({n for n in names if names.count(n) > 1})
    missing = [c for c in CSV_COLUMNS if c not in names]
    unknown = [n for n in names if n not in CSV_COLUMNS and n not in OPTIONAL_CSV_COLUMNS]
    problems = []
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    if unknown:
        problems.append(f"unknown column(s) {', '.join(repr(u) for u in unknown)}")
    if repeated:
        problems.append(f"repeated column(s) {', '.join(repeated)}")
    if problems:
        return ImportReport(error="; ".join(problems) + f". Expected columns: {','.join(CSV_COLUMNS)} "
                                                         f"(and optionally {','.join(OPTIONAL_CSV_COLUMNS)})")
    col = {n: names.index(n) for n in names}
    rows: list[ImportRow] = []
    rejected: list[tuple[int, str]] = []
    seen: dict[tuple[str, int], int] = {}
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            rejected.append((reader.line_num, f"not readable as CSV: {exc}"))
            continue
        line = reader.line_num
        if not any(f.strip() for f in fields):
            continue  # blank line
        if len(fields) != len(names):
            rejected.append((line, f"{len(fields)} fields, expected {len(names)}"))
            continue
        reasons = []
        annotator = fields[col["annotator"]].strip()
        if not annotator:
            reasons.append("annotator is empty")
        raw_index = fields[col["image_index"]]
        index = _whole_number(raw_index)
        if index is None and _whole_number(raw_index.strip().removeprefix("-")) is not None:
            reasons.append(f"image_index {raw_index.strip()} is out of range 0..{n_images - 1}")
        elif index is None:
            reasons.append(f"image_index {raw_index.strip()!r} is not a whole number")
        elif index >= n_images:
            reasons.append(f"image_index {index} is out of range 0..{n_images - 1}")
        counts: dict[str, int] = {}
        for shape in SHAPES:
            raw = fields[col[shape]].strip()
            value = _whole_number(raw)
            if value is not None:
                counts[shape] = value
            elif raw.startswith("-") and _whole_number(raw[1:]) is not None:
                reasons.append(f"{shape} is negative ({raw})")
            else:
                reasons.append(f"{shape} {raw!r} is not a whole number" if raw else f"{shape} is empty")
        if not reasons and (annotator, index) in seen:
            reasons.append(f"{annotator!r} already labelled image {index} on line {seen[(annotator, index)]}")
        if reasons:
            rejected.append((line, "; ".join(reasons)))
            continue
        seen[(annotator, index)] = line
        rows.append(ImportRow(line, annotator, index, counts))
    return ImportReport(rows=rows, rejected=rejected)


def import_annotations(store: Any, rows: Sequence[ImportRow], image_source: str = IMAGE_SOURCE) -> int:
    """Save valid rows in one transaction, all or none (an existing label of the same annotator and image
    is replaced); returns the count."""
    return store.save_annotations([
        {"annotator": r.annotator, "image_source": image_source, "image_index": r.image_index, "counts": r.counts,
         "description": describe_counts(r.counts)} for r in rows])


# --- rating -----------------------------------------------------------------------------------------------

def runs_with_predictions(store: Any, eval_set: str = EVAL_SET) -> list[str]:
    """Ids of stored runs that have predictions on ``eval_set``, newest run first."""
    runs = store.list_runs()
    if runs.empty:
        return []
    return [rid for rid in runs["id"] if not store.get_predictions(rid, eval_set).empty]


def latest_ratings(ratings: pd.DataFrame) -> pd.DataFrame:
    """Each rater's newest verdict per (run, image): re-rating an image replaces the earlier verdict."""
    if ratings.empty:
        return ratings
    key = ["rater", "run_id", "image_source", "image_index"]
    ordered = ratings.sort_values("id")
    return ordered.drop_duplicates(subset=key, keep="last").reset_index(drop=True)


def rating_summary(ratings: pd.DataFrame) -> pd.DataFrame:
    """Per (run, rater): correct, partial, wrong, rated and "N of M correct" as §4 reports it."""
    cols = ["run_id", "rater", "correct", "partial", "wrong", "rated", "summary"]
    latest = latest_ratings(ratings)
    if latest.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for (run_id, rater), g in latest.groupby(["run_id", "rater"], dropna=False, sort=True):
        n = {v: int((g["verdict"] == v).sum()) for v in VERDICT_LABELS}
        rated = len(g)
        rows.append({"run_id": run_id, "rater": rater, **n, "rated": rated,
                     "summary": f"{n['correct']} of {rated} correct"})
    return pd.DataFrame(rows, columns=cols)


def rated_indices(ratings: pd.DataFrame, rater: str, run_id: str) -> set[int]:
    if ratings.empty:
        return set()
    mine = ratings[(ratings["rater"] == rater) & (ratings["run_id"] == run_id)]
    return {int(i) for i in mine["image_index"]}


def per_shape_notes(notes: Mapping[str, str]) -> dict[str, str] | None:
    """Only the shapes that got a note; None when none did."""
    kept = {s: n for s, n in notes.items() if n and s in SHAPES}
    return kept or None
