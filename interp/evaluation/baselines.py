"""Baselines for Table 1, each an Interpreter-like object that `interp.evaluation.evaluate.evaluate` runs.

1. **Base model** (the paper's "before fine-tuning" column): no code here —
   ``python -m interp evaluate --run base:PRESET --set syn_eval`` evaluates the pre-trained
   model without adapter (`load_interpreter("base:PRESET")`).
2. **Majority / prior**: the same description for every image, fitted on the training split:
   ``mode="description"`` — the most frequent description text (ties: the alphabetically first);
   ``mode="per_shape"`` — for each shape type its most frequent count (ties: the smaller count).
3. **Activation probe** (`interp.interpreters.probe`): a small CNN trained on the same training split,
   reading the same binned maps the LLM reads; it tells how much the activations carry.

Both fitted baselines encode the eval set with the training dataset's layer, encoder and threshold set,
so they are scored on the same text the interpreter trained on that dataset would see.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from interp.encoding.thresholds import ThresholdSet
from interp.evaluation.evaluate import check_eval_set, evaluate, load_eval_set
from interp.interpreters.dataset import manifest_layer
from interp.interpreters.probe import ProbeInterpreter, dataset_bins, save_probe, train_probe
from interp.interpreters.training import resolve_dataset
from interp.jsonl import read_jsonl, read_manifest
from interp.language import SHAPES, format_description
from interp.names import safe_name
from interp.store.db import Store
from interp.target.layers import DEFAULT_LAYER

MAJORITY_MODES = ("description", "per_shape")


@dataclass
class MajorityInterpreter:
    """Answers every encoding with one fixed description."""

    description: str
    name: str = "majority"
    encoder: str = "paper"
    thresholds: object = None
    layer: str = DEFAULT_LAYER
    """The layer its dataset encoded: the held-out images are encoded the same way."""

    def describe(self, encodings: Sequence[str], max_new_tokens: int = 48) -> list[str]:
        return [self.description] * len(encodings)

    def stream(self, prompt: str, max_new_tokens: int = 128, temperature: float = 0.0,
               stop_event=None) -> Iterator[str]:
        yield self.description


def majority_description(rows: Sequence[dict], mode: str = "description") -> str:
    """The prior's answer from training rows (each with ``description`` and ``counts``)."""
    if mode not in MAJORITY_MODES:
        raise ValueError(f"mode must be one of {MAJORITY_MODES}, got {mode!r}")
    if not rows:
        raise ValueError("no training rows")
    if mode == "description":
        freq = Counter(r["description"] for r in rows)
        return min(freq, key=lambda d: (-freq[d], d))
    counts = {}
    for shape in SHAPES:
        freq = Counter(int(r["counts"].get(shape, 0)) for r in rows)
        counts[shape] = min(freq, key=lambda c: (-freq[c], c))
    return format_description(counts)


def read_rows(dataset_dir: Path, split: str = "train") -> list[dict]:
    """The rows of one JSONL split of a dataset folder."""
    return read_jsonl(Path(dataset_dir) / f"{split}.jsonl")


def dataset_settings(dataset_dir: Path):
    """(encoder, ThresholdSet or None, layer) a dataset was built with, from its manifest (conv1 when it
    names no layer)."""

    manifest = read_manifest(dataset_dir)
    tset = manifest.get("threshold_set")
    return manifest.get("encoder", "paper"), (ThresholdSet.from_dict(tset) if tset else None), manifest_layer(manifest)


def fit_majority(dataset_dir: Path, mode: str = "description") -> MajorityInterpreter:
    """A MajorityInterpreter fitted on a dataset's train split, encoding like that dataset."""
    encoder, tset, layer = dataset_settings(dataset_dir)
    return MajorityInterpreter(majority_description(read_rows(dataset_dir), mode), name=f"majority-{mode}",
                               encoder=encoder, thresholds=tset, layer=layer)


def _evaluate_baseline(interpreter, kind_config: dict, run_id: str, paths, dataset_dir: Path, eval_set: str,
                       n: int, offset: int, progress: bool, run_path: Path | None = None) -> dict:
    es = load_eval_set(eval_set, interpreter, paths, n=n, offset=offset, dataset_dir=dataset_dir)
    return evaluate(interpreter, es.rows, run_id, Store(paths.db_path), batch_size=256, progress=progress,
                    eval_set=es.name, kind="baseline", path=run_path,
                    config={"dataset": str(dataset_dir), **kind_config, **es.config()})


def run_majority(paths, dataset: str, mode: str = "description", eval_set: str = "syn_eval", n: int = 500,
                 offset: int = 0, run_id: str | None = None, progress: bool = True) -> tuple[str, dict]:
    """`python -m interp baseline majority`: fit on the train split, evaluate, store; (run id, metrics)."""

    check_eval_set(eval_set, paths)
    dataset_dir = resolve_dataset(dataset, paths.datasets_dir)
    interpreter = fit_majority(dataset_dir, mode)
    run_id = run_id or f"majority-{dataset_dir.name}"
    metrics = _evaluate_baseline(interpreter, {"baseline": "majority", "mode": mode,
                                               "answer": interpreter.description},
                                 run_id, paths, dataset_dir, eval_set, n, offset, progress)
    return run_id, metrics


def run_probe(paths, dataset: str, cfg, eval_set: str = "syn_eval", n: int = 500, offset: int = 0,
              run_id: str | None = None, out: Path | None = None, progress: bool = True) -> tuple[str, dict]:
    """`python -m interp baseline probe`: train on the train split (val split for monitoring), save,
    evaluate, store; (run id, metrics). The probe reads the dataset's layer (``cfg.layer`` is set from its
    manifest) and is saved in ``out`` (default runs/<run id>)."""

    check_eval_set(eval_set, paths)  # before training: a bad labelled set fails at once
    dataset_dir = resolve_dataset(dataset, paths.datasets_dir)
    encoder, tset, layer = dataset_settings(dataset_dir)
    cfg = replace(cfg, layer=layer)
    run_id = run_id or f"probe-{dataset_dir.name}"
    if out is None:  # the run id becomes runs/<run id>: one folder, never a path out of runs/
        safe_name("run id", run_id)
    t0 = time.perf_counter()
    x, y = dataset_bins(dataset_dir, "train", encoder)
    val = dataset_bins(dataset_dir, "val", encoder) if (dataset_dir / "val.jsonl").exists() else None
    decode_s = time.perf_counter() - t0
    result = train_probe(x, y, cfg, val=val, progress=progress)
    out = Path(out) if out else paths.runs_dir / run_id
    summary = {"dataset": str(dataset_dir), "layer": layer, "encoder": encoder,
               "threshold_set": tset.to_dict() if tset else None,
               "n_train": len(x), "train_seconds": result.seconds,
               "decode_seconds": decode_s, "history": result.history}
    save_probe(result.model, cfg, out, summary)
    interpreter = ProbeInterpreter(result.model, cfg, encoder=encoder, thresholds=tset, name=f"probe:{out}")
    metrics = _evaluate_baseline(interpreter, {"baseline": "probe", "probe": cfg.to_dict(),
                                               "train_seconds": round(result.seconds, 2),
                                               "final": result.history[-1] if result.history else {}},
                                 run_id, paths, dataset_dir, eval_set, n, offset, progress, run_path=out)
    return run_id, {**metrics, "train_seconds": result.seconds, "history": result.history}

