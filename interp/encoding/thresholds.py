"""Per-filter bin thresholds t1..t4 for the activation encoding (§3.2).

§3.2 bins every conv1 activation ``a`` of a filter into five levels, written z, l, m, h, v
(zero, low, medium, high, very high), with four thresholds per filter "chosen heuristically
for each individual filter". A ``ThresholdSet`` holds those 8 × 4 numbers, or C × 4 for another
registered layer (`interp.target.layers`: conv2 has 16 filters), and names its layer; the encoder
(`interp.encoding.encoders`) applies them, and refuses a set made for another layer's activations:

    z if a ≤ t1,  l if t1 < a ≤ t2,  m if t2 < a ≤ t3,  h if t3 < a ≤ t4,  v if a > t4.

With t1 = 0 that is the paper's rule "z if a ≤ 0". `calibrate_thresholds` documents our
heuristic; a set is saved as JSON beside the runs that used it, and in the store
(`interp.store.thresholds`, which validates with `validate_thresholds` and resolves a set by name).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from interp.target.layers import DEFAULT_LAYER, Layer, get_layer, layer_of_channels, layer_of_shape

N_FILTERS = 8
"""conv1's filters (the default layer); other layers' counts come from `interp.target.layers`."""
N_THRESHOLDS = 4
N_BINS = N_THRESHOLDS + 1

Row = tuple[float, float, float, float]


def validate_thresholds(thresholds: object, layer: str | Layer = DEFAULT_LAYER) -> np.ndarray:
    """Check a [C, 4] table of t1..t4 per filter of ``layer`` ([8, 4] for conv1, [16, 4] for conv2);
    return it as float64, or raise ValueError.

    Rules: exactly C rows of 4 real numbers (not strings, booleans or null), all finite, t1 ≥ 0 and
    t1 ≤ t2 ≤ t3 ≤ t4 per filter (ties allowed: an empty bin is legal). Errors name the filter,
    e.g. ``filter 3: thresholds must be non-decreasing (t2=0.5 > t3=0.4)``, and the layer where the
    shape is wrong: ``thresholds must have shape [16, 4] (one row t1..t4 per conv2 filter), got [8, 4]``.
    """
    spec = get_layer(layer)
    want = [spec.channels, N_THRESHOLDS]
    try:
        arr = np.asarray(thresholds, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:  # OverflowError: an int beyond float range
        if isinstance(thresholds, Sequence) and not isinstance(thresholds, str):
            for f, row in enumerate(thresholds):  # ragged table: name the odd row
                if isinstance(row, Sequence) and len(row) != N_THRESHOLDS:
                    raise ValueError(f"filter {f}: expected {N_THRESHOLDS} thresholds (t1..t4), got {len(row)}") from None
        article = "an" if str(spec.channels).startswith("8") or spec.channels in (11, 18) else "a"  # an [8, 4]
        raise ValueError(f"thresholds must be numbers in {article} {want} table, one row per {spec.name} filter: "
                         f"{exc}") from exc
    if list(arr.shape) != want:
        other = layer_of_channels(arr.shape[0]) if arr.ndim == 2 and arr.shape[1] == N_THRESHOLDS else None
        raise ValueError(
            f"thresholds must have shape {want} (one row t1..t4 per {spec.name} filter), got {list(arr.shape)}"
            + (f": that is a {other.name} table" if other is not None else "")
        )
    for f, row in enumerate(thresholds):  # the float64 conversion above accepts "0.5" and True
        bad = [f"t{k + 1}={v!r}" for k, v in enumerate(row) if v is None or isinstance(v, (str, bytes, bool, np.bool_))]
        if bad:
            raise ValueError(f"filter {f}: thresholds must be numbers ({', '.join(bad)})")
    for f, row in enumerate(arr):
        bad = [f"t{k + 1}={v}" for k, v in enumerate(row) if not np.isfinite(v)]
        if bad:
            raise ValueError(f"filter {f}: thresholds must be finite ({', '.join(bad)})")
        if row[0] < 0:
            raise ValueError(f"filter {f}: t1 must be >= 0 (t1={row[0]:g}); ReLU activations are never negative")
        for k in range(N_THRESHOLDS - 1):
            if row[k] > row[k + 1]:
                raise ValueError(
                    f"filter {f}: thresholds must be non-decreasing (t{k + 1}={row[k]:g} > t{k + 2}={row[k + 1]:g})"
                )
    return arr


@dataclass(frozen=True)
class ThresholdSet:
    """A named table of bin thresholds, one row (t1, t2, t3, t4) per filter of its layer (conv1 by default)."""

    name: str
    """Short label shown in the UI and stored with runs (e.g. "calibrated", "paper-zero")."""
    thresholds: tuple[Row, ...]
    """One row of t1 ≤ t2 ≤ t3 ≤ t4 (t1 ≥ 0) per filter of ``layer`` (8 for conv1); arrays and lists are
    accepted and stored as tuples."""
    notes: str = ""
    """How the set was made (data, rule, date)."""
    layer: str = DEFAULT_LAYER
    """The registered layer (`interp.target.layers`) whose activations the set bins: "conv1" or "conv2"."""

    def __post_init__(self) -> None:
        if isinstance(self.layer, Layer):
            object.__setattr__(self, "layer", self.layer.name)
        arr = validate_thresholds(self.thresholds, get_layer(self.layer))
        # Normalise to plain float tuples so the frozen set is hashable and JSON-exact.
        object.__setattr__(self, "thresholds", tuple(tuple(float(v) for v in row) for row in arr))

    def as_array(self) -> np.ndarray:
        """float64 [C, 4]: [8, 4] for conv1."""
        return np.array(self.thresholds, dtype=np.float64)

    def to_dict(self) -> dict:
        """JSON-ready dict; ``"layer"`` is written only for a layer other than conv1, so a conv1 set's JSON
        (the shipped default, run configs, dataset manifests) stays what it was and older code still reads it,
        while older code refuses a conv2 set ("unknown key 'layer'") instead of misreading it."""
        d = {"name": self.name, "thresholds": [list(row) for row in self.thresholds], "notes": self.notes}
        if self.layer != DEFAULT_LAYER:
            d["layer"] = self.layer
        return d

    @classmethod
    def from_dict(cls, d: object) -> "ThresholdSet":
        """A set from ``{"name": str, "thresholds": [C × 4 numbers], "notes": str (optional), "layer": str
        (optional, "conv1" when absent: every set written before layers existed is a conv1 set)}``.

        Anything else raises ValueError saying what is wrong (never KeyError or TypeError).
        """
        if not isinstance(d, dict):
            raise ValueError(f"a threshold set must be a JSON object with keys 'name' and 'thresholds', "
                             f"got {_json_type(d)}")
        unknown = set(d) - {"name", "thresholds", "notes", "layer"}
        if unknown:
            raise ValueError(f"unknown threshold-set keys: {sorted(unknown)}")
        missing = [k for k in ("name", "thresholds") if k not in d]
        if missing:
            raise ValueError(f"a threshold set needs the keys 'name' and 'thresholds'; missing: {', '.join(missing)}")
        if not isinstance(d["name"], str):
            raise ValueError(f"'name' must be a string, got {d['name']!r}")
        notes = d.get("notes", "")
        if notes is None:
            notes = ""
        if not isinstance(notes, str):
            raise ValueError(f"'notes' must be a string, got {_json_type(notes)}")
        layer = d.get("layer", DEFAULT_LAYER)
        if not isinstance(layer, str):
            raise ValueError(f"'layer' must be a string, got {_json_type(layer)}")
        return cls(name=d["name"], thresholds=d["thresholds"], notes=notes, layer=get_layer(layer).name)

    def save(self, path: Path | str) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path | str) -> "ThresholdSet":
        """A set from a JSON file; a malformed file raises ValueError naming the file and the fault."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path}: not a threshold-set JSON file (not UTF-8 text)") from exc
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:  # also a 5,000-digit number, or lists nested 10⁵ deep
            why = exc.msg if isinstance(exc, json.JSONDecodeError) else (
                "nested too deeply" if isinstance(exc, RecursionError) else str(exc))
            raise ValueError(f"{path}: not valid JSON ({why})") from exc
        try:
            return cls.from_dict(data)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from exc


