"""The exploration pages (Draw & upload, Activations, Shapes) driven through Streamlit's AppTest.

The canvas cannot be set through AppTest: image → input is tested in tests/test_pipeline.py and
the canvas itself in tests/test_browser.py. Uploads go through AppTest's file_uploader.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from interp.bootstrap import ensure_store
from interp.data.shapes import generate_shapes
from interp.encoding.encoders import encode_activations
from interp.encoding.thresholds import ThresholdSet
from interp.settings import Paths

APP = Path(__file__).resolve().parents[2] / "app.py"
TIMEOUT = 120  # first runs load MNIST, the target and the tokenizer


@pytest.fixture(scope="module")
def app_paths(tmp_path_factory: pytest.TempPathFactory):
    """A fresh store (default thresholds only) in a temp folder; data and models stay the project's."""
    from pages.common import paths

    db = tmp_path_factory.mktemp("store") / "interp.duckdb"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("N2W_DB", str(db))
        p = Paths.from_env()
        list(ensure_store(p))
        paths.clear()  # the app caches Paths: make it read this environment
        yield p
        paths.clear()


@pytest.fixture(scope="module")
def default_thresholds(app_paths: Paths) -> ThresholdSet:
    return ThresholdSet.load(app_paths.assets_dir / "thresholds" / "default.json")


def open_page(name: str, state: dict | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    for key, value in (state or {}).items():
        at.session_state[key] = value
    at.run()
    at.switch_page(f"pages/{name}.py")
    at.run()
    assert not at.exception, at.exception
    return at


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG")
    return buf.getvalue()


def dark_digit_on_white() -> bytes:
    """A black '1' stroke on a white 120×90 page, as a photo of paper would be."""
    page = np.full((120, 90), 255, np.uint8)
    page[15:105, 40:52] = 0
    return png_bytes(page)


def figure(at: AppTest, key: str) -> dict:
    charts = [c for c in at.get("plotly_chart") if key in c.proto.id]
    assert len(charts) == 1, [c.proto.id for c in at.get("plotly_chart")]
    return json.loads(charts[0].proto.spec)


def image_captions(at: AppTest) -> list[str]:
    return [c for el in at.image for c in el.captions]


def texts(at: AppTest) -> str:
    return "\n".join(m.value for m in [*at.markdown, *at.caption, *at.info, *at.error, *at.success, *at.warning])


# --- Draw & upload ---------------------------------------------------------------------------------


def test_input_page_starts_on_an_empty_canvas(app_paths):
    at = open_page("input")
    assert at.title[0].value == "Draw & upload"
    assert at.segmented_control(key="input_source").value == "Draw"
    assert any("canvas is empty" in i.value for i in at.info)
    assert not at.button  # nothing to use yet


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("notes.png", b"this is not an image", "not an image that can be read"),
        ("cut.png", png_bytes(np.random.default_rng(0).integers(0, 255, (200, 200), dtype=np.uint8))[:300],
         "damaged or truncated"),
        ("blank.png", png_bytes(np.full((64, 64), 255, np.uint8)), "The image is empty"),
        ("empty.gif", b"", "The file is empty"),
    ],
)
def test_bad_uploads_show_a_message_not_a_traceback(app_paths, name, data, message):
    at = open_page("input")
    at.segmented_control(key="input_source").set_value("Upload").run()
    at.file_uploader(key="upload").set_value((name, data, "image/png")).run()
    assert not at.exception
    assert len(at.error) == 1
    assert message in at.error[0].value and name in at.error[0].value
    assert "Prediction" not in texts(at)


def test_upload_shows_input_prediction_and_becomes_current_image(app_paths):
    at = open_page("input")
    at.segmented_control(key="input_source").set_value("Upload").run()
    at.file_uploader(key="upload").set_value(("one.png", dark_digit_on_white(), "image/png")).run()
    assert not at.exception and not at.error
    assert "Prediction: **1**" in texts(at)
    assert len(at.get("plotly_chart")) == 1
    assert at.expander[0].label == "Encoding c(a): paper, 1,576 characters"
    assert at.code[0].value.count("f") >= 8 and len(at.code[0].value) == 1576

    at.button(key="use_image").click().run()
    assert at.session_state["current_image_label"] == "upload one.png"
    image = at.session_state["current_image"]
    assert image.shape == (28, 28) and image.dtype == np.uint8 and image.max() > 200
    assert any("This is the current image (upload one.png)" in s.value for s in at.success)


