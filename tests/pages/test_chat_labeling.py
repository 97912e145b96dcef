"""The Chat and Labeling pages driven through Streamlit's AppTest, with fake interpreters (no LLM is loaded).

Interpreters are injected through the session key ``interpreter_override`` that `pages.common.interpreter`
reads; every test checks what a fresh `Store` on the same file reads back.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from interp.bootstrap import ensure_store
from interp.interpreters.prompt import PRESET_QUESTIONS, build_prompt
from interp.language import SHAPES
from interp.settings import Paths
from interp.store.db import Store
from tests.fakes import FakeInterpreter
from tests.pages.store_busy import HOLDER_PID, store_held, store_refused

PAGES = Path(__file__).resolve().parents[2] / "pages"
TIMEOUT = 60  # the first run imports torch and loads MNIST and the target
BASE = "base:smollm2-135m"


@pytest.fixture
def app_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Paths:
    """A fresh store and an empty runs folder; MNIST, the target and assets stay the project's."""
    from pages.common import loaded_interpreter, paths

    monkeypatch.setenv("N2W_DB", str(tmp_path / "interp.duckdb"))
    monkeypatch.setenv("N2W_RUNS_DIR", str(tmp_path / "runs"))
    p = Paths.from_env()
    list(ensure_store(p))
    paths.clear()  # the app caches Paths: make it read this environment
    # Never load a real model here: a page that gets past the override fails loudly instead.
    monkeypatch.setattr("pages.common.loaded_interpreter", _no_model)
    yield p
    paths.clear()
    loaded_interpreter.clear()


def _no_model(spec: str):
    from interp.interpreters.models import ModelUnavailable

    raise ModelUnavailable(f"{spec} is not fetched (test)")


def fake_run(paths: Paths, name: str = "tiny") -> str:
    """A run folder with an adapter's config files only: listed like a trained run, never loaded."""
    adapter = paths.runs_dir / name / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "run_config.json").write_text(json.dumps(
        {"finetune": {"preset": "smollm2-135m"}, "dataset_manifest": {"encoder": "paper", "threshold_set": None}}))
    return str(adapter)


def page(name: str, state: dict | None = None) -> AppTest:
    at = AppTest.from_file(str(PAGES / f"{name}.py"), default_timeout=TIMEOUT)
    for key, value in (state or {}).items():
        at.session_state[key] = value
    at.run()
    assert not at.exception, at.exception
    return at


def texts(at: AppTest) -> str:
    return "\n".join(m.value for m in [*at.markdown, *at.caption, *at.info, *at.error, *at.success, *at.warning])


def prompt_shown(at: AppTest) -> str:
    [box] = [e for e in at.expander if e.label.startswith("Prompt")]
    return box.code[0].value


def bubbles(at: AppTest) -> list[tuple[str, str]]:
    return [(m.name, "\n".join(x.value for x in m.markdown)) for m in at.chat_message]


# --- Chat ------------------------------------------------------------------------------------------------

class Recorder:
    """A fake interpreter's answer function that keeps every prompt it was given."""

    def __init__(self, *answers: str) -> None:
        self.answers, self.prompts = list(answers), []

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        return self.answers[min(len(self.prompts), len(self.answers)) - 1]


