"""§3.1–3.2: D_prep = shuffle(D_synth ∪ D_mnist) → D_interpret = (p, c(a), l), written as JSONL splits.

A dataset folder holds ``train.jsonl``, ``val.jsonl``, ``test.jsonl`` (one row per sample:
prompt, completion, description, counts, source, index, encoding) and ``manifest.json``
(config, layer, threshold set, content hash, sizes). The hash covers the rows, so two builds with
the same inputs have the same id. The encodings are of one layer's maps (``layer``: conv1 [8, 14, 14]
by default, or conv2 [16, 7, 7]); a manifest without ``layer`` is a conv1 dataset (`manifest_layer`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from interp.data.mnist import load_mnist
from interp.data.shapes import generate_shapes
from interp.interpreters.prompt import build_training_text
from interp.jsonl import read_jsonl
from interp.language import SHAPES, counts_from_vector, counts_to_vector, format_description
from interp.names import safe_name
from interp.pipeline import encode_images
from interp.store.db import Store
from interp.store.thresholds import resolve_threshold_set
from interp.target.cnn import load_target
from interp.target.layers import DEFAULT_LAYER, get_layer

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class DatasetConfig:
    """How D_interpret is built."""

    name: str = "default"
    """Folder name under data/datasets/."""
    n_synthetic: int = 15000
    """Synthetic images (the paper: 15,000)."""
    seed: int = 0
    """Seeds the shape generator, the shuffle and the split."""
    threshold_set: str | None = None
    """Threshold set name in the store, or a JSON file, made for ``layer``; default: the store's default set
    of ``layer``."""
    layer: str = DEFAULT_LAYER
    """Target CNN layer whose activations are encoded: conv1 [8, 14, 14] (the paper's) or conv2 [16, 7, 7]."""
    encoder: str = "paper"
    """Encoding of the activations (see `python -m interp encode --help` for the registry)."""
    val_share: float = 0.05
    """Share of samples for validation."""
    test_share: float = 0.05
    """Share of samples held out for testing."""
    include_mnist: bool = True
    """Add the human-annotated MNIST images from the store (D_mnist)."""

    def __post_init__(self) -> None:
        if self.n_synthetic < 0:
            raise ValueError("n_synthetic must be ≥ 0")
        if not (0 <= self.val_share < 1 and 0 <= self.test_share < 1 and self.val_share + self.test_share < 1):
            raise ValueError("val_share and test_share must be in [0, 1) and sum below 1")
        safe_name("dataset name", self.name)
        get_layer(self.layer)  # ValueError listing the registered layers

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DatasetConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class LabelledImages:
    """Images with their shape counts: ``images`` uint8 [n,28,28], ``counts`` int [n, len(SHAPES)]."""

    images: np.ndarray
    counts: np.ndarray
    source: list[str]
    index: np.ndarray


def synthetic_images(n: int, seed: int) -> LabelledImages:
    """D_synth: generated shape images, counts padded to the full vocabulary (crossing = 0)."""

    batch = generate_shapes(n, seed)
    counts = np.zeros((n, len(SHAPES)), np.int64)
    counts[:, : batch.counts.shape[1]] = batch.counts
    return LabelledImages(batch.images, counts, ["synthetic"] * n, np.arange(n))


def annotated_mnist(annotations: list[dict], test_images: np.ndarray) -> LabelledImages:
    """D_mnist: one row per annotated MNIST test image (the newest annotation wins)."""

    newest: dict[int, dict] = {}
    for a in annotations:
        newest[int(a["image_index"])] = a
    idx = np.array(sorted(newest), dtype=np.int64)
    counts = np.array([counts_to_vector(newest[i]["counts"]) for i in idx], np.int64).reshape(len(idx), -1)
    return LabelledImages(test_images[idx], counts, ["mnist"] * len(idx), idx)


def manifest_layer(manifest: Mapping[str, Any]) -> str:
    """The layer a dataset's encodings are of (``"layer"`` in its manifest); conv1 for a manifest written
    before datasets had a layer (or {} for a folder without one); ValueError for an unknown layer."""
    return get_layer(manifest.get("layer") or (manifest.get("config") or {}).get("layer") or DEFAULT_LAYER).name


def make_rows(data: LabelledImages, encodings: list[str], encoder: str) -> list[dict]:
    """(p, c(a), l) rows for a trainer: prompt + completion, plus what evaluation needs."""

    rows = []
    for i, enc in enumerate(encodings):
        counts = counts_from_vector(data.counts[i])
        description = format_description(counts)
        prompt, completion = build_training_text(enc, description, encoder)
        rows.append({"source": data.source[i], "index": int(data.index[i]), "counts": counts,
                     "description": description, "encoding": enc, "prompt": prompt, "completion": completion})
    return rows


def split_rows(rows: list[dict], cfg: DatasetConfig) -> dict[str, list[dict]]:
    """Shuffle (D_prep) and cut into train / val / test, seeded."""
    order = np.random.default_rng(cfg.seed).permutation(len(rows))
    n_val, n_test = int(round(len(rows) * cfg.val_share)), int(round(len(rows) * cfg.test_share))
    cuts = {"val": order[:n_val], "test": order[n_val : n_val + n_test], "train": order[n_val + n_test :]}
    return {name: [rows[i] for i in cuts[name]] for name in SPLITS}


def write_dataset(splits: dict[str, list[dict]], out: Path, manifest: dict) -> dict:
    """Write the JSONL splits and a manifest whose ``hash`` covers every row."""
    out.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    for name in SPLITS:
        lines = [json.dumps(r, sort_keys=True) for r in splits[name]]
        text = "\n".join(lines) + ("\n" if lines else "")
        digest.update(name.encode() + text.encode())
        (out / f"{name}.jsonl").write_text(text)
    manifest = {**manifest, "hash": digest.hexdigest()[:16], **{f"n_{k}": len(v) for k, v in splits.items()}}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def build_dataset(cfg: DatasetConfig, model, thresholds, annotations: list[dict], mnist_test: np.ndarray,
                  out: Path) -> dict:
    """Generate, encode ``cfg.layer``'s maps, shuffle, split and write; returns the manifest. ``thresholds`` is a
    ThresholdSet of that layer (one of another layer is a ValueError naming both, before anything is generated)."""
    if thresholds.layer != cfg.layer:
        raise ValueError(f"dataset {cfg.name!r} encodes {cfg.layer}, but threshold set {thresholds.name!r} was made "
                         f"for {thresholds.layer}: name a {cfg.layer} set, or none for the store's {cfg.layer} default")
    parts = [synthetic_images(cfg.n_synthetic, cfg.seed)]
    if cfg.include_mnist and annotations:
        parts.append(annotated_mnist(annotations, mnist_test))
    rows = []
    for part in parts:
        if len(part.images):
            rows += make_rows(part, encode_images(model, part.images, thresholds, cfg.encoder, cfg.layer),
                              cfg.encoder)
    manifest = {"config": cfg.to_dict(), "layer": cfg.layer, "threshold_set": thresholds.to_dict(),
                "encoder": cfg.encoder, "n_synthetic": cfg.n_synthetic,
                "n_mnist": sum(r["source"] == "mnist" for r in rows)}
    return write_dataset(split_rows(rows, cfg), out, manifest)


def token_stats(dataset_dir: Path, tokenizer, split: str = "train", limit: int = 300) -> dict:
    """Tokens per sample (whole text, and the encoding alone) for a tokenizer, over the first rows."""
    rows = read_jsonl(dataset_dir / f"{split}.jsonl", limit)
    whole = np.array([len(tokenizer(r["prompt"] + r["completion"], add_special_tokens=False)["input_ids"])
                      for r in rows])
    enc = np.array([len(tokenizer(r["encoding"], add_special_tokens=False)["input_ids"]) for r in rows])
    return {"n": len(rows), "tokens_mean": float(whole.mean()), "tokens_max": int(whole.max()),
            "encoding_tokens_mean": float(enc.mean()), "encoding_tokens_max": int(enc.max())}


def build_dataset_in(paths, cfg: DatasetConfig) -> dict:
    """Build into ``paths.datasets_dir / cfg.name`` with the project's target, thresholds, annotations and MNIST."""

    store = Store(paths.db_path)
    thresholds = resolve_threshold_set(cfg.threshold_set, paths.db_path, cfg.layer)
    annotations = store.list_annotations(image_source="mnist").to_dict("records") if cfg.include_mnist else []
    # MNIST only when annotated images join: a synthetic-only build (paper-30k) need not load it
    mnist_test = load_mnist(paths.data_dir).test.images if annotations else np.zeros((0, 28, 28), np.uint8)
    return build_dataset(cfg, load_target(paths.target_dir), thresholds, annotations, mnist_test,
                         paths.datasets_dir / cfg.name)
