"""Fresh-machine setup: each step checks for its result first, so running it again is quick."""

from __future__ import annotations

from collections.abc import Iterator

from interp.data.mnist import load_mnist
from interp.encoding.thresholds import ThresholdSet
from interp.evaluation.shipped import load_results
from interp.interpreters.models import fetch_model
from interp.settings import Paths
from interp.store.db import Store
from interp.target.cnn import WEIGHTS_FILE, TargetConfig, save_target, train_target

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


def ensure_store(paths: Paths) -> Iterator[str]:
    """Create the store's schema and make the committed default threshold set its default."""

    store = Store(paths.db_path)
    if store.get_threshold_set() is None:
        default = ThresholdSet.load(paths.assets_dir / "thresholds" / "default.json")
        store.save_threshold_set(default.name, default.as_array().tolist(), notes=default.notes, make_default=True)
    yield f"store: {paths.db_path} (default threshold set '{store.get_threshold_set().name}')"


def ensure_results(paths: Paths, mnist_source: str) -> Iterator[str]:
    """Load the shipped evaluation results (`interp.evaluation.shipped`) the store does not have yet."""

    path = paths.results_path
    added = load_results(Store(paths.db_path), path, mnist_source)
    runs = sorted({run for run, _ in added})
    yield (f"shipped evaluation results: {len(added)} loaded ({', '.join(runs)})" if added
           else f"shipped evaluation results: {'already in the store' if path.exists() else 'none shipped'}")
