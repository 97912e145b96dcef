"""Table 1 metrics (§4) against hand-computed cases."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from interp.evaluation.metrics import (
    SampleScore,
    main_metrics,
    read_predictions_jsonl,
    score_predictions,
    score_sample,
)
from interp.language import SHAPES

KEYS = {
    "n", "accuracy", "precision", "recall", "f1", "iou", "fdr", "fnr", "fpr",
    "bleu", "rouge1", "rouge2", "edit_distance", "well_formed", "per_shape",
}  # fmt: skip

CORNER = "Image with 1 shape: 1 corner"
THREE = "Image with 3 shapes: 1 corner, 1 vertical, 1 checkerboard"

# The mix of three samples used below.
MIX = [
    (THREE, THREE),  # perfect
    ("Image with 3 shapes: 2 corners, 1 ellipse", CORNER),  # extra shapes
    ("Image with 1 shape: 1 diagonal", "Image with 3 shapes: 1 diagonal, 2 horizontals"),  # missing shapes
]


def zeros(**counts: int) -> dict[str, int]:
    return {s: counts.get(s.replace("-", "_"), 0) for s in SHAPES}


def approx(x: float) -> object:
    return pytest.approx(x, rel=1e-12, abs=1e-12)


# --- per sample -------------------------------------------------------------------------


def test_score_sample_perfect() -> None:
    s = score_sample(THREE, THREE)
    assert s.exact and s.well_formed
    assert s.predicted == s.truth == zeros(corner=1, vertical=1, checkerboard=1)
    assert s.tp == zeros(corner=1, vertical=1, checkerboard=1)
    assert s.fp == s.fn == zeros()
    assert s.iou == 1.0
    assert s.edit_distance == 0
    assert s.rouge1 == s.rouge2 == approx(1.0)
    assert s.prediction_text == s.truth_text == THREE


def test_score_sample_extra_shapes() -> None:
    s = score_sample("Image with 3 shapes: 2 corners, 1 ellipse", CORNER)
    assert not s.exact and s.well_formed
    assert s.tp == zeros(corner=1)
    assert s.fp == zeros(corner=1, ellipse=1)
    assert s.fn == zeros()
    # Σ min = 1 (corner), Σ max = 2 (corner) + 1 (ellipse) = 3.
    assert s.iou == approx(1 / 3)
    # Words [Image with 3 shapes: 2 corners, 1 ellipse] vs [Image with 1 shape: 1 corner]:
    # keep "Image with", 3->1, shapes:->shape:, delete "2", delete "corners,", keep "1",
    # ellipse->corner = 5 edits (the 8-word side shares at most 3 words in order, so >= 5).
    assert s.edit_distance == 5
    # rouge-score tokens: image with 3 shapes 2 corners 1 ellipse (8) / image with 1 shape 1 corner (6).
    # Unigram overlap 3 (image, with, 1): F = 2*3/(8+6) = 3/7. Bigram overlap 1 (image with): 2*1/(7+5) = 1/6.
    assert s.rouge1 == approx(3 / 7)
    assert s.rouge2 == approx(1 / 6)


def test_score_sample_missing_shapes() -> None:
    s = score_sample("Image with 1 shape: 1 diagonal", "Image with 3 shapes: 1 diagonal, 2 horizontals")
    assert s.tp == zeros(diagonal=1)
    assert s.fp == zeros()
    assert s.fn == zeros(horizontal=2)
    assert s.iou == approx(1 / 3)  # Σ min 1 / Σ max (1 + 2)
    # [Image with 1 shape: 1 diagonal] (6) vs [Image with 3 shapes: 1 diagonal, 2 horizontals] (8):
    # 1->3, shape:->shapes:, diagonal->"diagonal,", insert 2, insert horizontals = 5.
    assert s.edit_distance == 5


@pytest.mark.parametrize("prediction", ["", "zzzzhhhv", "   \n  "])
def test_score_sample_empty_or_garbage_prediction(prediction: str) -> None:
    s = score_sample(prediction, CORNER)
    assert s.predicted == zeros()
    assert not s.exact and not s.well_formed
    assert s.tp == s.fp == zeros()
    assert s.fn == zeros(corner=1)
    assert s.iou == 0.0
    assert s.prediction_text == ""
    assert s.edit_distance == 6  # insert the 6 words of the truth
    assert s.rouge1 == s.rouge2 == 0.0


def test_score_sample_both_empty_iou_is_one() -> None:
    s = score_sample("Image with 0 shapes", "Image with 0 shapes")
    assert s.exact and s.well_formed and s.iou == 1.0
    # Garbage against an empty truth: counts agree (all 0), so exact and IoU 1, but not well formed.
    g = score_sample("zzzzhhhv", "Image with 0 shapes")
    assert g.exact and g.iou == 1.0 and not g.well_formed


def test_score_sample_reads_only_the_description() -> None:
    # A run-on into the next "### Input:" block or into activation characters is not description text.
    s = score_sample("### Output: Image with 1 shape: 1 corner\n### Input: fzzzlmhv fzzzz", CORNER)
    assert s.prediction_text == CORNER
    assert s.exact and s.well_formed and s.edit_distance == 0 and s.rouge1 == approx(1.0)
    r = score_sample("Image with 2 shapes: 1 corner, 1 crossing, 1hhhv", "Image with 2 shapes: 1 corner, 1 crossing")
    assert r.prediction_text == "Image with 2 shapes: 1 corner, 1 crossing,"
    assert r.exact and not r.well_formed
    assert r.edit_distance == 1  # "crossing," vs "crossing"


def test_sample_score_is_frozen_and_serialisable() -> None:
    s = score_sample(THREE, CORNER)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.iou = 0.5  # type: ignore[misc]
    d = s.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert isinstance(s, SampleScore) and d["fp"]["vertical"] == 1


# --- aggregated -------------------------------------------------------------------------


def test_perfect_predictions() -> None:
    m = score_predictions([(THREE, THREE), (CORNER, CORNER)])
    assert KEYS <= set(m)
    assert m["n"] == 2
    for key in ("accuracy", "precision", "recall", "f1", "iou", "well_formed", "bleu", "rouge1", "rouge2"):
        assert m[key] == approx(1.0), key
    assert m["bleu"] <= 1.0
    assert m["fdr"] == m["fnr"] == m["fpr"] == 0.0
    assert m["edit_distance"] == 0.0
    assert (m["tp"], m["fp"], m["fn"]) == (4, 0, 0)


def test_mix_of_three_hand_computed() -> None:
    m = score_predictions(MIX)
    # Sample 1 exact: TP 3 (corner, vertical, checkerboard).  Sample 2: TP 1 (corner), FP 2 (corner,
    # ellipse).  Sample 3: TP 1 (diagonal), FN 2 (horizontals).  TP = 5, FP = 2, FN = 2.
    assert (m["n"], m["tp"], m["fp"], m["fn"]) == (3, 5, 2, 2)
    assert m["accuracy"] == approx(1 / 3)
    assert m["precision"] == approx(5 / 7)  # 5 / (5 + 2)
    assert m["recall"] == approx(5 / 7)  # 5 / (5 + 2)
    assert m["f1"] == approx(5 / 7)  # 2·(5/7)·(5/7) / (10/7)
    assert m["fdr"] == approx(2 / 7)
    assert m["fnr"] == approx(2 / 7)
    assert m["iou"] == approx(5 / 9)  # (1 + 1/3 + 1/3) / 3
    # Negatives (true count 0) over all 8 types: 5 + 7 + 6 = 18 pairs; predicted > 0 in one
    # of them (sample 2's ellipse).
    assert m["fpr"] == approx(1 / 18)
    assert m["well_formed"] == 1.0
    assert m["edit_distance"] == approx(10 / 3)  # (0 + 5 + 5) / 3
    # ROUGE-1 F: sample 1 = 1, sample 2 = 3/7, sample 3 = 2·4/(6+8) = 4/7 -> mean 2/3.
    # ROUGE-2 F: 1, 1/6, 2·2/(5+7) = 1/3 -> mean 1/2.
    assert m["rouge1"] == approx(2 / 3)
    assert m["rouge2"] == approx(1 / 2)
    assert 0.0 < m["bleu"] < 1.0


def test_mix_per_shape() -> None:
    per = score_predictions(MIX)["per_shape"]
    assert list(per) == list(SHAPES)
    assert per["corner"] == {"precision": approx(2 / 3), "recall": 1.0, "f1": approx(0.8), "tp": 2, "fp": 1, "fn": 0}
    assert per["vertical"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "tp": 1, "fp": 0, "fn": 0}
    # Predicted, never true: precision 0/1; recall 0/0 with something predicted -> 0.
    assert per["ellipse"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "tp": 0, "fp": 1, "fn": 0}
    # True, never predicted: precision 0/0 with something true -> 0; recall 0/2.
    assert per["horizontal"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "tp": 0, "fp": 0, "fn": 2}
    # Never predicted and never true: no support, so no score (n/a), not a perfect 1.
    assert per["crossing"] == {"precision": None, "recall": None, "f1": None, "tp": 0, "fp": 0, "fn": 0}


def test_zero_over_zero_conventions() -> None:
    # Nothing true, nothing predicted: perfect agreement.
    m = score_predictions([("Image with 0 shapes", "Image with 0 shapes")])
    assert (m["precision"], m["recall"], m["f1"], m["iou"], m["accuracy"]) == (1.0, 1.0, 1.0, 1.0, 1.0)
    assert (m["fdr"], m["fnr"], m["fpr"]) == (0.0, 0.0, 0.0)
    # Empty output against a true shape: TP + FP = 0 but TP + FN = 1 -> precision 0.
    m = score_predictions([("", CORNER)])
    assert (m["precision"], m["recall"], m["f1"], m["fdr"], m["fnr"]) == (0.0, 0.0, 0.0, 1.0, 1.0)
    assert m["fpr"] == 0.0  # 7 negatives, none predicted
    # A shape predicted where none is true: precision 0/1, recall 0/0 with FP > 0 -> 0.
    m = score_predictions([(CORNER, "Image with 0 shapes")])
    assert (m["precision"], m["recall"], m["f1"]) == (0.0, 0.0, 0.0)
    assert m["fpr"] == approx(1 / 8)
    # No negatives at all (every type present in the truth): fpr 0.
    every = "Image with 8 shapes: " + ", ".join(f"1 {s}" for s in SHAPES)
    m = score_predictions([(every, every)])
    assert m["fpr"] == 0.0 and m["accuracy"] == 1.0


def test_empty_and_garbage_predictions_aggregate() -> None:
    m = score_predictions([("", CORNER), ("zzzzhhhv", THREE)])
    assert (m["accuracy"], m["iou"], m["well_formed"], m["precision"], m["recall"]) == (0.0, 0.0, 0.0, 0.0, 0.0)
    assert (m["tp"], m["fp"], m["fn"]) == (0, 0, 4)
    assert m["bleu"] == 0.0 and m["rouge1"] == 0.0 and m["rouge2"] == 0.0
    assert m["edit_distance"] == approx((6 + 10) / 2)  # every truth word inserted


def test_text_metrics_identical_vs_different() -> None:
    same = score_predictions([(CORNER, CORNER), (THREE, THREE)])
    assert same["bleu"] == approx(1.0) and same["rouge1"] == approx(1.0) and same["rouge2"] == approx(1.0)
    diff = score_predictions([("Image with 1 shape: 1 vertical", CORNER), (THREE, THREE)])
    assert 0.0 < diff["bleu"] < 1.0
    assert 0.0 < diff["rouge1"] < 1.0 and 0.0 < diff["rouge2"] < 1.0
    assert diff["edit_distance"] == 0.5  # one substituted word in one of two samples


def test_accepts_dicts_and_is_json_serialisable() -> None:
    from_pairs = score_predictions(MIX)
    from_dicts = score_predictions([{"prediction": p, "truth": t, "id": i} for i, (p, t) in enumerate(MIX)])
    assert from_dicts == from_pairs
    assert json.loads(json.dumps(from_pairs)) == from_pairs
    for key in KEYS - {"n", "per_shape"}:
        assert type(from_pairs[key]) is float, key
        assert 0.0 <= from_pairs[key] <= 1.0 or key == "edit_distance", key


def test_score_predictions_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="no samples"):
        score_predictions([])
    with pytest.raises(ValueError, match="sample 1"):
        score_predictions([(CORNER, CORNER), {"prediction": CORNER}])
    with pytest.raises(ValueError, match="sample 0"):
        score_predictions([(CORNER, None)])  # type: ignore[list-item]


# --- files ------------------------------------------------------------------------------


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_read_predictions_jsonl_and_main_metrics(tmp_path: Path) -> None:
    rows = [{"prediction": p, "truth": t} for p, t in MIX]
    path = write_lines(tmp_path / "pred.jsonl", [json.dumps(r) for r in rows[:2]] + [""] + [json.dumps(rows[2])])
    assert read_predictions_jsonl(path) == rows
    assert main_metrics(path) == score_predictions(MIX)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ('{"prediction": "x", "truth": ', "not valid JSON"),
        ('["x", "y"]', "expected a JSON object"),
        ('{"prediction": "x"}', "'truth' must be a string"),
        ('{"prediction": 3, "truth": "y"}', "'prediction' must be a string"),
    ],
)
def test_read_predictions_jsonl_names_the_bad_line(tmp_path: Path, bad: str, message: str) -> None:
    good = json.dumps({"prediction": CORNER, "truth": CORNER})
    path = write_lines(tmp_path / "pred.jsonl", [good, "", bad])
    with pytest.raises(ValueError, match=r"pred\.jsonl:3: ") as err:
        read_predictions_jsonl(path)
    assert message in str(err.value)


def test_main_metrics_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no predictions"):
        main_metrics(path)


# --- a truth that is not in L is an error, never a match -------------------------------------------


@pytest.mark.parametrize(
    "truth",
    ["y", "", "zzzzhhhv", "Image with 3 shapes: 1 corner", "Image with 1 shape: 1.5 corner",
     "Image with 1 shape: 1 corner, 1hhhv", "2 vertical lines"],
)
def test_a_truth_that_is_not_a_description_is_an_error(truth: str) -> None:
    with pytest.raises(ValueError, match="not a description in L"):
        score_sample("x", truth)
    with pytest.raises(ValueError, match=r"^sample 1: the truth .* is not a description in L"):
        score_predictions([(CORNER, CORNER), ("x", truth)])


def test_garbage_against_garbage_no_longer_scores_as_exact() -> None:
    with pytest.raises(ValueError, match="'y' is not a description in L"):
        score_predictions([("x", "y")])
    assert score_sample("### Output: " + CORNER, "### Output: " + CORNER).exact  # the signifier is fine


def test_a_predictions_file_with_a_bad_truth_names_the_line(tmp_path: Path) -> None:
    good = json.dumps({"prediction": CORNER, "truth": CORNER})
    path = write_lines(tmp_path / "pred.jsonl", [good, json.dumps({"prediction": "x", "truth": "y"})])
    with pytest.raises(ValueError, match=r"pred\.jsonl:2: the truth 'y' is not a description in L"):
        main_metrics(path)