def test_mnist_picker_by_index_and_by_digit(app_paths):
    from pages.common import mnist

    labels = mnist().test.labels
    at = open_page("input")
    at.segmented_control(key="input_source").set_value("MNIST").run()
    at.number_input(key="mnist_index").set_value(5).run()
    at.button(key="use_image").click().run()
    assert at.session_state["current_image_label"] == f"MNIST test #5 (label {labels[5]})"

    at.selectbox(key="mnist_digit").set_value(3).run()
    at.button(key="mnist_next").click().run()
    want = int(np.flatnonzero((labels == 3) & (np.arange(len(labels)) > 5))[0])
    assert at.number_input(key="mnist_index").value == want
    at.button(key="mnist_next").click().run()
    assert at.number_input(key="mnist_index").value == int(np.flatnonzero((labels == 3) & (np.arange(len(labels)) > want))[0])
    assert not at.exception


def test_generated_shapes_source_links_to_the_shapes_page(app_paths):
    at = open_page("input")
    at.segmented_control(key="input_source").set_value("Shapes").run()
    assert [link.proto.page for link in at.get("page_link")][0].endswith("shapes")


# --- Activations -----------------------------------------------------------------------------------


def test_activations_page_shows_maps_and_paper_encoding(app_paths, target_model, default_thresholds):
    from pages.common import mnist

    at = open_page("activations")
    assert at.title[0].value == "Activations"
    test = mnist().test
    want = encode_activations(_acts(target_model, test.images[0]), default_thresholds, "paper")[0]
    assert at.code[0].value == want
    assert len(want) == 1576 and want.count("f") >= 8
    assert f"label {int(test.labels[0])}" in at.session_state["current_image_label"]

    maps = figure(at, "act_maps")
    assert [t["type"] for t in maps["data"]] == ["heatmap"] * 8
    assert "bin %{customdata}" in maps["data"][0]["hovertemplate"]
    letters = figure(at, "act_letters")
    assert len(letters["data"]) == 8 and all(t["texttemplate"] == "%{text}" for t in letters["data"])
    assert figure(at, "act_probs")["data"][0]["type"] == "bar"

    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Characters"] == "1,576"
    assert metrics["SmolLM2 tokens"] == "tokenizer not fetched" or int(metrics["SmolLM2 tokens"].replace(",", "")) > 500
    assert len(at.get("download_button")) == 2


def test_activations_page_follows_encoder_and_scale_controls(app_paths, target_model, default_thresholds):
    image = np.zeros((28, 28), np.uint8)
    image[4:24, 13:15] = 255
    at = open_page("activations", {"current_image": image, "current_image_label": "a bar"})
    assert not figure(at, "act_maps")["data"][0]["showscale"]
    at.toggle(key="act_shared").set_value(True).run()
    data = figure(at, "act_maps")["data"]
    assert data[0]["showscale"] and len({t["zmax"] for t in data}) == 1

    at.selectbox(key="act_encoder").set_value("compact").run()
    assert not at.exception
    want = encode_activations(_acts(target_model, image), default_thresholds, "compact")[0]
    assert at.code[0].value == want
    assert {m.label: m.value for m in at.metric}["Characters"] == f"{len(want):,}"
    assert image_captions(at)[0] == "a bar"


def test_blank_current_image_encodes_as_all_z(app_paths):
    at = open_page("activations", {"current_image": np.zeros((28, 28), np.uint8), "current_image_label": "blank"})
    assert at.code[0].value == ("f" + "z" * 196) * 8


