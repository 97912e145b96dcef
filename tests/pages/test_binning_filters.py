"""The Binning and Filters pages, driven through streamlit.testing.v1.AppTest on an isolated store."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from interp.bootstrap import ensure_store
from interp.settings import Paths
from interp.store.db import Store
from tests.pages.store_busy import HOLDER_PID, store_refused

PAGES = Path(__file__).resolve().parents[2] / "pages"
TIMEOUT = 90  # the first run computes the reference set (MNIST + shapes through the target): ~10 s here


@pytest.fixture
def store_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh store with the committed default set; the app's cached Paths is reset to point at it."""
    import interp.data.mnist
    from pages import common

    db = tmp_path / "app.duckdb"
    monkeypatch.setenv("N2W_DB", str(db))
    # Offline, torchvision's download attempt costs ~3 s before the npm copy loads; skip it here.
    monkeypatch.delitem(interp.data.mnist.LOADERS, "torchvision")
    list(ensure_store(Paths.from_env()))
    common.paths.clear()  # paths() is cached per process: drop the one another test may have made
    yield db
    common.paths.clear()


def _page(name: str) -> AppTest:
    at = AppTest.from_file(str(PAGES / f"{name}.py"), default_timeout=TIMEOUT).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def _chart(at: AppTest, key: str) -> dict:
    matches = [json.loads(c.proto.spec) for c in at.get("plotly_chart") if key in c.proto.id]
    assert len(matches) == 1, f"expected one chart with key {key!r}"
    return matches[0]


def _array(value) -> np.ndarray:
    """Plotly 7 encodes numpy arrays as {'dtype', 'bdata'} (base64)."""
    if isinstance(value, dict) and "bdata" in value:
        arr = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        return arr.reshape([int(n) for n in str(value["shape"]).split(",")]) if "shape" in value else arr
    return np.asarray(value)


def _sliders(at: AppTest, f: int) -> list[float]:
    return [at.slider(key=f"binning_t{k}_f{f}").value for k in range(1, 5)]


def _vlines(fig: dict) -> list[float]:
    return [s["x0"] for s in fig["layout"]["shapes"] if s.get("type") == "line"]


# --- Binning --------------------------------------------------------------------------------------


def test_binning_move_refuse_save_and_switch(store_path: Path) -> None:
    default = Store(store_path).get_threshold_set()
    at = _page("binning")
    assert at.title[0].value == "Binning"
    assert at.selectbox(key="binning_active").value == default.name
    assert _sliders(at, 0) == pytest.approx(default.thresholds[0])
    hist = _chart(at, "binning_hist")
    assert _vlines(hist) == pytest.approx(default.thresholds[0])
    counts = _array(hist["data"][0]["y"])
    assert np.nansum(counts) == 2000 * 196  # every reference cell of filter 0 is in the histogram
    grid_before = at.code[0].value
    assert grid_before.startswith("f") and len(grid_before) == 197 and set(grid_before[1:]) <= set("zlmhv")

    # Another filter: its own thresholds and histogram.
    at.radio(key="binning_filter").set_value(3).run()
    assert _sliders(at, 3) == pytest.approx(default.thresholds[3])
    assert _vlines(_chart(at, "binning_hist")) == pytest.approx(default.thresholds[3])

    # Move t4 of filter 3 down to t3: everything above t3 becomes v on the current image and the reference.
    t = default.thresholds[3]
    occ_before = at.dataframe[0].value.loc["filter 3", "v"]
    at.slider(key="binning_t4_f3").set_value(t[2]).run()
    assert not at.exception and not at.error
    assert _sliders(at, 3) == pytest.approx([t[0], t[1], t[2], t[2]])
    assert _vlines(_chart(at, "binning_hist"))[3] == pytest.approx(t[2])
    assert at.dataframe[0].value.loc["filter 3", "v"] > occ_before
    assert "h" not in at.code[0].value  # the h bin is empty now
    assert any("Unsaved edits to filter 3" in w.value for w in at.warning)

    # A non-monotone setting is refused with a clear message and the slider goes back.
    bad = round(t[2] + 0.05, 3)
    at.slider(key="binning_t2_f3").set_value(bad).run()
    assert [e.value for e in at.error] == [
        f"Refused: filter 3: thresholds must be non-decreasing (t2={bad:g} > t3={t[2]:g}). "
        "Thresholds must satisfy 0 ≤ t1 ≤ t2 ≤ t3 ≤ t4."
    ]
    assert _sliders(at, 3) == pytest.approx([t[0], t[1], t[2], t[2]])
    at.run()
    assert not at.error  # the refusal is shown once

    # Save under a name: it becomes the active set, and a fresh Store reads it back.
    at.text_input(key="binning_save_name").input("sharp-v")
    next(b for b in at.button if b.label == "Save as named set").click().run()
    assert not at.exception
    assert any("Saved threshold set 'sharp-v'" in s.value for s in at.success)
    saved = Store(store_path).get_threshold_set("sharp-v")
    assert saved is not None and saved.thresholds[3] == pytest.approx([t[0], t[1], t[2], t[2]])
    assert saved.thresholds[0] == pytest.approx(default.thresholds[0])
    assert "from 'default' (filters 3)" in saved.notes
    assert at.session_state["active_threshold_set"] == "sharp-v"
    assert at.selectbox(key="binning_active").value == "sharp-v"
    assert Store(store_path).get_threshold_set().name == default.name  # not made default

    # Switch the active set back: the sliders show the stored default again.
    at.selectbox(key="binning_active").set_value(default.name).run()
    assert at.session_state["active_threshold_set"] == default.name
    assert _sliders(at, 3) == pytest.approx(default.thresholds[3])
    assert not at.warning

    # Make the saved set the default.
    at.selectbox(key="binning_active").set_value("sharp-v").run()
    next(b for b in at.button if b.label == "Make default").click().run()
    assert Store(store_path).get_threshold_set().name == "sharp-v"
    assert any("'sharp-v' is now the default" in s.value for s in at.success)


