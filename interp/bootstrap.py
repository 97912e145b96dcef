"""Fresh-machine setup: each step checks for its result first, so running it again is quick."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from interp.data.mnist import load_mnist
from interp.encoding.thresholds import ThresholdSet
from interp.evaluation.shipped import load_results
from interp.interpreters.models import fetch_model
from interp.settings import Paths
from interp.store.db import Store
from interp.target.cnn import WEIGHTS_FILE, TargetConfig, save_target, train_target
from interp.target.layers import DEFAULT_LAYER, list_layers

DEFAULT_MODEL = "smollm2-135m"


def ensure_all(paths: Paths, fetch_models: bool = True) -> Iterator[str]:
    """Yield one line per step: MNIST, target CNN, store, default thresholds, shipped results, offline LLM."""

    data = load_mnist(paths.data_dir)
    yield f"MNIST: {len(data.train)} train / {len(data.test)} test images from '{data.source}'"

    if (paths.target_dir / WEIGHTS_FILE).exists():
        yield f"target CNN: {paths.target_dir / WEIGHTS_FILE}"
    else:
        model, summary = train_target(data, TargetConfig())
        save_target(model, paths.target_dir, summary)
        yield f"target CNN: trained, test accuracy {summary['accuracy']:.4f}"

    yield from ensure_store(paths)
    yield from ensure_results(paths, data.source)

    if fetch_models:

        yield f"LLM '{DEFAULT_MODEL}': {fetch_model(DEFAULT_MODEL, paths.models_dir)}"


def shipped_thresholds_path(assets_dir: Path, layer: str = DEFAULT_LAYER) -> Path:
    """The committed default threshold set of ``layer``: ``assets/thresholds/default.json`` for conv1 (the
    paper's layer, named before layers existed), ``assets/thresholds/<layer>-default.json`` for another."""
    name = "default.json" if layer == DEFAULT_LAYER else f"{layer}-default.json"
    return Path(assets_dir) / "thresholds" / name


def ensure_store(paths: Paths) -> Iterator[str]:
    """Create the store's schema and make each layer's committed default threshold set its default, where the
    store has none for that layer (conv1's file must exist; another layer's is loaded when shipped)."""

    store = Store(paths.db_path)
    for layer in list_layers():
        path = shipped_thresholds_path(paths.assets_dir, layer)
        if store.get_threshold_set(layer=layer) is not None or (layer != DEFAULT_LAYER and not path.exists()):
            continue
        default = ThresholdSet.load(path)
        if default.layer != layer:
            raise ValueError(f"{path}: a {default.layer} threshold set, expected {layer}'s")
        store.save_threshold_set(default.name, default.as_array().tolist(), notes=default.notes, make_default=True,
                                 layer=layer)
    defaults = [(layer, store.get_threshold_set(layer=layer)) for layer in list_layers()]
    yield f"store: {paths.db_path} (default threshold set " + ", ".join(
        f"{layer} '{record.name}'" for layer, record in defaults if record is not None) + ")"


def ensure_results(paths: Paths, mnist_source: str) -> Iterator[str]:
    """Load the shipped evaluation results (`interp.evaluation.shipped`) the store does not have yet."""

    path = paths.results_path
    added = load_results(Store(paths.db_path), path, mnist_source)
    runs = sorted({run for run, _ in added})
    yield (f"shipped evaluation results: {len(added)} loaded ({', '.join(runs)})" if added
           else f"shipped evaluation results: {'already in the store' if path.exists() else 'none shipped'}")
