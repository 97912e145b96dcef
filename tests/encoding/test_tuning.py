"""interp.encoding.tuning: histograms, occupancy, editing a threshold set, re-encoding."""

from __future__ import annotations

import numpy as np
import pytest

from interp.encoding.encoders import PAPER_LENGTH, bin_activations, get_encoder, list_encoders
from interp.encoding.thresholds import ThresholdSet, bin_occupancy
from interp.encoding.tuning import (
    calibrated,
    changed_filters,
    filter_histograms,
    occupancy_for,
    reencode,
    reset_filter,
    update_threshold,
)

ROW = (0.5, 1.5, 2.5, 3.5)


@pytest.fixture
def tset() -> ThresholdSet:
    return ThresholdSet(name="hand", thresholds=[ROW] * 8, notes="test")


@pytest.fixture
def acts() -> np.ndarray:
    """[3, 8, 14, 14]: filter f of sample i is the constant i + f / 10, one cell per sample set to 0."""
    a = np.zeros((3, 8, 14, 14), np.float32)
    for i in range(3):
        for f in range(8):
            a[i, f] = i + f / 10
    a[:, :, 0, 0] = 0
    return a


def test_histograms_count_every_cell_from_zero_to_max(acts: np.ndarray) -> None:
    hists = filter_histograms(acts, bins=10)
    assert len(hists) == 8
    for f, (counts, edges) in enumerate(hists):
        assert counts.dtype == np.int64 and counts.shape == (10,) and edges.shape == (11,)
        assert counts.sum() == 3 * 196
        assert edges[0] == 0 and edges[-1] == pytest.approx(2 + f / 10)
        assert counts[-1] == 195  # sample 2's 195 non-zero cells sit at the maximum (last bin is closed)


def test_histograms_of_all_zero_filter_still_have_a_range() -> None:
    counts, edges = filter_histograms(np.zeros((2, 8, 14, 14)), bins=4)[3]
    assert counts.tolist() == [2 * 196, 0, 0, 0] and edges[-1] == 1.0


@pytest.mark.parametrize("bad", [np.zeros((8, 14, 14)), np.zeros((0, 8, 14, 14)), np.zeros((1, 7, 14, 14))])
def test_histograms_reject_bad_shapes(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"activations|reference"):
        filter_histograms(bad)


def test_occupancy_hand_computed(acts: np.ndarray, tset: ThresholdSet) -> None:
    occ = occupancy_for(acts, tset)
    assert occ.shape == (8, 5)
    np.testing.assert_allclose(occ.sum(1), 1)
    # Filter 0: sample 0 is all 0 (z), sample 1 is 1.0 (l), sample 2 is 2.0 (m); the 0,0 cells are z.
    z = (196 + 2) / (3 * 196)
    np.testing.assert_allclose(occ[0], [z, 195 / 588, 195 / 588, 0, 0])
    np.testing.assert_allclose(occ, bin_occupancy(bin_activations(acts, tset)))


def test_update_threshold_replaces_one_row_and_keeps_the_original(tset: ThresholdSet) -> None:
    new = update_threshold(tset, 3, [0.1, 0.2, 0.3, 0.4])
    assert new.thresholds[3] == (0.1, 0.2, 0.3, 0.4)
    assert all(new.thresholds[f] == ROW for f in range(8) if f != 3)
    assert tset.thresholds[3] == ROW and new.name == "hand" and new.notes == "test"
    assert update_threshold(tset, 0, ROW, name="renamed").name == "renamed"
    assert changed_filters(tset, new) == [3]
    assert update_threshold(tset, 2, [1.0, 1.0, 1.0, 1.0]).thresholds[2] == (1.0,) * 4  # ties: empty bins are legal


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([0.1, 0.3, 0.2, 0.4], r"filter 5: thresholds must be non-decreasing \(t2=0.3 > t3=0.2\)"),
        ([-0.1, 0.3, 0.4, 0.5], r"filter 5: t1 must be >= 0"),
        ([0.1, 0.2, 0.3], r"filter 5: expected 4 thresholds"),
        ([0.1, np.nan, 0.3, 0.4], r"filter 5: thresholds must be finite"),
    ],
)
def test_update_threshold_refuses_bad_rows_naming_the_filter(tset: ThresholdSet, values, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        update_threshold(tset, 5, values)


@pytest.mark.parametrize("f", [-1, 8, 1.5])
def test_update_threshold_refuses_bad_filter(tset: ThresholdSet, f) -> None:
    with pytest.raises(ValueError, match="filter must be 0..7"):
        update_threshold(tset, f, ROW)


def test_reset_filter_takes_the_row_from_the_base(tset: ThresholdSet) -> None:
    base = ThresholdSet(name="base", thresholds=[(0, 1, 2, 3)] * 8)
    edited = update_threshold(update_threshold(tset, 1, [1, 2, 3, 4]), 2, [1, 2, 3, 5])
    back = reset_filter(edited, base, 1)
    assert back.thresholds[1] == (0, 1, 2, 3) and back.thresholds[2] == (1, 2, 3, 5)
    assert back.name == "hand"


def test_calibrated_is_valid_and_orders_the_bins() -> None:
    rng = np.random.default_rng(0)
    ref = rng.gamma(1.0, 1.0, size=(50, 8, 14, 14)).astype(np.float32)
    tset = calibrated(ref, np.full(8, 0.05))
    arr = tset.as_array()
    assert tset.name == "calibrated" and arr.shape == (8, 4)
    assert (np.diff(arr, axis=1) >= 0).all() and (arr[:, 0] >= 0.05).all()
    occ = occupancy_for(ref, tset)
    assert (occ[:, 1] > occ[:, 4]).all()  # the calibrated rule puts 40 % of the signal in l, 10 % in v


def test_reencode_bins_letters_and_every_encoder(tset: ThresholdSet) -> None:
    a = np.zeros((8, 14, 14), np.float32)
    a[2, 0, :5] = [0.4, 1.0, 2.0, 3.0, 4.0]  # z l m h v
    r = reencode(a, tset)
    assert r.bins.shape == (8, 14, 14)
    assert r.grid(2)[0] == "zlmhv" + "z" * 9 and r.grid(2)[1] == "z" * 14
    assert set(r.texts) == set(list_encoders())
    assert r.lengths()["paper"] == PAPER_LENGTH
    assert r.texts["paper"][197 * 2 : 197 * 2 + 6] == "fzlmhv"
    for name, text in r.texts.items():
        np.testing.assert_array_equal(get_encoder(name).decode(text), r.bins)
    # Moving t4 above 4.0 turns the v into an h: the encoding follows the thresholds.
    assert reencode(a, update_threshold(tset, 2, [0.5, 1.5, 2.5, 4.5])).grid(2)[0].startswith("zlmhh")
    with pytest.raises(ValueError, match=r"\[8, 14, 14\]"):
        reencode(a[None], tset)
