"""Tuning the bin thresholds by hand (§3.2: t1..t4 "chosen heuristically for each individual filter").

What the Binning page needs, as pure functions of numpy arrays and `ThresholdSet`s:

- `filter_histograms`: each filter's activation distribution over a reference set, to draw the
  thresholds on;
- `occupancy_for`: the share of reference cells that fall in each bin z, l, m, h, v;
- `update_threshold` / `reset_filter` / `calibrated`: edit one filter's row of a set, always
  through `validate_thresholds`, so a non-monotone or negative row never becomes a set;
- `reencode`: one image's activations under a set, binned and written by every encoder.

Each works on any registered layer (`interp.target.layers`): conv1's [n, 8, 14, 14] or conv2's
[n, 16, 7, 7], read from the arrays' shapes; a set's own ``layer`` says which filters it has.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from interp.encoding.encoders import LETTERS, bin_activations, get_encoder, list_encoders
from interp.encoding.thresholds import (
    N_THRESHOLDS,
    ThresholdSet,
    bin_occupancy,
    calibrate_thresholds,
    validate_thresholds,
)
from interp.target.layers import get_layer, layer_of_shape

LEVELS = ("zero", "low", "medium", "high", "very high")
"""Names of the bins z, l, m, h, v (§3.2)."""


class Histogram(NamedTuple):
    """One filter's activation histogram: ``counts`` int64 [bins], ``edges`` float64 [bins + 1]."""

    counts: np.ndarray
    edges: np.ndarray


def _check_batch(activations: np.ndarray) -> np.ndarray:
    a = np.asarray(activations)
    layer_of_shape(a.shape, "activations", batch="n", ndims=(4,))
    if len(a) == 0:
        raise ValueError("need at least one reference sample")
    return a


def filter_histograms(activations: np.ndarray, bins: int = 60) -> list[Histogram]:
    """Per-filter histograms of reference activations [n, C, S, S] → C × (counts, edges) (8 for conv1).

    Edges run linearly from 0 (ReLU output is never negative) to the filter's largest value,
    so no sample is dropped and every threshold of a sensible set lies on the axis. Counts are
    integers: the spike of exact zeros (~16 % of conv1 cells) dwarfs the tail, so plot them on
    a log axis; empty bins stay 0 (skip them there).
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    a = _check_batch(activations)
    out = []
    for f in range(a.shape[1]):
        x = a[:, f].ravel().astype(np.float64)
        top = float(x.max())
        counts, edges = np.histogram(x, bins=bins, range=(0.0, top if top > 0 else 1.0))
        out.append(Histogram(counts.astype(np.int64), edges))
    return out


def occupancy_for(activations: np.ndarray, thresholds: ThresholdSet | np.ndarray) -> np.ndarray:
    """Share of cells per bin z, l, m, h, v for each filter: [n, C, S, S] → float [C, 5], rows sum to 1."""
    return bin_occupancy(bin_activations(_check_batch(activations), thresholds))


def update_threshold(tset: ThresholdSet, filter: int, values: Sequence[float], name: str | None = None) -> ThresholdSet:
    """A copy of ``tset`` with filter ``filter``'s row replaced by ``values`` (t1, t2, t3, t4).

    Raises ValueError naming the filter if the row is not 4 finite numbers with
    0 ≤ t1 ≤ t2 ≤ t3 ≤ t4 (`validate_thresholds`), or if ``filter`` is not one of the set's layer's
    filters (0..7 for conv1, 0..15 for conv2). The copy keeps the set's layer.
    """
    channels = get_layer(tset.layer).channels
    if not (isinstance(filter, int | np.integer) and 0 <= filter < channels):
        raise ValueError(f"filter must be 0..{channels - 1} ({tset.layer}), got {filter!r}")
    row = np.asarray(values, dtype=np.float64).ravel()
    if row.shape != (N_THRESHOLDS,):
        raise ValueError(f"filter {filter}: expected {N_THRESHOLDS} thresholds (t1..t4), got {row.size}")
    table = tset.as_array()
    table[filter] = row
    validate_thresholds(table, tset.layer)  # the row index is the filter, so errors name it
    return ThresholdSet(name=tset.name if name is None else name, thresholds=table, notes=tset.notes,
                        layer=tset.layer)


def reset_filter(tset: ThresholdSet, base: ThresholdSet, filter: int) -> ThresholdSet:
    """``tset`` with filter ``filter``'s row taken back from ``base`` (e.g. the saved or calibrated set)."""
    return update_threshold(tset, filter, base.thresholds[filter])


def calibrated(activations: np.ndarray, blank_response: np.ndarray, name: str = "calibrated") -> ThresholdSet:
    """The project's heuristic set for these reference activations [n, C, S, S] (`calibrate_thresholds`): a set
    of the activations' layer."""
    return calibrate_thresholds(_check_batch(activations), blank_response, name=name)


def changed_filters(a: ThresholdSet, b: ThresholdSet) -> list[int]:
    """Filters whose rows differ between two sets (every filter when the sets are for different layers)."""
    if a.layer != b.layer:
        return list(range(len(a.thresholds)))
    return [f for f in range(len(a.thresholds)) if not np.allclose(a.thresholds[f], b.thresholds[f], rtol=0, atol=1e-12)]


@dataclass(frozen=True)
class Reencoding:
    """One image's maps of a layer (conv1 unless the set says otherwise) under a threshold set."""

    bins: np.ndarray
    """int8 [C, S, S] ([8, 14, 14] for conv1), 0..4 = z, l, m, h, v."""
    texts: dict[str, str] = field(default_factory=dict)
    """Encoder name → the encoded text (every registered encoder)."""

    def grid(self, filter: int) -> list[str]:
        """Filter ``filter``'s map as S rows of S letters (14 for conv1; the paper encoding's letters, row-major)."""
        letters = np.array(list(LETTERS))[self.bins[filter]]
        return ["".join(row) for row in letters]

    def lengths(self) -> dict[str, int]:
        """Encoder name → length in characters."""
        return {name: len(text) for name, text in self.texts.items()}


def reencode(activations: np.ndarray, thresholds: ThresholdSet | np.ndarray) -> Reencoding:
    """One image's activations [C, S, S] ([8, 14, 14] for conv1) → its bins and its text under every
    registered encoder; ValueError if ``thresholds`` are for another layer."""
    a = np.asarray(activations)
    layer_of_shape(a.shape, "activations", ndims=(3,))
    bins = bin_activations(a, thresholds)
    texts = {name: get_encoder(name).encode(bins) for name in list_encoders()}
    return Reencoding(bins=bins, texts=texts)
