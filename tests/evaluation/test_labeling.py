"""Human evaluation: Cohen's kappa against hand-computed cases, CSV import validation, ratings, progress."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import pandas as pd
import pytest

from interp.evaluation import labeling
from interp.language import SHAPES
from interp.store.db import Store

HEADER = "annotator,image_index," + ",".join(SHAPES)


# --- kappa ----------------------------------------------------------------------------------------------

def test_kappa_hand_computed_three_categories() -> None:
    # p_o = 4/6; p_a = (2, 3, 1)/6, p_b = (3, 1, 2)/6 → p_e = (6 + 3 + 2)/36 = 11/36;
    # kappa = (24/36 - 11/36) / (25/36) = 13/25.
    a = [0, 1, 1, 2, 0, 1]
    b = [0, 1, 2, 2, 0, 0]
    assert labeling.cohen_kappa(a, b) == pytest.approx(13 / 25, abs=1e-12)


def test_kappa_hand_computed_two_by_two() -> None:
    # 50 items: yes/yes 20, yes/no 5, no/yes 10, no/no 15 → p_o = 0.7, p_e = 0.5·0.6 + 0.5·0.4 = 0.5 → 0.4.
    a = [1] * 20 + [1] * 5 + [0] * 10 + [0] * 15
    b = [1] * 20 + [0] * 5 + [1] * 10 + [0] * 15
    assert labeling.cohen_kappa(a, b) == pytest.approx(0.4, abs=1e-12)


def test_kappa_edge_cases() -> None:
    assert labeling.cohen_kappa([0, 1, 2], [0, 1, 2]) == 1.0
    assert labeling.cohen_kappa([0, 1], [1, 0]) == -1.0  # p_o = 0, p_e = 0.5
    assert math.isnan(labeling.cohen_kappa([0, 0, 0], [0, 0, 0]))  # p_e = 1: undefined
    assert math.isnan(labeling.cohen_kappa([], []))
    with pytest.raises(ValueError, match="same items"):
        labeling.cohen_kappa([0], [0, 1])


def _annotations(rows: list[tuple[str, int, dict]]) -> pd.DataFrame:
    return pd.DataFrame([{"id": i, "annotator": a, "image_source": "mnist", "image_index": idx, "counts": c,
                          "description": labeling.describe_counts(c), "created_at": 0, "updated_at": 0}
                         for i, (a, idx, c) in enumerate(rows)])


def test_agreement_per_shape_over_shared_images_only() -> None:
    df = _annotations([
        ("ann", 0, {"corner": 1, "vertical": 1}), ("bob", 0, {"corner": 1}),
        ("ann", 1, {"corner": 2}), ("bob", 1, {"corner": 2}),
        ("ann", 2, {"vertical": 1}), ("bob", 2, {"corner": 1, "vertical": 1}),
        ("ann", 3, {"corner": 5}),  # only ann: not compared
    ])
    table = labeling.agreement(df, "ann", "bob").set_index("shape")
    assert list(table.index) == list(SHAPES) and set(table["n_images"]) == {3}
    # corner: ann (1, 2, 0), bob (1, 2, 1): p_o = 2/3, p_e = (1·2 + 1·1 + 1·0)/9 = 1/3 → (2/3-1/3)/(2/3) = 0.5
    assert table.loc["corner", "observed"] == pytest.approx(2 / 3)
    assert table.loc["corner", "kappa"] == pytest.approx(0.5)
    # vertical: ann (1, 0, 1), bob (0, 0, 1): p_o = 2/3, p_e = (2/3·1/3 + 1/3·2/3) = 4/9 → (2/9)/(5/9) = 0.4
    assert table.loc["vertical", "kappa"] == pytest.approx(0.4)
    assert table.loc["ellipse", "observed"] == 1.0 and math.isnan(table.loc["ellipse", "kappa"])
    assert labeling.annotator_pairs(df).to_dict("records") == [
        {"annotator_a": "ann", "annotator_b": "bob", "shared_images": 3}]


# --- annotating -------------------------------------------------------------------------------------------

def test_next_unannotated_and_progress() -> None:
    assert labeling.next_unannotated({0, 1, 3}) == 2
    assert labeling.next_unannotated({0, 1, 3}, start=3) == 4
    assert labeling.next_unannotated(set(range(5, 100)), start=50) == 0  # wraps around
    assert labeling.next_unannotated(set(range(100))) is None
    assert labeling.progress({0, 5, 99, 100, 4000}) == (3, 100)


# --- CSV import ------------------------------------------------------------------------------------------

def _csv(*rows: str, header: str = HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


def test_valid_rows_are_read() -> None:
    report = labeling.parse_annotation_csv(_csv("alice,0,1,0,0,0,0,0,2,1", " bob , 9999 ,0,0, 1 ,0,0,+1,0,0"), 10_000)
    assert report.ok and report.rejected == []
    assert [(r.line, r.annotator, r.image_index) for r in report.rows] == [(2, "alice", 0), (3, "bob", 9999)]
    assert report.rows[0].counts == {**dict.fromkeys(SHAPES, 0), "diagonal": 1, "corner": 2, "crossing": 1}
    assert report.rows[1].counts["vertical"] == 1 and report.rows[1].counts["ellipse"] == 1


def test_bad_rows_are_rejected_with_line_and_reason() -> None:
    text = _csv(
        "alice,0,1,0,0,0,0,0,0,0",         # line 2: fine
        "alice,1,1.5,0,0,0,0,0,0,0",       # 3: not an integer
        "alice,2,0,-1,0,0,0,0,0,0",        # 4: negative
        "alice,100,0,0,0,0,0,0,0,0",       # 5: out of range
        "alice,-3,0,0,0,0,0,0,0,0",        # 6: out of range (negative index)
        "alice,x,0,0,0,0,0,0,0,0",         # 7: index not a number
        ",4,0,0,0,0,0,0,0,0",              # 8: no annotator
        "alice,5,0,0,0,0,0,0,0",           # 9: a field short
        "",                                # 10: blank line, skipped
        "alice,0,0,0,0,0,0,0,0,2",         # 11: same annotator and image as line 2
        "alice,6,two,0,0,0,0,,0,0",        # 12: two problems at once
    )
    report = labeling.parse_annotation_csv(text, 100)
    assert [r.line for r in report.rows] == [2]
    assert report.rejected == [
        (3, "diagonal '1.5' is not a whole number"),
        (4, "anti-diagonal is negative (-1)"),
        (5, "image_index 100 is out of range 0..99"),
        (6, "image_index -3 is out of range 0..99"),
        (7, "image_index 'x' is not a whole number"),
        (8, "annotator is empty"),
        (9, "9 fields, expected 10"),
        (11, "'alice' already labelled image 0 on line 2"),
        (12, "diagonal 'two' is not a whole number; ellipse is empty"),
    ]


@pytest.mark.parametrize(("header", "message"), [
    (HEADER + ",colour", "unknown column(s) 'colour'"),
    ("annotator,image_index," + ",".join(SHAPES[:-1]), "missing column(s) crossing"),
    (HEADER + ",corner", "repeated column(s) corner"),
    ("", "the file is empty"),
])
def test_bad_headers_reject_the_whole_file(header: str, message: str) -> None:
    report = labeling.parse_annotation_csv(_csv("alice,0,0,0,0,0,0,0,0,0", header=header) if header else "", 100)
    assert not report.ok and message in report.error and report.rows == []


def test_bytes_with_bom_and_not_utf8() -> None:
    data = ("\ufeff" + _csv("alice,0,0,0,0,0,0,0,0,1")).encode("utf-8")
    assert len(labeling.parse_annotation_csv(data, 10).rows) == 1
    assert "not UTF-8" in labeling.parse_annotation_csv(b"\xff\xfe\x00bad", 10).error


def test_export_import_round_trip(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.duckdb")
    store.save_annotation("alice", "mnist", 3, {"corner": 2, "crossing": 1}, "old text")
    store.save_annotation("bob", "mnist", 3, {"ellipse": 1}, "Image with 1 shape: 1 ellipse")
    text = labeling.annotations_to_csv(store.list_annotations())
    assert text.splitlines()[0] == HEADER + ",description"
    assert text.splitlines()[1] == "alice,3,0,0,0,0,0,0,2,1,old text"

    other = Store(tmp_path / "other.duckdb")
    report = labeling.parse_annotation_csv(text, 10_000)
    assert labeling.import_annotations(other, report.rows) == 2
    got = other.get_annotation("alice", "mnist", 3)
    assert got.counts == {**dict.fromkeys(SHAPES, 0), "corner": 2, "crossing": 1}
    assert got.description == "Image with 3 shapes: 2 corners, 1 crossing"  # rebuilt from the counts

    lines = [json.loads(line) for line in labeling.annotations_to_jsonl(store.list_annotations()).splitlines()]
    assert [(d["annotator"], d["image_index"], d["counts"]["ellipse"]) for d in lines] == [("alice", 3, 0), ("bob", 3, 1)]


def test_importing_1000_rows_is_one_transaction_all_or_nothing(tmp_path: Path, capsys) -> None:
    store = Store(tmp_path / "db.duckdb")
    store.save_annotation("alice", "mnist", 10, {"corner": 5}, "mine, before the import")
    lines = [f"alice,{i}," + ",".join(str((i + k) % 3) for k in range(len(SHAPES))) for i in range(1000)]
    report = labeling.parse_annotation_csv(_csv(*lines), 10_000)
    assert report.ok and len(report.rows) == 1000 and not report.rejected

    # Row 500 fails in the database (its index does not fit the INTEGER column): the rows before it, including
    # row 10's edit of an existing label, are not left behind.
    broken = [*report.rows[:500], dataclasses.replace(report.rows[500], image_index=2**40), *report.rows[501:]]
    with pytest.raises(Exception, match="(?i)out of range|conversion"):
        labeling.import_annotations(store, broken)
    after = Store(store.path).list_annotations()
    assert len(after) == 1 and after.iloc[0]["description"] == "mine, before the import"

    start = time.perf_counter()
    assert labeling.import_annotations(store, report.rows) == 1000
    took = time.perf_counter() - start
    got = Store(store.path).list_annotations("alice").set_index("image_index")
    assert len(got) == 1000 and got.loc[10, "counts"] == {s: (10 + k) % 3 for k, s in enumerate(SHAPES)}
    with capsys.disabled():  # a figure, not a limit: the row-per-connection import took ~47 s
        print(f"\n[benchmark] imported 1,000 annotation rows in one transaction: {took:.2f} s")


def test_import_opens_one_connection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import duckdb

    store = Store(tmp_path / "db.duckdb")
    rows = [labeling.ImportRow(i + 2, "bob", i, {"corner": 1}) for i in range(300)]
    opened = []
    real = duckdb.connect
    monkeypatch.setattr(duckdb, "connect", lambda *a, **k: opened.append(a) or real(*a, **k))
    assert labeling.import_annotations(store, rows) == 300
    assert len(opened) == 1


# --- rating ------------------------------------------------------------------------------------------------

def test_ratings_latest_verdict_counts(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.duckdb")
    store.upsert_run("eval-a", "evaluate", "smollm2-135m", {}, "succeeded", None)
    store.upsert_run("eval-b", "evaluate", "smollm2-135m", {}, "succeeded", None)
    store.save_predictions("eval-a", "mnist_eval", [{"sample_index": i, "prediction": "Image with 0 shapes"}
                                                    for i in range(3)])
    store.save_predictions("eval-b", "syn_eval", [{"sample_index": 0, "prediction": "x"}])
    assert labeling.runs_with_predictions(store) == ["eval-a"]

    for index, verdict in [(0, "wrong"), (0, "correct"), (1, "correct"), (2, "partial")]:  # image 0 re-rated
        store.save_rating("ann", "eval-a", "mnist", index, "p", verdict)
    store.save_rating("bob", "eval-a", "mnist", 0, "p", "wrong", per_shape={"corner": "too many"}, comment="c")
    summary = labeling.rating_summary(store.list_ratings())
    assert summary.to_dict("records") == [
        {"run_id": "eval-a", "rater": "ann", "correct": 2, "partial": 1, "wrong": 0, "rated": 3,
         "summary": "2 of 3 correct"},
        {"run_id": "eval-a", "rater": "bob", "correct": 0, "partial": 0, "wrong": 1, "rated": 1,
         "summary": "0 of 1 correct"}]
    assert labeling.rated_indices(store.list_ratings(), "ann", "eval-a") == {0, 1, 2}
    assert "too many" in labeling.ratings_to_csv(store.list_ratings())
    assert labeling.per_shape_notes({"corner": "too many", "ellipse": "", "nonsense": "x"}) == {"corner": "too many"}
    assert labeling.per_shape_notes({"corner": ""}) is None