def threshold_table(thresholds: ThresholdSet | np.ndarray, layer: str | Layer = DEFAULT_LAYER) -> np.ndarray:
    """float64 [C, 4] t1..t4 per filter of ``layer`` from a ThresholdSet or a raw table (checked by
    `validate_thresholds`).

    A set or a table made for another layer is refused with a ValueError naming both layers: a conv1
    set's 8 rows mean nothing for conv2's 16 filters.
    """
    spec = get_layer(layer)
    if isinstance(thresholds, ThresholdSet):
        if thresholds.layer != spec.name:
            raise ValueError(f"threshold set {thresholds.name!r} was made for {thresholds.layer} "
                             f"({len(thresholds.thresholds)} filters), but these activations are {spec.name}'s "
                             f"{list(spec.shape)}: use a {spec.name} threshold set")
        return thresholds.as_array()
    try:
        shape = np.shape(thresholds)
    except ValueError:  # a ragged table: validate_thresholds names the odd row
        shape = ()
    other = layer_of_channels(shape[0]) if len(shape) == 2 and shape[1] == N_THRESHOLDS else None
    if other is not None and other.name != spec.name:
        raise ValueError(f"thresholds {list(shape)} are a {other.name} table ({other.channels} filters), "
                         f"but these activations are {spec.name}'s {list(spec.shape)}: use a {spec.name} table")
    return validate_thresholds(thresholds, spec)


