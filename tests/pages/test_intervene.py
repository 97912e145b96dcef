"""The Intervene page through AppTest: the real target CNN, a fake interpreter that reads the bins."""

from __future__ import annotations

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from pages.common import INTERPRETER_OVERRIDE_KEY
from tests.pages.test_chat_labeling import app_paths  # noqa: F401 - the fixture
from tests.test_interventions import BinReader

APP = Path(__file__).resolve().parents[2] / "app.py"


def page(state: dict) -> AppTest:
    """Through app.py: the page links to Draw & upload, which only st.navigation knows."""
    at = AppTest.from_file(str(APP), default_timeout=120)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    at.switch_page("pages/intervene.py")
    at.run()
    assert not at.exception, at.exception
    return at


def test_ablating_a_filter_shows_before_and_after_and_the_effect_map(app_paths: Path) -> None:  # noqa: F811
    at = page({INTERPRETER_OVERRIDE_KEY: BinReader()})
    assert "Choose an intervention" in at.info[0].value
    at.selectbox(key="iv_op_conv1_0").set_value("ablate").run()
    assert not at.exception, at.exception
    shown = "\n".join(m.value for m in at.markdown)
    assert "**Interpreter:** Image with 2 shapes: 1 vertical, 1 horizontal" in shown  # MNIST #0 fires both
    assert "**Interpreter:** Image with 1 shape: 1 horizontal" in shown
    assert "**vertical** 1 → 0" in at.warning[0].value
    assert len(at.get("plotly_chart")) == 2  # the maps before and after

    at.number_input(key="iv_fx_n").set_value(6)
    at.number_input(key="iv_fx_mnist").set_value(20)
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert (app_paths.runs_dir / at.session_state["iv_fx_pick"] / "effects.json").exists()
    summary = "\n".join(m.value for m in at.markdown)
    assert "Ablate filter 0" in summary and "digit accuracy" in summary
    assert len(at.get("plotly_chart")) == 3  # + the heatmap


def test_a_conv2_interpreter_gets_16_filters_and_a_conv2_effect_map(app_paths: Path, conv2_thresholds) -> None:  # noqa: F811
    reader = BinReader()
    reader.layer, reader.thresholds, reader.name = "conv2", conv2_thresholds, "conv2-bin-reader"
    at = page({INTERPRETER_OVERRIDE_KEY: {"injected:c2": reader}})
    assert any("Interventions on **conv2** [16, 7, 7]" in c.value for c in at.caption)  # the injected one is first
    keys = [w.key for w in at.selectbox if w.key and w.key.startswith("iv_op_")]
    assert keys == [f"iv_op_conv2_{f}" for f in range(16)]  # conv2's 16 filters, in rows of 8
    at.selectbox(key="iv_op_conv2_0").set_value("ablate").run()
    assert not at.exception, at.exception
    assert any("of 784 cells change bin" in c.value for c in at.caption)  # 16 × 7 × 7

    at.number_input(key="iv_fx_n").set_value(4)
    at.number_input(key="iv_fx_mnist").set_value(10)
    at.button[0].click().run()
    assert not at.exception, at.exception
    fx = json.loads((app_paths.runs_dir / at.session_state["iv_fx_pick"] / "effects.json").read_text())
    assert fx["layer"] == "conv2" and len(fx["rows"]) == 16
    assert any("conv2 filters" in c.value for c in at.caption)