def test_binning_reset_discard_and_bad_name(store_path: Path) -> None:
    at = _page("binning")
    default = Store(store_path).get_threshold_set()
    at.radio(key="binning_filter").set_value(1).run()
    top = at.slider(key="binning_t4_f1").max
    at.slider(key="binning_t4_f1").set_value(top).run()
    assert _sliders(at, 1)[3] == pytest.approx(top)

    next(b for b in at.button if b.label == "Discard edits").click().run()
    assert _sliders(at, 1) == pytest.approx(default.thresholds[1])
    assert not at.warning

    next(b for b in at.button if b.label == "Reset filter 1 to calibrated").click().run()
    calibrated = _sliders(at, 1)
    assert calibrated == sorted(calibrated) and calibrated[0] > 0
    assert calibrated != pytest.approx(default.thresholds[1])  # 2,000-image reference vs the committed 4,000
    assert any("Unsaved edits to filter 1" in w.value for w in at.warning)

    at.text_input(key="binning_save_name").input("   ")
    next(b for b in at.button if b.label == "Save as named set").click().run()
    assert any("Not saved" in e.value and "non-empty name" in e.value for e in at.error)
    assert Store(store_path).list_threshold_sets()["name"].tolist() == ["conv2-default", "default"]  # nothing saved


def test_binning_save_while_the_store_is_busy_keeps_the_edits(store_path: Path) -> None:
    at = _page("binning")
    t = Store(store_path).get_threshold_set().thresholds[0]
    at.slider(key="binning_t4_f0").set_value(t[2]).run()
    at.text_input(key="binning_save_name").input("kept")
    with store_refused():
        next(b for b in at.button if b.label == "Save as named set").click().run()
        assert not at.exception, at.exception
        errors = "\n".join(e.value for e in at.error)
        assert "Your threshold set was NOT saved (your edits are kept" in errors
        assert f"The store is busy: process {HOLDER_PID} holds" in errors
    at.button(key="store_retry").click().run()
    assert not at.exception and not at.error
    assert _sliders(at, 0) == pytest.approx([t[0], t[1], t[2], t[2]])
    assert any("Unsaved edits to filter 0" in w.value for w in at.warning)
    assert at.text_input(key="binning_save_name").value == "kept"
    assert Store(store_path).get_threshold_set("kept") is None

    next(b for b in at.button if b.label == "Save as named set").click().run()
    assert Store(store_path).get_threshold_set("kept").thresholds[0] == pytest.approx([t[0], t[1], t[2], t[2]])


def _sliders_conv2(at: AppTest, f: int) -> list[float]:
    return [at.slider(key=f"binning_t{k}_f{f}_conv2").value for k in range(1, 5)]


