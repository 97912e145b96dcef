"""Table 1 metrics (§4): score an interpreter's descriptions against the ground truth.

Every sample is a pair (prediction, truth) of description texts. Both are read with
`parse_description`, which gives a count for each of the 8 shape types of L (`SHAPES`,
"crossing" included). Writing p_s and t_s for the predicted and true count of shape s,
the definitions are:

- **accuracy**: share of samples whose predicted counts equal the truth for every shape
  (p_s = t_s for all 8 s).
- **TP** = Σ min(p_s, t_s), **FP** = Σ max(p_s − t_s, 0), **FN** = Σ max(t_s − p_s, 0),
  per shape type, summed over samples. **precision** = TP / (TP + FP),
  **recall** = TP / (TP + FN), **f1** = 2·precision·recall / (precision + recall).
- **iou**: mean over samples of Σ_s min(p_s, t_s) / Σ_s max(p_s, t_s), which is 1 for a
  sample where both are empty (no shape predicted, no shape true).
- **fdr** = 1 − precision (the column the paper's Table 1 calls "FPR") and
  **fnr** = 1 − recall.
- **fpr**: a true false-positive rate over the (sample, shape type) pairs whose true count
  is 0, for all 8 shape types of the vocabulary: the share of those pairs where the
  predicted count is > 0.
- **bleu**: sacrebleu's corpus BLEU (default settings: 13a tokenisation, exponential
  smoothing, n-grams up to 4) of predicted against true text, divided by 100 (0–1).
- **rouge1**, **rouge2**: mean over samples of the F-measure from rouge-score's
  `RougeScorer(["rouge1", "rouge2"])` (no stemmer; its tokeniser lowercases and splits
  on anything not a letter or digit, and gives 0 when either text has no n-gram).
- **edit_distance**: mean over samples of the word-level Levenshtein distance (rapidfuzz)
  between predicted and true text, where words are the whitespace-separated tokens.
- **well_formed**: share of predictions whose text is exactly canonical L
  (`ParsedDescription.well_formed`).
- **per_shape**: for each shape type, precision, recall and f1 from that type's TP, FP and
  FN alone, with those counts.
- **n**: the number of samples; **tp**, **fp**, **fn**: the summed counts.

Conventions for 0/0: per shape type, a type that no sample holds and no prediction names has
no support: its precision, recall and f1 are None ("n/a"), not a perfect 1 that means nothing.
Otherwise (and for the totals) when a denominator is 0 the score is 1 if nothing is predicted
*and* nothing is true (perfect agreement), else 0.
So precision = 0 when TP + FP = 0 unless TP + FN = 0 too, recall = 0 when TP + FN = 0
unless TP + FP = 0 too, and f1 = 0 when precision + recall = 0. fdr and fnr are always
1 − precision and 1 − recall. fpr = 0 when no (sample, shape type) pair has a true count
of 0 (no negatives, so no false positives). An empty set of samples raises ValueError.

The text compared by BLEU, ROUGE and edit distance is the part of each text the parser
actually read (`ParsedDescription.text`): a leading "### Output:" is removed, and a
run-on after the description (a "### Input: f…" block, activation characters such as
"1hhhv...", a second "Image with ..." description) is not scored as description text.
The truth text goes through the same parser, so a canonical truth is compared as is.

The truth must be a description in L: well formed (`ParsedDescription.well_formed`, after an
optional "### Output:"), with nothing after it. Anything else ("y", "Image with 3 shapes:
1 corner", a run-on) raises ValueError: a truth that cannot be read would otherwise count as
"no shapes" and score a garbage prediction as exact.

All values are plain Python floats or ints (JSON-serialisable); fractions lie in 0–1.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import sacrebleu
from rapidfuzz.distance import Levenshtein
from rouge_score import rouge_scorer

from interp.jsonl import read_jsonl
from interp.language import SHAPES, ParsedDescription, parse_description


@dataclass(frozen=True)
class SampleScore:
    """How one predicted description compares with its ground truth."""

    predicted: dict[str, int]
    """Parsed count per shape of the prediction, every name of SHAPES present."""
    truth: dict[str, int]
    """Parsed count per shape of the ground truth, every name of SHAPES present."""
    exact: bool
    """All 8 counts are equal."""
    tp: dict[str, int]
    """min(predicted, truth) per shape."""
    fp: dict[str, int]
    """max(predicted - truth, 0) per shape."""
    fn: dict[str, int]
    """max(truth - predicted, 0) per shape."""
    iou: float
    """Σ min / Σ max over shapes; 1.0 when both are empty."""
    well_formed: bool
    """The prediction's text is exactly canonical L."""
    edit_distance: int
    """Word-level Levenshtein distance between the prediction's and the truth's text."""
    rouge1: float
    """ROUGE-1 F-measure of the prediction's text against the truth's text."""
    rouge2: float
    """ROUGE-2 F-measure of the prediction's text against the truth's text."""
    prediction_text: str
    """The part of the prediction the parser read (what the text metrics compare)."""
    truth_text: str
    """The part of the truth the parser read."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy (plain dicts, ints, floats, bools, strings)."""
        return asdict(self)