def test_chat_turns_with_a_fake_interpreter_are_shown_and_stored(app_paths: Paths) -> None:
    spec = fake_run(app_paths)
    tuned = Recorder("Image with 2 shapes: 1 corner, 1 crossing", "There are 2 curves.")
    at = page("chat", {"interpreter_override": {spec: FakeInterpreter(tuned, name="tuned")}})
    at.radio(key="chat_source").set_value("MNIST test image").run()
    at.number_input(key="chat_mnist_index").set_value(3)
    at.selectbox(key="chat_interpreter").set_value(spec).run()
    assert not at.error
    assert "### Input: f" in prompt_shown(at) and prompt_shown(at).endswith("### Output: ")

    at.button(key="chat_preset_describe").click().run()
    assert not at.exception, at.exception
    assert bubbles(at) == [("user", PRESET_QUESTIONS["describe"]),
                           ("assistant", "Image with 2 shapes: 1 corner, 1 crossing")]

    at.chat_input(key="chat_input").set_value("How many curves?").run()
    assert not at.exception, at.exception
    assert bubbles(at)[2:] == [("user", "How many curves?"), ("assistant", "There are 2 curves.")]
    # Each answer says where it comes from and, checked against the shipped probe, whether it holds.
    notes = ["\n".join(c.value for c in m.caption) for m in at.chat_message if m.name == "assistant"]
    assert all("tiny (run" in n and "on MNIST test #3" in n for n in notes), notes
    assert "the answer reads 1 corner, 1 crossing; the activation probe reads" in notes[0]
    assert "the answer gives **2**; the activation probe reads" in notes[1]

    # What the interpreter read: the training prompt, then the first turn, then the question.
    store = Store(app_paths.db_path)  # a fresh connection, as another process would open it
    [conv] = store.list_conversations().itertuples()
    assert conv.model == spec and conv.threshold_set == "default" and conv.image["index"] == 3
    assert tuned.prompts[0] == build_prompt(conv.encoding, "paper")
    assert tuned.prompts[1] == (tuned.prompts[0] + "Image with 2 shapes: 1 corner, 1 crossing\n"
                                "### Question: How many curves?\n### Answer: ")
    messages = store.get_messages(conv.id)
    assert [(m.role, m.content) for m in messages[1:]] == [
        ("user", PRESET_QUESTIONS["describe"]), ("assistant", "Image with 2 shapes: 1 corner, 1 crossing"),
        ("user", "How many curves?"), ("assistant", "There are 2 curves.")]
    assert prompt_shown(at) == tuned.prompts[1]  # the prompt view shows the last prompt


def test_a_conv2_interpreter_chats_and_suggests_about_the_images_conv2_maps(app_paths: Paths,
                                                                             conv2_thresholds) -> None:
    seen: list[str] = []
    fake = FakeInterpreter(lambda text: seen.append(text) or "Image with 1 shape: 1 corner", name="deep",
                           thresholds=conv2_thresholds, layer="conv2")
    at = page("chat", {"interpreter_override": fake})
    at.radio(key="chat_source").set_value("MNIST test image").run()
    at.button(key="chat_preset_describe").click().run()
    assert not at.exception, at.exception
    [conv] = Store(app_paths.db_path).list_conversations().itertuples()
    assert conv.threshold_set == "c2" and len(conv.encoding) == 800  # conv2's paper encoding: 16 × (f + 49)
    assert seen[0] == build_prompt(conv.encoding, "paper")
    # The conv1 probe still checks the answer: it reads the same image through its own layer.
    notes = ["\n".join(c.value for c in m.caption) for m in at.chat_message if m.name == "assistant"]
    assert "the activation probe reads" in notes[0]

    at = page("labeling", {"interpreter_override": fake, "lab_annotator": "bob"})
    at.button(key="lab_suggest").click().run()
    assert not at.exception, at.exception
    assert len(seen[-1]) == 800


def test_ask_both_puts_the_base_model_beside_the_fine_tuned_one(app_paths: Paths) -> None:
    spec = fake_run(app_paths)
    override = {spec: FakeInterpreter(Recorder("Image with 1 shape: 1 ellipse")),
                BASE: FakeInterpreter(Recorder("zzzz zzzz"))}
    at = page("chat", {"interpreter_override": override})
    at.selectbox(key="chat_interpreter").set_value(spec).run()
    at.toggle(key="chat_both").set_value(True).run()
    at.button(key="chat_preset_curves").click().run()
    assert not at.exception, at.exception
    curves = PRESET_QUESTIONS["curves"]
    assert bubbles(at) == [("user", curves), ("assistant", "Image with 1 shape: 1 ellipse"),
                           ("user", curves), ("assistant", "zzzz zzzz")]
    convs = Store(app_paths.db_path).list_conversations()
    assert sorted(convs["model"]) == sorted([spec, BASE])
    assert convs["encoding"].nunique() == 1  # the same prompt to both: the paper's before/after


