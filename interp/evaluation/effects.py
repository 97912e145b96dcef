"""The effect map: what each intervention on a layer's filters does to what the interpreter and the probe
read, and to the target's digit accuracy, over many held-out images (issue 17's causal test).

The layer is the interpreter's (conv1, or conv2 for a conv2 interpreter: its thresholds say which). For
every intervention (default: ablate each of the layer's filters, 8 on conv1, 16 on conv2) and every
shape type: how many of the shapes read before are gone after ("ablating filter 3 removes 71 % of
detected verticals"), how many appear, and the mean change of the count; for the interpreter and, beside it, the activation probe
(the same bins, a model trained only to count); and the target CNN's accuracy on MNIST test digits
with the same intervention. An effect map is a folder (``runs/<name>/effects.json``), like a run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from interp.data.mnist import load_mnist
from interp.encoding.encoders import encode_activations
from interp.encoding.thresholds import ThresholdSet
from interp.evaluation.evaluate import interpreter_thresholds, syn_eval_seed
from interp.interpreters.dataset import synthetic_images
from interp.interpreters.probe import ProbeInterpreter, shipped_probe
from interp.interventions import Intervention, check_filters, run_intervened
from interp.language import PLURALS, SHAPES, SYNTH_SHAPES, parse_description
from interp.names import safe_name
from interp.pipeline import thresholds_for
from interp.store.db import Store
from interp.target.cnn import TargetCNN, load_target
from interp.target.layers import DEFAULT_LAYER, get_layer

EFFECTS_FILE = "effects.json"
READERS = ("interpreter", "probe")


def ablate_each(n_filters: int) -> tuple[Intervention, ...]:
    """Each of ``n_filters`` filters ablated alone (a layer's channels)."""
    return tuple(Intervention(f, "ablate") for f in range(n_filters))


@dataclass(frozen=True)
class EffectConfig:
    """What an effect map measures."""

    n: int = 200
    """Held-out synthetic images (D_syn_eval's generator and seed)."""
    n_mnist: int = 1000
    """MNIST test digits for the target's accuracy with and without each intervention."""
    interventions: tuple[Intervention, ...] | None = None
    """The interventions, each applied alone; None: each filter of the interpreter's layer ablated (the saved
    map records the ones it ran)."""
    batch_size: int = 50
    """Encodings per describe call."""

    def __post_init__(self) -> None:
        if self.n < 1 or self.n_mnist < 0 or self.batch_size < 1:
            raise ValueError("n and batch_size must be ≥ 1, n_mnist ≥ 0")
        if self.interventions is not None and not self.interventions:
            raise ValueError("an effect map needs at least one intervention (or None: ablate each filter)")

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "n_mnist": self.n_mnist, "batch_size": self.batch_size,
                "interventions": None if self.interventions is None else [iv.to_dict() for iv in self.interventions]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EffectConfig":
        ivs = d.get("interventions")
        return cls(int(d["n"]), int(d["n_mnist"]), None if ivs is None else tuple(Intervention.from_dict(i) for i in ivs),
                   int(d.get("batch_size", 50)))


def shape_effects(before: np.ndarray, after: np.ndarray) -> dict[str, dict[str, float | int | None]]:
    """Per shape type, from counts int [n, 8] before and after: detected (shapes read before), removed
    (share of those gone after; None when none was read), added (shapes per image that appear) and mean_change."""
    out = {}
    for j, s in enumerate(SHAPES):
        b, a = before[:, j].astype(int), after[:, j].astype(int)
        detected = int(b.sum())
        out[s] = {"detected": detected, "removed": float(np.maximum(b - a, 0).sum() / detected) if detected else None,
                  "added": float(np.maximum(a - b, 0).mean()), "mean_change": float((a - b).mean())}
    return out


@dataclass
class EffectMap:
    """The measured effects: one entry per intervention (its shape effects per reader and the digit accuracy)."""

    config: EffectConfig
    interpreter: str
    rows: list[dict[str, Any]]
    accuracy_before: float | None
    seconds: float = 0.0
    probe: str | None = None
    layer: str = DEFAULT_LAYER
    """The layer whose filters were changed (maps saved before layers: conv1)."""

    def table(self, reader: str = "interpreter", measure: str = "removed") -> pd.DataFrame:
        """[intervention × shape type] of ``measure`` for ``reader`` (the heatmap); the seven synthetic types."""
        data = {r["label"]: {s: r[reader][s][measure] if r.get(reader) else None for s in SYNTH_SHAPES}
                for r in self.rows}
        return pd.DataFrame(data).T.astype(float)

    def summary(self) -> list[str]:
        """One plain sentence per intervention: its strongest removal (interpreter, probe beside it) and the
        digit accuracy it leaves."""
        lines = []
        for r in self.rows:
            effects = {s: e for s, e in r["interpreter"].items() if e["removed"] is not None}
            acc = "" if r.get("accuracy") is None or self.accuracy_before is None else \
                f"; digit accuracy {self.accuracy_before:.1%} → {r['accuracy']:.1%}"
            if not effects:
                lines.append(f"{r['label'].capitalize()}: the interpreter read no shapes before{acc}.")
                continue
            shape, e = max(effects.items(), key=lambda kv: kv[1]["removed"])
            probe = r["probe"][shape]["removed"] if r.get("probe") else None
            beside = f" (probe: {probe:.0%})" if probe is not None else ""
            what = (f"removes {e['removed']:.0%} of detected {PLURALS[shape]}{beside}" if e["removed"] > 0
                    else "removes no detected shape")
            lines.append(f"{r['label'].capitalize()} {what}{acc}.")
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "interpreter": self.interpreter, "probe": self.probe,
                "rows": self.rows, "accuracy_before": self.accuracy_before, "seconds": self.seconds,
                "layer": self.layer}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EffectMap":
        return cls(EffectConfig.from_dict(d["config"]), d["interpreter"], d["rows"], d.get("accuracy_before"),
                   d.get("seconds", 0.0), d.get("probe"), get_layer(d.get("layer", DEFAULT_LAYER)).name)

    def save(self, folder: Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / EFFECTS_FILE
        path.write_text(json.dumps(self.to_dict(), indent=1, default=float) + "\n")
        return path

    @classmethod
    def load(cls, folder: Path) -> "EffectMap":
        path = Path(folder) / EFFECTS_FILE
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: not a readable effect map ({exc})") from exc


def _counts(texts: Sequence[str]) -> np.ndarray:
    return np.array([[parse_description(t).counts.get(s, 0) for s in SHAPES] for t in texts], dtype=np.int64)


def _reader(describe: Callable[[list[str]], list[str]], batch_size: int) -> Callable[[list[str]], np.ndarray]:
    """Counts read from encodings, batched, each distinct encoding described once (an intervention that
    leaves an image's bins as they were costs nothing)."""
    cache: dict[str, str] = {}

    def read(encodings: list[str]) -> np.ndarray:
        todo = list(dict.fromkeys(e for e in encodings if e not in cache))
        for i in range(0, len(todo), batch_size):
            chunk = todo[i : i + batch_size]
            cache.update(zip(chunk, describe(chunk), strict=True))
        return _counts([cache[e] for e in encodings])

    return read


def effect_map(model: TargetCNN, images: np.ndarray, interpreter: Any, thresholds: ThresholdSet,
               cfg: EffectConfig, probe: Any = None, probe_thresholds: ThresholdSet | None = None,
               mnist: tuple[np.ndarray, np.ndarray] | None = None,
               progress: Callable[[int, int], None] | None = None) -> EffectMap:
    """Measure every intervention of ``cfg`` on ``images`` uint8 [n, 28, 28] on the layer of ``thresholds`` (the
    interpreter's; clamps use them); ``probe`` (of the same layer) reads with ``probe_thresholds``; ``mnist``:
    (images, labels) for digit accuracy."""
    start = time.perf_counter()
    layer = get_layer(thresholds.layer)
    cfg = replace(cfg, interventions=cfg.interventions or ablate_each(layer.channels))
    check_filters(cfg.interventions, layer)  # before any image is read
    if probe_thresholds is not None and probe_thresholds.layer != layer.name:
        raise ValueError(f"the probe reads {probe_thresholds.layer}, the interpreter {layer.name}: "
                         "an effect map compares readers of one layer")
    readers = {"interpreter": (_reader(interpreter.describe, cfg.batch_size), thresholds, interpreter.encoder)}
    if probe is not None:
        readers["probe"] = (_reader(probe.describe, 512), probe_thresholds or thresholds, probe.encoder)

    def read_all(acts: np.ndarray) -> dict[str, np.ndarray]:
        return {name: read(encode_activations(acts, t, enc)) for name, (read, t, enc) in readers.items()}

    def accuracy(ivs: Sequence[Intervention]) -> float | None:
        if mnist is None or not len(mnist[0]):
            return None
        _, probs = run_intervened(model, mnist[0], ivs, thresholds, layer=layer)
        return float((probs.argmax(1) == np.asarray(mnist[1])).mean())

    total = len(cfg.interventions) + 1
    acts, _ = run_intervened(model, images, [], thresholds, layer=layer)
    base = read_all(acts)
    if progress:
        progress(1, total)
    rows = []
    for k, iv in enumerate(cfg.interventions, 2):
        acts, _ = run_intervened(model, images, [iv], thresholds, layer=layer)
        after = read_all(acts)
        rows.append({"label": iv.label, **iv.to_dict(), "accuracy": accuracy([iv]),
                     **{name: shape_effects(base[name], after[name]) for name in readers}})
        if progress:
            progress(k, total)
    return EffectMap(cfg, getattr(interpreter, "name", "interpreter"), rows, accuracy([]),
                     time.perf_counter() - start, getattr(probe, "name", None), layer.name)


def run_effects(interpreter: Any, paths: Any, cfg: EffectConfig, name: str,
                progress: Callable[[int, int], None] | None = None) -> tuple[Path, EffectMap]:
    """`intervene effects`: the effect map of a loaded ``interpreter`` on D_syn_eval's first ``cfg.n`` images, on its
    layer's filters, with the shipped probe of that layer beside it and MNIST test digits for accuracy; saved to
    ``runs/<name>/``."""
    safe_name("effect map name", name)
    thresholds = interpreter_thresholds(interpreter, Store(paths.db_path))
    found = shipped_probe(paths.probes_dir, thresholds.layer)
    probe = ProbeInterpreter.load(found) if found else None
    probe_thresholds = thresholds_for(probe.thresholds, thresholds, thresholds.layer) if probe else None
    test = load_mnist(paths.data_dir).test
    result = effect_map(load_target(paths.target_dir), synthetic_images(cfg.n, syn_eval_seed()).images, interpreter,
                        thresholds, cfg, probe, probe_thresholds,
                        (test.images[: cfg.n_mnist], test.labels[: cfg.n_mnist]), progress)
    return result.save(paths.runs_dir / name), result
