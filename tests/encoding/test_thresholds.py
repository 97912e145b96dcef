"""Threshold sets: validation, JSON round trip, calibration, bin occupancy."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interp.encoding.thresholds import ThresholdSet, bin_occupancy, calibrate_thresholds, validate_thresholds

GOOD = [[0.0, 0.1, 0.2, 0.3]] * 8


def test_threshold_set_round_trips_through_dict_and_file(tmp_path):
    rows = np.arange(32, dtype=float).reshape(8, 4) / 10
    ts = ThresholdSet("calibrated", rows, notes="by hand")
    assert ts.thresholds[3] == (1.2, 1.3, 1.4, 1.5)  # stored as plain tuples
    d = ts.to_dict()
    assert d == {"name": "calibrated", "thresholds": rows.tolist(), "notes": "by hand"}
    assert json.loads(json.dumps(d)) == d
    assert ThresholdSet.from_dict(d) == ts
    ts.save(tmp_path / "t.json")
    assert ThresholdSet.load(tmp_path / "t.json") == ts
    arr = ts.as_array()
    assert arr.dtype == np.float64 and arr.shape == (8, 4)
    np.testing.assert_array_equal(arr, rows)


def test_threshold_set_is_frozen_and_hashable():
    ts = ThresholdSet("zero", GOOD)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ts.name = "other"  # type: ignore[misc]
    assert hash(ts) == hash(ThresholdSet("zero", np.array(GOOD)))


def test_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown"):
        ThresholdSet.from_dict({"name": "x", "thresholds": GOOD, "typo": 1})


def _with(f: int, row: list[float]) -> list[list[float]]:
    rows = [list(r) for r in GOOD]
    rows[f] = row
    return rows


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (_with(3, [0.0, 0.5, 0.4, 0.6]), r"^filter 3: thresholds must be non-decreasing \(t2=0.5 > t3=0.4\)$"),
        (_with(0, [-0.1, 0.5, 0.6, 0.7]), r"^filter 0: t1 must be >= 0 \(t1=-0.1\)"),
        (_with(5, [0.0, float("nan"), 0.6, 0.7]), r"^filter 5: thresholds must be finite \(t2=nan\)$"),
        (_with(7, [0.0, 0.1, 0.2, float("inf")]), r"^filter 7: thresholds must be finite \(t4=inf\)$"),
        (_with(2, [0.0, 0.1, 0.2]), r"^filter 2: expected 4 thresholds"),
        (_with(4, [0.0, 0.1, "0.2", 0.3]), r"^filter 4: thresholds must be numbers \(t3='0.2'\)$"),
        (_with(1, [0.0, True, 0.2, 0.3]), r"^filter 1: thresholds must be numbers \(t2=True\)$"),
        (np.ones((8, 4), dtype=bool), r"^filter 0: thresholds must be numbers"),
        (GOOD[:7], r"shape \[8, 4\] \(one row t1..t4 per conv1 filter\), got \[7, 4\]"),
        (np.zeros((8, 5)), r"got \[8, 5\]"),
        (np.zeros(32), r"got \[32\]"),
        ([["a", "b", "c", "d"]] * 8, r"numbers"),
    ],
)
def test_invalid_thresholds_raise_naming_the_problem(table, message):
    with pytest.raises(ValueError, match=message):
        validate_thresholds(table)
    with pytest.raises(ValueError, match=message):
        ThresholdSet("bad", table)


def test_ties_are_allowed():
    np.testing.assert_array_equal(validate_thresholds([[0.2] * 4] * 8), np.full((8, 4), 0.2))


@st.composite
def reference_activations(draw):
    """Random ReLU-like activations [n, 8, 14, 14] plus a blank response [8] (some filters all silent)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(1, 6))
    scale = rng.uniform(0.01, 5.0, size=(1, 8, 1, 1))
    acts = np.maximum(rng.normal(size=(n, 8, 14, 14)) * scale, 0)
    acts[:, rng.random(8) < 0.2] = 0.0  # dead filters
    blank = rng.uniform(0, 0.5, size=8) * (rng.random(8) < 0.7)
    return acts.astype(np.float32), blank