@functools.cache
def _rouge() -> rouge_scorer.RougeScorer:
    # Stateless once built; cached so scoring many samples does not rebuild it.
    return rouge_scorer.RougeScorer(["rouge1", "rouge2"], use_stemmer=False)


def _ratio(num: int, den: int, *, both_empty: bool) -> float:
    """num / den, with the module's 0/0 rule: 1 if nothing predicted and nothing true, else 0."""
    if den:
        return num / den
    return 1.0 if both_empty else 0.0


def _f1(precision: float, recall: float) -> float:
    total = precision + recall
    return 2 * precision * recall / total if total else 0.0


def parse_truth(truth: str) -> ParsedDescription:
    """A ground-truth description, parsed; ValueError unless it is exactly a description in L."""
    parsed = parse_description(truth)
    if not parsed.well_formed or parsed.rest.strip():
        shown = truth if len(truth) <= 80 else truth[:77] + "..."
        raise ValueError(f"the truth {shown!r} is not a description in L "
                         "(e.g. 'Image with 2 shapes: 1 corner, 1 ellipse')")
    return parsed


def score_sample(prediction: str, truth: str) -> SampleScore:
    """Parse both texts and compare their counts and their text; ValueError if the truth is not in L."""
    true = parse_truth(truth)
    pred = parse_description(prediction)
    tp = {s: min(pred.counts[s], true.counts[s]) for s in SHAPES}
    fp = {s: max(pred.counts[s] - true.counts[s], 0) for s in SHAPES}
    fn = {s: max(true.counts[s] - pred.counts[s], 0) for s in SHAPES}
    union = sum(max(pred.counts[s], true.counts[s]) for s in SHAPES)
    rouge = _rouge().score(true.text, pred.text)  # rouge-score's order: (target, prediction)
    return SampleScore(
        predicted={s: pred.counts[s] for s in SHAPES},
        truth={s: true.counts[s] for s in SHAPES},
        exact=all(pred.counts[s] == true.counts[s] for s in SHAPES),
        tp=tp,
        fp=fp,
        fn=fn,
        iou=sum(tp.values()) / union if union else 1.0,
        well_formed=pred.well_formed,
        edit_distance=int(Levenshtein.distance(pred.text.split(), true.text.split())),
        rouge1=float(rouge["rouge1"].fmeasure),
        rouge2=float(rouge["rouge2"].fmeasure),
        prediction_text=pred.text,
        truth_text=true.text,
    )


def _counts_summary(tp: int, fp: int, fn: int) -> dict[str, Any]:
    both_empty = tp + fp == 0 and tp + fn == 0
    precision = _ratio(tp, tp + fp, both_empty=both_empty)
    recall = _ratio(tp, tp + fn, both_empty=both_empty)
    return {"precision": precision, "recall": recall, "f1": _f1(precision, recall), "tp": tp, "fp": fp, "fn": fn}


def _shape_summary(tp: int, fp: int, fn: int) -> dict[str, Any]:
    """A shape type's counts and scores; None scores when it has no support (nothing true, nothing predicted)."""
    if tp == fp == fn == 0:
        return {"precision": None, "recall": None, "f1": None, "tp": 0, "fp": 0, "fn": 0}
    return _counts_summary(tp, fp, fn)