def test_activations_page_shows_conv2_maps_binned_with_a_conv2_set(app_paths, target_model):
    from interp.encoding.encoders import get_encoder
    from interp.pipeline import analyze_image
    from interp.store.db import Store

    image = np.zeros((28, 28), np.uint8)
    image[4:24, 13:15] = 255
    at = open_page("activations", {"current_image": image, "current_image_label": "a bar"})
    assert at.segmented_control(key="act_layer").value == "conv1"
    at.segmented_control(key="act_layer").set_value("conv2").run()
    assert not at.exception, at.exception

    # Setup loaded conv2's shipped default set: it bins the maps.
    assert any("conv2-default" in c.value for c in at.caption)
    maps, letters = figure(at, "act_maps"), figure(at, "act_letters")
    assert [t["type"] for t in maps["data"]] == ["heatmap"] * 16 and len(letters["data"]) == 16
    assert [t["name"] for t in letters["data"]] == [f"f{f}" for f in range(16)]
    text = at.code[0].value
    assert len(text) == 800 and {m.label: m.value for m in at.metric}["Characters"] == "800"
    assert get_encoder("paper").decode(text).shape == (16, 7, 7)
    assert any("conv2 activation maps" == h.value for h in at.subheader)

    # A stored conv2 default set is what the page bins with, exactly.
    table = np.tile([0.0, 0.5, 1.0, 2.0], (16, 1))
    Store(app_paths.db_path).save_threshold_set("deep-test", table, make_default=True, layer="conv2")
    at.selectbox(key="act_encoder").set_value("compact").run()
    assert not at.exception
    want = analyze_image(target_model, image, ThresholdSet("deep-test", table, layer="conv2"), "compact", "conv2")
    assert at.code[0].value == want.encoding and want.bins.shape == (16, 7, 7)
    assert any("deep-test" in c.value for c in at.caption)

    # Back to conv1: the default conv1 set and 8 maps, as before.
    at.segmented_control(key="act_layer").set_value("conv1").run()
    assert len(figure(at, "act_maps")["data"]) == 8


# --- Shapes ----------------------------------------------------------------------------------------


def test_shapes_page_random_sample_and_gallery(app_paths):
    at = open_page("shapes")
    assert at.title[0].value == "Shapes"
    assert f"> {generate_shapes(1, 0).descriptions[0]}" in [m.value for m in at.markdown]
    gallery = generate_shapes(12, 1).descriptions
    assert image_captions(at)[-12:] == [d.removeprefix("Image with ") for d in gallery]
    assert len(figure(at, "shapes_letters")["data"]) == 8

    at.button(key="shapes_next").click().run()
    assert at.number_input(key="shapes_seed").value == 1
    assert f"> {generate_shapes(1, 1).descriptions[0]}" in [m.value for m in at.markdown]

    at.pills(key="shapes_types").set_value(["vertical"]).run()
    assert f"> {generate_shapes(1, 1, types=['vertical']).descriptions[0]}" in [m.value for m in at.markdown]
    at.pills(key="shapes_types").set_value([]).run()
    assert "Pick at least one shape type." in [w.value for w in at.warning]


def test_shapes_page_chosen_counts_and_use_as_current(app_paths):
    at = open_page("shapes")
    at.segmented_control(key="shapes_mode").set_value("Choose the counts").run()
    for name in ("vertical", "ellipse"):
        at.number_input(key=f"n_{name}").set_value(0)
    at.number_input(key="n_corner").set_value(2).run()
    assert "> Image with 2 shapes: 2 corners" in [m.value for m in at.markdown]
    at.selectbox(key="shapes_encoder").set_value("rle").run()
    assert "z" in at.code[0].value and any(ch.isdigit() for ch in at.code[0].value)

    at.button(key="shapes_use").click().run()
    assert at.session_state["current_image_label"] == "shapes seed 0: Image with 2 shapes: 2 corners"
    at.switch_page("pages/activations.py").run()
    assert image_captions(at)[0] == "shapes seed 0: Image with 2 shapes: 2 corners"


def test_shapes_that_do_not_fit_show_an_error(app_paths):
    at = open_page("shapes")
    at.segmented_control(key="shapes_mode").set_value("Choose the counts").run()
    for name in ("ellipse", "checkerboard", "corner"):
        at.number_input(key=f"n_{name}").set_value(4)
    at.run()
    assert not at.exception
    assert "could not fit" in at.error[0].value