@settings(max_examples=60, deadline=None)
@given(reference_activations(), st.floats(0, 0.2))
def test_calibration_gives_valid_monotone_thresholds_above_the_blank_response(data, margin):
    acts, blank = data
    ts = calibrate_thresholds(acts, blank, margin=margin)
    t = ts.as_array()
    validate_thresholds(t)
    assert (np.diff(t, axis=1) >= 0).all()
    assert (t[:, 0] >= blank).all()
    for f in range(8):
        above = acts[:, f][acts[:, f] > t[f, 0]]
        if above.size == 0:
            assert (t[f] == t[f, 0]).all()  # nothing above t1: every cell of the filter is z
        else:
            assert above.min() <= t[f, 1] <= t[f, 3] <= above.max()


def test_calibration_quantiles_split_the_signal_as_documented():
    rng = np.random.default_rng(0)
    acts = rng.uniform(0, 1, size=(200, 8, 14, 14))
    ts = calibrate_thresholds(acts, np.zeros(8), margin=0.0)
    t = ts.as_array()
    np.testing.assert_allclose(t[:, 0], 0.0)
    np.testing.assert_allclose(t[:, 1:], np.tile([0.4, 0.7, 0.9], (8, 1)), atol=0.01)
    assert ts.name == "calibrated" and "40%" in ts.notes


def test_calibration_accepts_blank_maps_and_rejects_bad_shapes():
    acts = np.ones((2, 8, 14, 14))
    blank_map = np.zeros((8, 14, 14))
    blank_map[2, 5, 5] = 0.3
    t = calibrate_thresholds(acts * 2, blank_map, margin=0).as_array()
    assert t[2, 0] == pytest.approx(0.3) and t[0, 0] == 0.0
    with pytest.raises(ValueError, match=r"\[n, 8, 14, 14\]"):
        calibrate_thresholds(np.ones((8, 14, 14)), np.zeros(8))
    with pytest.raises(ValueError, match="blank_response"):
        calibrate_thresholds(acts, np.zeros(7))


def test_blank_image_of_the_target_is_all_no_signal(target_model, mnist):
    """FACTS: a blank image gives each filter a small positive response; calibrated t1 makes it z."""
    from interp.encoding.encoders import bin_activations
    from interp.target.activations import blank_response, capture_conv1

    ref = capture_conv1(target_model, mnist.train.images[:200])
    blank = blank_response(target_model)
    ts = calibrate_thresholds(ref, blank)
    assert (ts.as_array()[:, 0] >= blank).all()
    blank_bins = bin_activations(capture_conv1(target_model, np.zeros((1, 28, 28), np.uint8)), ts)
    assert (blank_bins == 0).all()
    occupancy = bin_occupancy(bin_activations(ref, ts))
    assert (occupancy[:, 1:].sum(1) > 0.05).all()  # every filter carries some signal on digits


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 5), st.floats(0, 1))
def test_bin_occupancy_rows_are_shares_summing_to_one(seed, n, p_zero):
    rng = np.random.default_rng(seed)
    bins = rng.integers(0, 5, size=(n, 8, 14, 14)) * (rng.random((n, 8, 14, 14)) > p_zero)
    occ = bin_occupancy(bins)
    assert occ.shape == (8, 5)
    np.testing.assert_allclose(occ.sum(1), 1.0)
    for f in range(8):
        np.testing.assert_allclose(occ[f], np.bincount(bins[:, f].ravel(), minlength=5) / bins[:, f].size)