def aggregate_scores(samples: Sequence[SampleScore]) -> dict[str, Any]:
    """The Table 1 metrics of already-scored samples (definitions in the module docstring)."""
    n = len(samples)
    if n == 0:
        raise ValueError("no samples to score")
    per_shape = {
        s: _shape_summary(sum(x.tp[s] for x in samples), sum(x.fp[s] for x in samples), sum(x.fn[s] for x in samples))
        for s in SHAPES
    }
    total = _counts_summary(*(sum(per_shape[s][k] for s in SHAPES) for k in ("tp", "fp", "fn")))
    negatives = [(x.truth[s], x.predicted[s]) for x in samples for s in SHAPES if x.truth[s] == 0]
    false_positives = sum(1 for _, p in negatives if p > 0)
    bleu = sacrebleu.corpus_bleu([x.prediction_text for x in samples], [[x.truth_text for x in samples]])
    return {
        "n": n,
        "accuracy": sum(x.exact for x in samples) / n,
        "precision": total["precision"],
        "recall": total["recall"],
        "f1": total["f1"],
        "iou": sum(x.iou for x in samples) / n,
        "fdr": 1.0 - total["precision"],
        "fnr": 1.0 - total["recall"],
        "fpr": false_positives / len(negatives) if negatives else 0.0,
        # sacrebleu gives 100.00000000000004 for identical text; keep the fraction in 0-1.
        "bleu": min(max(float(bleu.score) / 100.0, 0.0), 1.0),
        "rouge1": sum(x.rouge1 for x in samples) / n,
        "rouge2": sum(x.rouge2 for x in samples) / n,
        "edit_distance": sum(x.edit_distance for x in samples) / n,
        "well_formed": sum(x.well_formed for x in samples) / n,
        "tp": total["tp"],
        "fp": total["fp"],
        "fn": total["fn"],
        "per_shape": per_shape,
    }


def _pair(item: object, index: int) -> tuple[str, str]:
    if isinstance(item, Mapping):
        if "prediction" not in item or "truth" not in item:
            raise ValueError(f"sample {index}: expected keys 'prediction' and 'truth', got {sorted(item)}")
        prediction, truth = item["prediction"], item["truth"]
    elif isinstance(item, Sequence) and not isinstance(item, str) and len(item) == 2:
        prediction, truth = item
    else:
        raise ValueError(f"sample {index}: expected a (prediction, truth) pair or a dict, got {item!r}")
    if not isinstance(prediction, str) or not isinstance(truth, str):
        raise ValueError(f"sample {index}: prediction and truth must be strings")
    return prediction, truth


def score_predictions(pairs: Iterable[tuple[str, str]] | Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Score (prediction, truth) pairs, or dicts with "prediction" and "truth", as one dict.

    Keys: n, accuracy, precision, recall, f1, iou, fdr, fnr, fpr, bleu, rouge1, rouge2,
    edit_distance, well_formed, tp, fp, fn, per_shape ({shape: {precision, recall, f1, tp,
    fp, fn}}). Definitions and 0/0 conventions are in the module docstring.
    """
    scores = []
    for i, item in enumerate(pairs):
        try:
            scores.append(score_sample(*_pair(item, i)))
        except ValueError as err:
            raise ValueError(str(err) if str(err).startswith("sample ") else f"sample {i}: {err}") from err
    return aggregate_scores(scores)


def _check_prediction_row(row: dict[str, Any]) -> None:
    for key in ("prediction", "truth"):
        if not isinstance(row.get(key), str):
            raise ValueError(f"{key!r} must be a string, got {row.get(key)!r}")
    parse_truth(row["truth"])


def read_predictions_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read `{"prediction": text, "truth": text}` lines (other keys are kept; blank lines skipped).

    A line that is not a JSON object with string "prediction" and "truth", or whose truth is
    not a description in L, raises ValueError naming the file and the 1-based line number.
    """
    return read_jsonl(path, check=_check_prediction_row)


def main_metrics(path: str | Path) -> dict[str, Any]:
    """All metrics of a predictions JSONL file (`python -m interp metrics --predictions FILE`)."""
    rows = read_predictions_jsonl(path)
    if not rows:
        raise ValueError(f"{path}: no predictions")
    return score_predictions(rows)