def _json_type(value: object) -> str:
    """How a JSON value's type reads in a message: 'a list', 'a string', 'null'..."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def calibrate_thresholds(
    activations: np.ndarray,
    blank_response: np.ndarray,
    name: str = "calibrated",
    quantiles: tuple[float, float, float] = (0.4, 0.7, 0.9),
    margin: float = 0.02,
) -> ThresholdSet:
    """Per-filter thresholds from reference activations [n, C, S, S] of a registered layer (§3.2:
    "heuristically"): [n, 8, 14, 14] gives a conv1 set, [n, 16, 7, 7] a conv2 set.

    Our rule, per filter f:

    - t1 = blank_f + margin · scale_f, where blank_f is the filter's largest response to an
      all-black image (``blank_response`` [C], or the blank maps [C, S, S]) and scale_f the
      99th percentile of the filter's positive activations. conv1 has biases, so a blank image
      gives a small positive response; anything up to it (plus a margin of 2 % of the filter's
      range) is "no signal", z.
    - t2, t3, t4 = the 40 / 70 / 90 % quantiles of the filter's activations above t1, so the
      signal splits l 40 %, m 30 %, h 20 %, v 10 % over the reference set.
    - A filter with no activation above t1 gets t1 = t2 = t3 = t4 (every cell is z).
    """
    acts = np.asarray(activations, dtype=np.float64)
    spec = layer_of_shape(acts.shape, "activations", batch="n", ndims=(4,))
    if len(acts) == 0:
        raise ValueError("calibration needs at least one reference sample")
    c = spec.channels
    blank = np.asarray(blank_response, dtype=np.float64)
    if blank.shape == spec.shape:
        blank = blank.reshape(c, -1).max(axis=1)
    if blank.shape != (c,):
        raise ValueError(f"blank_response must be [{c}] or {list(spec.shape)} for {spec.name}, "
                         f"got {list(blank.shape)}")
    q = np.asarray(quantiles, dtype=np.float64)
    if q.shape != (3,) or not (np.all(np.diff(q) >= 0) and 0 <= q[0] and q[-1] <= 1):
        raise ValueError(f"quantiles must be three non-decreasing numbers in [0, 1], got {quantiles}")
    if not (np.isfinite(margin) and margin >= 0):
        raise ValueError(f"margin must be a finite number >= 0, got {margin}")

    rows = []
    for f in range(c):
        x = acts[:, f].ravel()
        positive = x[x > 0]
        scale = float(np.quantile(positive, 0.99)) if positive.size else 0.0
        t1 = max(float(blank[f]), 0.0) + margin * scale
        signal = x[x > t1]
        upper = np.quantile(signal, q) if signal.size else np.full(3, t1)
        # Quantiles of values > t1 are already ≥ t1 and sorted; accumulate guards float ties.
        rows.append(np.maximum.accumulate(np.concatenate([[t1], upper])))
    notes = (
        f"t1 = blank response + {margin:g} x p99; t2..t4 = {', '.join(f'{v:.0%}' for v in q)} quantiles "
        f"of activations above t1 over {len(acts)} reference samples"
    )
    return ThresholdSet(name=name, thresholds=np.array(rows), notes=notes, layer=spec.name)


def bin_occupancy(bins: np.ndarray) -> np.ndarray:
    """Share of cells in each bin z, l, m, h, v per filter: int bins [n, C, S, S] → float [C, 5].

    Each row sums to 1. Accepts one sample [C, S, S] too; any registered layer ([n, 8, 14, 14] for conv1).
    """
    b = np.asarray(bins)
    if b.ndim == 3:
        b = b[None]
    spec = layer_of_shape(b.shape, "bins", batch="n", ndims=(4,))
    if b.size == 0:
        raise ValueError("bin_occupancy needs at least one sample")
    per_filter = np.moveaxis(b, 1, 0).reshape(spec.channels, -1).astype(np.int64)
    if per_filter.min() < 0 or per_filter.max() >= N_BINS:
        raise ValueError(f"bins must lie in 0..{N_BINS - 1}")
    counts = np.stack([np.bincount(row, minlength=N_BINS) for row in per_filter])
    return counts / counts.sum(axis=1, keepdims=True)