def test_bin_occupancy_hand_case_and_errors():
    bins = np.zeros((8, 14, 14), np.int8)
    bins[1, 0, :4] = [1, 2, 3, 4]
    occ = bin_occupancy(bins)  # one sample [8, 14, 14] is accepted
    np.testing.assert_allclose(occ[0], [1, 0, 0, 0, 0])
    np.testing.assert_allclose(occ[1], [192 / 196, 1 / 196, 1 / 196, 1 / 196, 1 / 196])
    with pytest.raises(ValueError, match="0..4"):
        bin_occupancy(bins + 5)
    with pytest.raises(ValueError, match=r"\[n, 8, 14, 14\]"):
        bin_occupancy(np.zeros((2, 7, 14, 14), np.int8))


# --- malformed threshold files: one clear ValueError naming the file --------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (json.dumps(GOOD), r"must be a JSON object with keys 'name' and 'thresholds', got a list"),
        (json.dumps("GOOD"), r"must be a JSON object .* got a string"),
        ("null", r"must be a JSON object .* got null"),
        (json.dumps({"thresholds": GOOD}), r"missing: name$"),
        (json.dumps({"name": "x"}), r"missing: thresholds$"),
        (json.dumps({"name": 3, "thresholds": GOOD}), r"'name' must be a string, got 3"),
        (json.dumps({"name": True, "thresholds": GOOD}), r"'name' must be a string, got True"),
        (json.dumps({"name": "x", "thresholds": GOOD, "notes": ["a"]}), r"'notes' must be a string, got a list"),
        (json.dumps({"name": "x", "thresholds": [["0", "0.1", "0.2", "0.3"]] * 8}), r"filter 0: thresholds must be numbers"),
        (json.dumps({"name": "x", "thresholds": [[False, True, True, True]] * 8}), r"filter 0: thresholds must be numbers"),
        (json.dumps({"name": "x", "thresholds": _with(6, [0.0, None, 0.2, 0.3])}), r"filter 6: .*\(t2=None\)"),
        ('{"name": "x", "thresholds": [[0, 1' + "0" * 400 + ', 2, 3]]}', r"numbers in an \[8, 4\] table"),
        (json.dumps({"name": "x", "thresholds": GOOD, "typo": 1}), r"unknown threshold-set keys: \['typo'\]"),
        ('{"name": "x", ', r"not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, r"not valid JSON \(nested too deeply\)"),
    ],
)
def test_a_malformed_threshold_file_names_the_file_and_the_fault(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as err:
        ThresholdSet.load(path)
    assert str(err.value).startswith(f"{path}: ")


def test_a_binary_threshold_file_is_a_value_error(tmp_path):
    (tmp_path / "t.json").write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(ValueError, match=r"t\.json: not a threshold-set JSON file \(not UTF-8 text\)"):
        ThresholdSet.load(tmp_path / "t.json")


def test_resolve_threshold_set_names_the_bad_file(tmp_path):
    from interp.store.thresholds import resolve_threshold_set

    db = tmp_path / "never-opened.duckdb"
    (tmp_path / "list.json").write_text(json.dumps(GOOD))
    with pytest.raises(ValueError, match=r"list\.json: a threshold set must be a JSON object"):
        resolve_threshold_set(str(tmp_path / "list.json"), db)
    with pytest.raises(ValueError, match=r"threshold-set file .*missing\.json not found"):
        resolve_threshold_set(str(tmp_path / "missing.json"), db)
    with pytest.raises(ValueError, match="is a folder, not a threshold-set JSON file"):
        resolve_threshold_set(str(tmp_path), db)
    assert not db.exists()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=9) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=40,
)
threshold_like = st.fixed_dictionaries(
    {"name": json_values, "thresholds": st.lists(st.lists(json_values | st.floats(0, 1), min_size=3, max_size=5),
                                                 min_size=7, max_size=9)},
    optional={"notes": json_values},
)


@settings(max_examples=100, deadline=None)
@given(st.one_of(json_values, threshold_like))
def test_any_json_is_a_threshold_set_or_a_value_error(value):
    try:
        ts = ThresholdSet.from_dict(value)
    except ValueError as exc:
        assert str(exc)
        return
    assert isinstance(ts.name, str) and ts.as_array().shape == (8, 4)
    assert ThresholdSet.from_dict(json.loads(json.dumps(ts.to_dict()))) == ts