def _acts(model, image):
    """What the page's analyze_image computes (single-threaded: bit-identical to the page's numbers)."""
    from interp.pipeline import analyze_image

    return analyze_image(model, image, np.zeros((8, 4))).activations


# --- Draw & upload: files that used to break the page ------------------------------------------------


def upload_limit_mb() -> int:
    import tomllib

    return tomllib.loads((APP.parent / ".streamlit" / "config.toml").read_text())["server"]["maxUploadSize"]


def test_a_16_bit_grey_png_shows_its_prepared_8_bit_image(app_paths):
    page = np.full((120, 90), 60000, np.uint16)  # dark ink on light 16-bit paper: mode I;16
    page[15:105, 40:52] = 1000
    at = open_page("input")
    at.segmented_control(key="input_source").set_value("Upload").run()
    at.file_uploader(key="upload").set_value(("deep.png", png_bytes(page), "image/png")).run()
    assert not at.exception and not at.error
    assert "Prediction: **1**" in texts(at)
    assert "Grey, white on black" in image_captions(at)


def test_the_upload_limit_is_said_on_the_page_and_an_oversized_file_is_refused(app_paths):
    limit = upload_limit_mb()
    at = open_page("input")
    at.segmented_control(key="input_source").set_value("Upload").run()
    assert any(f"at most {limit} MB" in i.value for i in at.info)  # not only in the uploader's tooltip
    big = b"\x89PNG\r\n\x1a\n" + bytes(limit * 2**20 + 1)
    at.file_uploader(key="upload").set_value(("huge.png", big, "image/png")).run()
    assert not at.exception
    assert len(at.error) == 1 and "huge.png" in at.error[0].value
    assert f"the limit is {limit:.1f} MB" in at.error[0].value


def test_a_new_file_replaces_the_message_of_the_last_one(app_paths):
    at = open_page("input")
    at.segmented_control(key="input_source").set_value("Upload").run()
    at.file_uploader(key="upload").set_value(("notes.png", b"not an image", "image/png")).run()
    assert len(at.error) == 1 and "notes.png" in at.error[0].value
    at.file_uploader(key="upload").set_value(("one.png", dark_digit_on_white(), "image/png")).run()
    assert not at.exception and not at.error
    assert "notes.png" not in texts(at) and "Prediction: **1**" in texts(at)
    at.file_uploader(key="upload").set_value(("blank.png", png_bytes(np.full((64, 64), 255, np.uint8)),
                                              "image/png")).run()
    assert len(at.error) == 1 and "blank.png" in at.error[0].value and "Prediction" not in texts(at)
    at.file_uploader(key="upload").set_value(None).run()
    assert not at.error and any("Upload a PNG" in i.value for i in at.info)


def test_the_current_image_survives_a_reload_through_the_url(app_paths):
    from interp.data.images import image_to_token

    at = open_page("input")
    at.segmented_control(key="input_source").set_value("Upload").run()
    at.file_uploader(key="upload").set_value(("one.png", dark_digit_on_white(), "image/png")).run()
    at.button(key="use_image").click().run()
    image = at.session_state["current_image"]
    assert at.query_params["image"] == image_to_token(image) and at.query_params["label"] == "upload one.png"

    # A reload is a new session that only has the URL.
    reloaded = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    reloaded.query_params.update(at.query_params)
    reloaded.run()
    reloaded.switch_page("pages/activations.py").run()
    assert not reloaded.exception
    assert np.array_equal(reloaded.session_state["current_image"], image)
    assert reloaded.session_state["current_image_label"] == "upload one.png"


def test_a_mangled_image_link_falls_back_with_a_message(app_paths):
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params["image"] = "not-an-image"
    at.run()
    assert not at.exception
    assert any("cannot be read" in w.value for w in at.warning)
    at.switch_page("pages/activations.py").run()
    assert at.session_state["current_image_label"].startswith("MNIST test #0")