def test_reopen_and_export_a_saved_conversation(app_paths: Paths) -> None:
    at = page("chat", {"interpreter_override": FakeInterpreter(lambda p: "One answer.", name="fake")})
    at.button(key="chat_preset_origin").click().run()
    at.radio(key="chat_source").set_value("Generated shapes").run()  # another image: a new, empty thread
    assert bubbles(at) == []
    at.button(key="chat_reopen").click().run()
    assert not at.exception, at.exception
    assert at.radio(key="chat_source").value == "Saved conversation"
    assert bubbles(at) == [("user", PRESET_QUESTIONS["origin"]), ("assistant", "One answer.")]
    assert {b.proto.label for b in at.get("download_button")} >= {"Export conversation (.json)", "JSON", "Markdown"}


def test_chat_streams_a_real_transformers_model(app_paths: Paths, tmp_path: Path) -> None:
    """A tiny random Mistral behind HFInterpreter: the threaded streamer through st.write_stream into the store."""
    from transformers import AutoModelForCausalLM

    from interp.interpreters.text import HFInterpreter
    from tests.conftest import tiny_model, tiny_tokenizer

    tok = tiny_tokenizer(tmp_path / "m")
    tiny_model("mistral", tmp_path / "m", len(tok))
    hf = HFInterpreter(AutoModelForCausalLM.from_pretrained(tmp_path / "m").eval(), tok, name="tiny")
    at = page("chat", {"interpreter_override": hf})
    at.slider(key="chat_max_tokens").set_value(16)
    at.button(key="chat_preset_curves").click().run()
    assert not at.exception, at.exception
    [conv] = Store(app_paths.db_path).list_conversations().itertuples()
    messages = Store(app_paths.db_path).get_messages(conv.id)
    assert [m.role for m in messages] == ["system", "user", "assistant"]
    assert messages[2].content and "###" not in messages[2].content
    assert bubbles(at)[1] == ("assistant", messages[2].content)


def test_chat_streams_a_tiny_activation_reader(app_paths: Paths, tmp_path: Path) -> None:
    """A tiny random reader (connector + Mistral): the chat prompt is split, the bins read as soft tokens."""
    from tests.interpreters.test_reader import _tiny_reader

    reader = _tiny_reader(tmp_path)
    at = page("chat", {"interpreter_override": reader})
    at.slider(key="chat_max_tokens").set_value(16)
    at.button(key="chat_preset_describe").click().run()
    at.chat_input(key="chat_input").set_value("How many corners are there?").run()
    assert not at.exception, at.exception
    [conv] = Store(app_paths.db_path).list_conversations().itertuples()
    messages = Store(app_paths.db_path).get_messages(conv.id)
    assert [m.role for m in messages] == ["system", "user", "assistant", "user", "assistant"]
    assert all("\n" not in m.content and "###" not in m.content for m in messages[2::2])
    # The same text the reader gives outside the app for the same question after the same first turn.
    enc = conv.encoding
    first = reader.describe([enc], max_new_tokens=16)[0]
    assert messages[2].content == first


def test_a_reader_asked_a_count_question_first_describes_the_image(app_paths: Paths, tmp_path: Path) -> None:
    """The describe turn is sent and stored before the question, and the answer has it in context."""
    from tests.interpreters.test_reader import _tiny_reader

    reader = _tiny_reader(tmp_path)
    at = page("chat", {"interpreter_override": reader})
    at.slider(key="chat_max_tokens").set_value(16)
    at.chat_input(key="chat_input").set_value("How many curves are in the image?").run()
    assert not at.exception, at.exception
    [conv] = Store(app_paths.db_path).list_conversations().itertuples()
    messages = Store(app_paths.db_path).get_messages(conv.id)
    assert [(m.role, m.content) for m in messages[1::2]] == [
        ("user", PRESET_QUESTIONS["describe"]), ("user", "How many curves are in the image?")]
    told = reader.describe([conv.encoding], max_new_tokens=16)[0]
    assert messages[2].content == told
    assert messages[4].content == reader.answer_questions([conv.encoding], ["How many curves are in the image?"],
                                                          max_new_tokens=16, descriptions=[told])[0]
    at.chat_input(key="chat_input").set_value("How many corners are there?").run()  # described already
    assert len(Store(app_paths.db_path).get_messages(conv.id)) == 7