def test_a_threshold_set_of_any_name_round_trips():
    ts = ThresholdSet("", GOOD)  # the constructor takes any string, so from_dict does too
    assert ThresholdSet.from_dict(ts.to_dict()) == ts


# --- layers: a set carries the layer it bins (conv1 unless it says otherwise) -----------------------

GOOD_CONV2 = [[0.0, 0.1 * f, 0.2 + 0.1 * f, 0.5 + 0.1 * f] for f in range(16)]


def test_a_conv2_set_round_trips_with_its_layer(tmp_path):
    ts = ThresholdSet("conv2-cal", GOOD_CONV2, notes="n", layer="conv2")
    assert ts.layer == "conv2" and ts.as_array().shape == (16, 4)
    d = ts.to_dict()
    assert d == {"name": "conv2-cal", "thresholds": GOOD_CONV2, "notes": "n", "layer": "conv2"}
    assert ThresholdSet.from_dict(d) == ts
    ts.save(tmp_path / "c2.json")
    assert ThresholdSet.load(tmp_path / "c2.json") == ts


def test_old_threshold_json_without_a_layer_loads_as_conv1(tmp_path):
    (tmp_path / "old.json").write_text(json.dumps({"name": "old", "thresholds": GOOD, "notes": "2026-11"}))
    ts = ThresholdSet.load(tmp_path / "old.json")
    assert ts.layer == "conv1" and ts == ThresholdSet("old", GOOD, notes="2026-11")
    # and a conv1 set's JSON is what it was before layers: no "layer" key
    assert "layer" not in ts.to_dict()


def test_the_shipped_default_set_is_a_conv1_set():
    from interp.settings import ROOT

    path = ROOT / "assets" / "thresholds" / "default.json"
    ts = ThresholdSet.load(path)
    assert ts.layer == "conv1" and ts.as_array().shape == (8, 4)
    assert json.loads(path.read_text()) == ts.to_dict()  # byte-for-byte the same content on save


@pytest.mark.parametrize(
    ("table", "layer", "message"),
    [
        (GOOD, "conv2", r"^thresholds must have shape \[16, 4\] \(one row t1..t4 per conv2 filter\), got \[8, 4\]: "
                        r"that is a conv1 table$"),
        (GOOD_CONV2, "conv1", r"^thresholds must have shape \[8, 4\] \(one row t1..t4 per conv1 filter\), got \[16, 4\]: "
                              r"that is a conv2 table$"),
        (GOOD_CONV2[:15], "conv2", r"shape \[16, 4\] .*got \[15, 4\]$"),
        (GOOD, "conv3", r"unknown layer 'conv3'; registered: conv1, conv2"),
    ],
)
def test_validate_thresholds_checks_the_layers_shape_and_names_it(table, layer, message):
    with pytest.raises(ValueError, match=message):
        validate_thresholds(table, layer=layer)
    with pytest.raises(ValueError, match=message):
        ThresholdSet("bad", table, layer=layer)


def test_validate_thresholds_names_the_filter_of_a_conv2_row():
    rows = [list(r) for r in GOOD_CONV2]
    rows[12] = [0.0, 0.5, 0.4, 0.6]
    with pytest.raises(ValueError, match=r"^filter 12: thresholds must be non-decreasing"):
        validate_thresholds(rows, layer="conv2")
    np.testing.assert_array_equal(validate_thresholds(GOOD_CONV2, "conv2"), np.array(GOOD_CONV2))


@pytest.mark.parametrize(
    ("d", "message"),
    [
        ({"name": "x", "thresholds": GOOD, "layer": "fc"}, r"unknown layer 'fc'; registered: conv1, conv2"),
        ({"name": "x", "thresholds": GOOD, "layer": 2}, r"'layer' must be a string, got a number"),
        ({"name": "x", "thresholds": GOOD, "layer": "conv2"}, r"shape \[16, 4\] .*per conv2 filter"),
    ],
)
def test_from_dict_checks_the_layer(d, message):
    with pytest.raises(ValueError, match=message):
        ThresholdSet.from_dict(d)