def test_binning_conv2_tunes_and_saves_its_own_set(store_path: Path) -> None:
    import duckdb

    default = Store(store_path).get_threshold_set()
    with duckdb.connect(str(store_path)) as con:  # a store without conv2's shipped set (setup loads it)
        con.execute("DELETE FROM threshold_sets WHERE layer = 'conv2'")
    at = _page("binning")
    at.segmented_control(key="binning_layer").set_value("conv2").run()
    assert not at.exception, [e.message for e in at.exception]

    # No conv2 set stored yet: the draft is the calibrated heuristic on conv2's reference activations.
    assert any("No conv2 threshold set is saved yet" in i.value for i in at.info)
    assert len(at.radio(key="binning_filter_conv2").options) == 16
    calibrated = _sliders_conv2(at, 0)
    assert calibrated == sorted(calibrated) and calibrated[3] > 0
    hist = _chart(at, "binning_hist")
    assert np.nansum(_array(hist["data"][0]["y"])) == 2000 * 49  # every reference cell of conv2's filter 0
    assert _vlines(hist) == pytest.approx(calibrated)
    grid = at.code[0].value
    assert len(grid) == 50 and grid.startswith("f") and set(grid[1:]) <= set("zlmhv")
    occupancy = at.dataframe[0].value
    assert list(occupancy.index) == [f"filter {i}" for i in range(16)]

    # Filter 12's t4 down to its t3: its v share on the reference set grows.
    at.radio(key="binning_filter_conv2").set_value(12).run()
    t = _sliders_conv2(at, 12)
    v_before = at.dataframe[0].value.loc["filter 12", "v"]
    at.slider(key="binning_t4_f12_conv2").set_value(t[2]).run()
    assert not at.exception and not at.error
    assert _sliders_conv2(at, 12) == pytest.approx([t[0], t[1], t[2], t[2]])
    assert at.dataframe[0].value.loc["filter 12", "v"] > v_before
    assert any("Unsaved edits to filter 12" in w.value for w in at.warning)

    # A conv1 set's name cannot be reused for a conv2 set.
    at.text_input(key="binning_save_name").input(default.name)
    next(b for b in at.button if b.label == "Save as named set").click().run()
    assert any(f"Not saved: the name '{default.name}' is taken by a conv1 threshold set" in e.value for e in at.error)

    at.text_input(key="binning_save_name").input("deep")
    next(b for b in at.button if b.label == "Save as named set").click().run()
    assert not at.exception
    saved = Store(store_path).get_threshold_set("deep")
    assert saved is not None and saved.layer == "conv2" and len(saved.thresholds) == 16
    assert saved.thresholds[12] == pytest.approx([t[0], t[1], t[2], t[2]])
    assert "from the calibrated heuristic (filters 12)" in saved.notes
    assert at.session_state["active_threshold_set_conv2"] == "deep"
    assert at.selectbox(key="binning_active_conv2").value == "deep"
    assert Store(store_path).get_threshold_set().name == default.name  # conv1's default untouched
    assert Store(store_path).get_threshold_set(layer="conv2").name == "deep"  # a layer's first set: its default
    assert any("Saved threshold set 'deep'; it is now the active set and the default." in x.value for x in at.success)

    # Back on conv1: its own set, sliders and filter as before.
    at.segmented_control(key="binning_layer").set_value("conv1").run()
    assert not at.exception
    assert at.selectbox(key="binning_active").value == default.name
    assert _sliders(at, 0) == pytest.approx(default.thresholds[0])
    assert len(at.radio(key="binning_filter").options) == 8 and len(at.code[0].value) == 197


# --- Filters --------------------------------------------------------------------------------------


def test_filters_page_weights_dreams_and_attribution(store_path: Path) -> None:
    at = _page("filters")
    assert at.title[0].value == "Filters"

    weights = _chart(at, "filters_weights")
    assert len(weights["data"]) == 8
    w0 = _array(weights["data"][0]["z"])
    assert w0.size == 81 and weights["data"][0]["zmid"] == 0

    # One measured sentence per filter, each an expander with its numbers (shape bars, tuning curve, patches).
    sentences = [e.label for e in at.expander]
    assert len(sentences) == 8
    assert all(s.startswith(f"Filter {k} ") and s.endswith(".") for k, s in enumerate(sentences))
    for k in range(8):
        bars, curve = _chart(at, f"filters_profile_{k}")["data"][:2]
        assert list(bars["x"]) == ["diagonal", "anti-diagonal", "vertical", "horizontal", "checkerboard",
                                   "ellipse", "corner"]
        assert _array(bars["y"]).min() >= 0 and len(_array(curve["x"])) == 13  # 12 angles, closed at 180°
    patches = [[i.caption for i in e.proto.imgs] for e in at.get("image")][:8]  # the 9th: the current image
    assert all(len(c) == 6 and all(x.startswith("#") for x in c) for c in patches)

    dreams = _chart(at, "filters_dreams")
    d0 = _array(dreams["data"][0]["z"])
    assert len(dreams["data"]) == 8 and d0.size == 784 and 0 <= d0.min() and d0.max() <= 1
    at.radio(key="filters_objective").set_value("centre").run()
    assert not at.exception
    assert not np.array_equal(_array(_chart(at, "filters_dreams")["data"][0]["z"]), d0)

    # Attribution at a chosen filter and position.
    at.selectbox(key="filters_filter").set_value(2).run()
    at.number_input(key="filters_row").set_value(6).run()
    at.number_input(key="filters_col").set_value(8).run()
    assert not at.exception
    assert at.metric[0].label == "filter 2 at (row 6, column 8)"
    overlay = _chart(at, "filters_attribution")
    attr = _array(overlay["data"][1]["z"]).reshape(28, 28)
    rect = overlay["layout"]["shapes"][0]
    assert (rect["x0"], rect["x1"], rect["y0"], rect["y1"]) == (11.5, 21.5, 7.5, 17.5)  # rows 8..17, cols 12..21
    outside = np.ones((28, 28), bool)
    outside[8:18, 12:22] = False
    assert (attr[outside] == 0).all()
    picker = _chart(at, "filters_pick")
    marker = picker["layout"]["shapes"][0]
    assert (marker["x0"] + 0.5, marker["y0"] + 0.5) == (8, 6)

    at.radio(key="filters_method").set_value("saliency").run()
    assert not at.exception
    assert _array(_chart(at, "filters_attribution")["data"][1]["z"]).min() >= 0  # |gradient|
