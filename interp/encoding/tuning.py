"""Tuning the bin thresholds by hand (§3.2: t1..t4 "chosen heuristically for each individual filter").

What the Binning page needs, as pure functions of numpy arrays and `ThresholdSet`s:

- `filter_histograms`: each filter's activation distribution over a reference set, to draw the
  thresholds on;
- `occupancy_for`: the share of reference cells that fall in each bin z, l, m, h, v;
- `update_threshold` / `reset_filter` / `calibrated`: edit one filter's row of a set, always
  through `validate_thresholds`, so a non-monotone or negative row never becomes a set;
- `reencode`: one image's activations under a set, binned and written by every encoder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from interp.encoding.encoders import LETTERS, SIDE, bin_activations, get_encoder, list_encoders
from interp.encoding.thresholds import (
    N_FILTERS,
    N_THRESHOLDS,
    ThresholdSet,
    bin_occupancy,
    calibrate_thresholds,
    validate_thresholds,
)

LEVELS = ("zero", "low", "medium", "high", "very high")
"""Names of the bins z, l, m, h, v (§3.2)."""


class Histogram(NamedTuple):
    """One filter's activation histogram: ``counts`` int64 [bins], ``edges`` float64 [bins + 1]."""

    counts: np.ndarray
    edges: np.ndarray


def _check_batch(activations: np.ndarray) -> np.ndarray:
    a = np.asarray(activations)
    if a.ndim != 4 or a.shape[1:] != (N_FILTERS, SIDE, SIDE):
        raise ValueError(f"activations must be [n, 8, 14, 14], got {list(a.shape)}")
    if len(a) == 0:
        raise ValueError("need at least one reference sample")
    return a


def filter_histograms(activations: np.ndarray, bins: int = 60) -> list[Histogram]:
    """Per-filter histograms of reference activations [n, 8, 14, 14] → 8 × (counts, edges).

    Edges run linearly from 0 (ReLU output is never negative) to the filter's largest value,
    so no sample is dropped and every threshold of a sensible set lies on the axis. Counts are
    integers: the spike of exact zeros (~16 % of conv1 cells) dwarfs the tail, so plot them on
    a log axis; empty bins stay 0 (skip them there).
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    a = _check_batch(activations)
    out = []
    for f in range(N_FILTERS):
        x = a[:, f].ravel().astype(np.float64)
        top = float(x.max())
        counts, edges = np.histogram(x, bins=bins, range=(0.0, top if top > 0 else 1.0))
        out.append(Histogram(counts.astype(np.int64), edges))
    return out


def occupancy_for(activations: np.ndarray, thresholds: ThresholdSet | np.ndarray) -> np.ndarray:
    """Share of cells per bin z, l, m, h, v for each filter: [n, 8, 14, 14] → float [8, 5], rows sum to 1."""
    return bin_occupancy(bin_activations(_check_batch(activations), thresholds))


def update_threshold(tset: ThresholdSet, filter: int, values: Sequence[float], name: str | None = None) -> ThresholdSet:
    """A copy of ``tset`` with filter ``filter``'s row replaced by ``values`` (t1, t2, t3, t4).

    Raises ValueError naming the filter if the row is not 4 finite numbers with
    0 ≤ t1 ≤ t2 ≤ t3 ≤ t4 (`validate_thresholds`), or if ``filter`` is not 0..7.
    """
    if not (isinstance(filter, int | np.integer) and 0 <= filter < N_FILTERS):
        raise ValueError(f"filter must be 0..{N_FILTERS - 1}, got {filter!r}")
    row = np.asarray(values, dtype=np.float64).ravel()
    if row.shape != (N_THRESHOLDS,):
        raise ValueError(f"filter {filter}: expected {N_THRESHOLDS} thresholds (t1..t4), got {row.size}")
    table = tset.as_array()
    table[filter] = row
    validate_thresholds(table)  # the row index is the filter, so errors name it
    return ThresholdSet(name=tset.name if name is None else name, thresholds=table, notes=tset.notes)


def reset_filter(tset: ThresholdSet, base: ThresholdSet, filter: int) -> ThresholdSet:
    """``tset`` with filter ``filter``'s row taken back from ``base`` (e.g. the saved or calibrated set)."""
    return update_threshold(tset, filter, base.thresholds[filter])


def calibrated(activations: np.ndarray, blank_response: np.ndarray, name: str = "calibrated") -> ThresholdSet:
    """The project's heuristic set for these reference activations (`calibrate_thresholds`)."""
    return calibrate_thresholds(_check_batch(activations), blank_response, name=name)


def changed_filters(a: ThresholdSet, b: ThresholdSet) -> list[int]:
    """Filters whose rows differ between two sets."""
    return [f for f in range(N_FILTERS) if not np.allclose(a.thresholds[f], b.thresholds[f], rtol=0, atol=1e-12)]


@dataclass(frozen=True)
class Reencoding:
    """One image's conv1 maps under a threshold set."""

    bins: np.ndarray
    """int8 [8, 14, 14], 0..4 = z, l, m, h, v."""
    texts: dict[str, str] = field(default_factory=dict)
    """Encoder name → the encoded text (every registered encoder)."""

    def grid(self, filter: int) -> list[str]:
        """Filter ``filter``'s map as 14 rows of 14 letters (the paper encoding's letters, row-major)."""
        letters = np.array(list(LETTERS))[self.bins[filter]]
        return ["".join(row) for row in letters]

    def lengths(self) -> dict[str, int]:
        """Encoder name → length in characters."""
        return {name: len(text) for name, text in self.texts.items()}


def reencode(activations: np.ndarray, thresholds: ThresholdSet | np.ndarray) -> Reencoding:
    """One image's activations [8, 14, 14] → its bins and its text under every registered encoder."""
    a = np.asarray(activations)
    if a.shape != (N_FILTERS, SIDE, SIDE):
        raise ValueError(f"activations must be [8, 14, 14], got {list(a.shape)}")
    bins = bin_activations(a, thresholds)
    texts = {name: get_encoder(name).encode(bins) for name in list_encoders()}
    return Reencoding(bins=bins, texts=texts)