def test_threshold_table_refuses_a_set_or_table_of_another_layer():
    from interp.encoding.thresholds import threshold_table

    conv1 = ThresholdSet("default", GOOD)
    conv2 = ThresholdSet("c2", GOOD_CONV2, layer="conv2")
    np.testing.assert_array_equal(threshold_table(conv1), np.array(GOOD))
    np.testing.assert_array_equal(threshold_table(conv2, "conv2"), np.array(GOOD_CONV2))
    with pytest.raises(ValueError, match=r"^threshold set 'default' was made for conv1 \(8 filters\), but these "
                                         r"activations are conv2's \[16, 7, 7\]: use a conv2 threshold set$"):
        threshold_table(conv1, "conv2")
    with pytest.raises(ValueError, match=r"'c2' was made for conv2 \(16 filters\), .* conv1's \[8, 14, 14\]"):
        threshold_table(conv2, "conv1")
    with pytest.raises(ValueError, match=r"^thresholds \[8, 4\] are a conv1 table \(8 filters\), but these "
                                         r"activations are conv2's \[16, 7, 7\]: use a conv2 table$"):
        threshold_table(np.array(GOOD), "conv2")
    with pytest.raises(ValueError, match=r"thresholds \[16, 4\] are a conv2 table"):
        threshold_table(GOOD_CONV2, "conv1")


def test_calibration_on_conv2_activations_gives_a_conv2_set():
    rng = np.random.default_rng(0)
    acts = rng.uniform(0, 1, size=(100, 16, 7, 7))
    ts = calibrate_thresholds(acts, np.zeros(16), margin=0.0, name="c2")
    assert ts.layer == "conv2" and ts.as_array().shape == (16, 4)
    np.testing.assert_allclose(ts.as_array()[:, 1:], np.tile([0.4, 0.7, 0.9], (16, 1)), atol=0.03)
    blank_maps = np.zeros((16, 7, 7))
    blank_maps[9, 3, 3] = 0.25
    assert calibrate_thresholds(acts + 0.3, blank_maps, margin=0).as_array()[9, 0] == pytest.approx(0.25)
    with pytest.raises(ValueError, match=r"blank_response must be \[16\] or \[16, 7, 7\] for conv2, got \[8\]"):
        calibrate_thresholds(acts, np.zeros(8))
    with pytest.raises(ValueError, match=r"\[n, 8, 14, 14\] \(conv1\) or \[n, 16, 7, 7\] \(conv2\), got \[16, 7, 7\]"):
        calibrate_thresholds(acts[0], np.zeros(16))


def test_bin_occupancy_of_conv2_bins():
    bins = np.zeros((2, 16, 7, 7), np.int8)
    bins[:, 15, 0, :2] = [4, 1]
    occ = bin_occupancy(bins)
    assert occ.shape == (16, 5)
    np.testing.assert_allclose(occ[15], [47 / 49, 1 / 49, 0, 0, 1 / 49])
    np.testing.assert_allclose(occ[:15, 0], 1.0)



def test_blank_image_of_the_target_is_all_no_signal_on_conv2(target_model, mnist):
    from interp.encoding.encoders import bin_activations
    from interp.target.activations import blank_response, capture

    ref = capture(target_model, mnist.train.images[:200], "conv2")
    blank = blank_response(target_model, "conv2")
    ts = calibrate_thresholds(ref, blank)
    assert ts.layer == "conv2" and (ts.as_array()[:, 0] >= blank).all()
    blank_bins = bin_activations(capture(target_model, np.zeros((1, 28, 28), np.uint8), "conv2"), ts)
    assert blank_bins.shape == (1, 16, 7, 7) and (blank_bins == 0).all()