def test_chat_without_any_model_says_what_to_run(app_paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("interp.interpreters.chat.is_fetched", lambda *a, **k: False)
    at = page("chat")
    assert "python -m interp models fetch smollm2-135m" in texts(at)
    assert at.button(key="chat_preset_describe").disabled


def test_chat_when_loading_fails_shows_the_fix(app_paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("interp.interpreters.chat.is_fetched", lambda *a, **k: True)  # listed, but loading fails
    at = page("chat")
    at.selectbox(key="chat_interpreter").set_value(BASE).run()
    at.button(key="chat_preset_describe").click().run()
    assert not at.exception, at.exception
    assert any("python -m interp models fetch smollm2-135m" in e.value for e in at.error)
    assert Store(app_paths.db_path).list_conversations().empty


# --- Labeling --------------------------------------------------------------------------------------------

def set_counts(at: AppTest, **counts: int) -> None:
    for shape, n in counts.items():
        at.number_input(key=f"lab_n_{shape.replace('_', '-')}").set_value(n)
    at.run()


def test_labeling_writes_rows_a_fresh_store_reads_back(app_paths: Paths) -> None:
    at = page("labeling")
    assert any("Enter your name" in i.value for i in at.info)
    at.text_input(key="lab_annotator").set_value("alice").run()
    assert "0 of 100 annotated by alice" in at.get("progress")[0].proto.text

    set_counts(at, corner=2, crossing=1)
    assert "Description: **Image with 3 shapes: 2 corners, 1 crossing**" in texts(at)
    at.button(key="lab_save").click().run()                       # image 0 saved → image 1
    set_counts(at, vertical=1)
    at.button(key="lab_save").click().run()                       # image 1 saved → image 2
    at.button(key="lab_skip").click().run()                       # image 2 skipped → 3
    at.button(key="lab_back").click().run()
    at.button(key="lab_back").click().run()                       # back to image 1: its label is loaded
    assert at.number_input(key="lab_n_vertical").value == 1
    set_counts(at, vertical=2, anti_diagonal=1)                   # edit
    at.button(key="lab_save").click().run()
    assert not at.exception, at.exception
    assert "2 of 100 annotated by alice" in at.get("progress")[0].proto.text

    store = Store(app_paths.db_path)
    rows = store.list_annotations("alice", "mnist").sort_values("image_index")
    assert list(rows["image_index"]) == [0, 1]
    assert rows.iloc[0]["counts"] == {**dict.fromkeys(SHAPES, 0), "corner": 2, "crossing": 1}
    assert rows.iloc[1]["description"] == "Image with 3 shapes: 1 anti-diagonal, 2 verticals"

    # A restarted session resumes at the first image alice has not labelled.
    again = page("labeling", {"lab_annotator": "alice"})
    assert again.get("image")[0].proto.imgs[0].caption.startswith("MNIST test #2 ")


def test_suggestion_is_marked_and_only_fills_the_inputs(app_paths: Paths) -> None:
    fake = FakeInterpreter(lambda e: "Image with 2 shapes: 1 ellipse, 1 vertical", name="fake")
    at = page("labeling", {"interpreter_override": fake, "lab_annotator": "bob"})
    at.button(key="lab_suggest").click().run()
    assert not at.exception, at.exception
    [info] = [i.value for i in at.info if "Suggestion" in i.value]
    assert "not saved" in info and "Image with 2 shapes: 1 vertical, 1 ellipse" in info
    assert Store(app_paths.db_path).list_annotations().empty
    at.button(key="lab_use_suggestion").click().run()
    assert at.number_input(key="lab_n_ellipse").value == 1 and at.number_input(key="lab_n_vertical").value == 1


def test_rating_agreement_and_import(app_paths: Paths) -> None:
    store = Store(app_paths.db_path)
    store.upsert_run("eval-tiny", "evaluate", "smollm2-135m", {}, "succeeded", None)
    store.save_predictions("eval-tiny", "mnist_eval", [{"sample_index": 7, "prediction": "Image with 1 shape: 1 corner"},
                                                       {"sample_index": 9, "prediction": "Image with 0 shapes"}])
    for who, corner in (("ann", 1), ("bob", 1)):
        store.save_annotation(who, "mnist", 0, {"corner": corner}, "x")
        store.save_annotation(who, "mnist", 1, {"corner": 2 if who == "ann" else 0}, "x")

    at = page("labeling", {"lab_annotator": "ann"})
    at.selectbox(key="rate_note_corner").set_value("too many").run()
    at.button(key="rate_correct").click().run()
    at.button(key="rate_wrong").click().run()
    assert not at.exception, at.exception
    ratings = Store(app_paths.db_path).list_ratings("eval-tiny")
    assert list(zip(ratings["image_index"], ratings["verdict"], strict=True)) == [(7, "correct"), (9, "wrong")]
    assert ratings.iloc[0]["per_shape"] == {"corner": "too many"} and ratings.iloc[0]["rater"] == "ann"
    assert "**eval-tiny** · ann: **1 of 2 correct** (0 partly, 1 wrong)" in texts(at)

    kappa = [df.value for df in at.dataframe if "kappa" in df.value.columns][0].set_index("shape")
    assert kappa.loc["corner", "n_images"] == 2 and kappa.loc["corner", "observed"] == 0.5

    csv = ("annotator,image_index," + ",".join(SHAPES) + "\n"
           "carol,5,0,0,1,0,0,0,0,0\ncarol,6,0,0,1.5,0,0,0,0,0\ncarol,99999,0,0,0,0,0,0,0,0\n")
    at.file_uploader(key="lab_import").set_value(("labels.csv", csv.encode(), "text/csv")).run()
    rejected = [df.value for df in at.dataframe if "reason" in df.value.columns][0]
    assert list(rejected["line"]) == [3, 4]
    assert "vertical '1.5' is not a whole number" in rejected["reason"].iloc[0]
    at.button(key="lab_import_go").click().run()
    assert any("Imported 1 annotations" in s.value for s in at.success)
    assert Store(app_paths.db_path).get_annotation("carol", "mnist", 5).description == "Image with 1 shape: 1 vertical"


# --- the store held by another process ------------------------------------------------------------------------

def test_save_while_another_process_holds_the_store_keeps_the_label(app_paths: Paths) -> None:
    at = page("labeling", {"lab_annotator": "alice"})
    set_counts(at, corner=2, crossing=1)
    with store_held(app_paths.db_path) as pid:
        at.button(key="lab_save").click().run()
        assert not at.exception, at.exception
        errors = "\n".join(e.value for e in at.error)
        assert "Image #0 was NOT saved" in errors and "your counts are still in the form" in errors
        assert f"The store is busy: process {pid} holds" in errors and str(app_paths.db_path) in errors
        assert at.button(key="store_retry").label == "Retry"
        assert at.session_state["lab_n_corner"] == 2 and at.session_state["lab_n_crossing"] == 1

    at.button(key="store_retry").click().run()
    assert not at.exception and not at.error
    assert at.get("image")[0].proto.imgs[0].caption.startswith("MNIST test #0 ")
    assert at.number_input(key="lab_n_corner").value == 2 and at.number_input(key="lab_n_crossing").value == 1
    assert Store(app_paths.db_path).list_annotations().empty

    at.button(key="lab_save").click().run()
    assert any("Saved image #0" in s.value for s in at.success)
    got = Store(app_paths.db_path).get_annotation("alice", "mnist", 0)
    assert got.counts == {**dict.fromkeys(SHAPES, 0), "corner": 2, "crossing": 1}


def test_every_store_call_of_the_labeling_page_is_guarded(app_paths: Paths) -> None:
    """With the store refusing every connection, each callback says what did not happen and the page shows
    the message with Retry, never a traceback; Retry once the store is free brings the page back."""
    store = Store(app_paths.db_path)
    store.upsert_run("eval-tiny", "evaluate", "smollm2-135m", {}, "succeeded", None)
    store.save_predictions("eval-tiny", "mnist_eval", [{"sample_index": 7, "prediction": "Image with 0 shapes"}])
    at = page("labeling", {"lab_annotator": "ann"})
    for key, note in (("lab_skip", "Image #1 was not opened"), ("rate_correct", "Your verdict was not saved"),
                      ("lab_save", "Image #0 was NOT saved")):
        with store_refused():
            at.button(key=key).click().run()
            assert not at.exception, (key, at.exception)
            errors = "\n".join(e.value for e in at.error)
            assert note in errors and f"The store is busy: process {HOLDER_PID} holds" in errors, key
        at.button(key="store_retry").click().run()
        assert not at.exception and not at.error, key
    assert store.list_ratings().empty and store.list_annotations().empty
