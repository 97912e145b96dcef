"""Chat: the interpreter list, the multi-turn prompt as exact strings, conversations in the store."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from interp.encoding.thresholds import ThresholdSet
from interp.interpreters import chat
from interp.interpreters.prompt import PRESET_QUESTIONS, build_prompt, build_question
from interp.settings import Paths
from interp.store.db import Store
from tests.fakes import FakeInterpreter

TSET = ThresholdSet("t", [[0.0, 0.1, 0.2, 0.3]] * 8)
CURVES = PRESET_QUESTIONS["curves"]
DESCRIBE = PRESET_QUESTIONS["describe"]


# --- prompts ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("encoder", ["paper", "compact"])
def test_first_turn_is_exactly_the_training_format(encoder: str) -> None:
    head = chat.prompt_head("fzzl", encoder)
    assert chat.build_chat_prompt(head, [], CURVES) == build_question("fzzl", CURVES, encoder)
    assert chat.build_chat_prompt(head, [], DESCRIBE) == build_prompt("fzzl", encoder)


def test_multi_turn_prompt_exact() -> None:
    head = chat.prompt_head("fzzl")
    turns = [chat.Turn(DESCRIBE, "Image with 1 shape: 1 corner"),
             chat.Turn("Why?", " Because of filter 3. \n"),
             chat.Turn("Never answered")]
    prompt = chat.build_chat_prompt(head, turns, CURVES)
    assert prompt == (build_prompt("fzzl") + "Image with 1 shape: 1 corner\n"
                      "### Question: Why?\n### Answer: Because of filter 3.\n"
                      f"### Question: {CURVES}\n### Answer: ")


# --- which interpreters -----------------------------------------------------------------------------------

def _adapter(folder: Path, preset: str = "smollm2-135m", encoder: str = "compact", tset: dict | None = None,
             **manifest) -> Path:
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text("{}")
    (folder / "run_config.json").write_text(json.dumps(
        {"finetune": {"preset": preset}, "dataset_manifest": {"encoder": encoder, "threshold_set": tset, **manifest}}))
    return folder


def _fetch(models: Path, preset: str = "smollm2-135m") -> None:
    hf = models / preset / "hf"
    hf.mkdir(parents=True)
    (hf / "config.json").write_text("{}")
    (hf / "fetched.json").write_text("{}")


def test_list_interpreters_shipped_first_runs_newest_then_base(tmp_path: Path) -> None:
    paths = Paths(root=tmp_path, data_dir=tmp_path / "data", assets_dir=tmp_path / "assets", runs_dir=tmp_path / "runs")
    shipped = _adapter(paths.assets_dir / "interpreters" / "smollm2-shapes", tset=TSET.to_dict())
    old = _adapter(paths.runs_dir / "old" / "adapter", encoder="paper")
    new = _adapter(paths.runs_dir / "new" / "adapter")
    os.utime(old / "adapter_config.json", (1_000, 1_000))
    (paths.runs_dir / "unfinished" / "checkpoints").mkdir(parents=True)  # no adapter yet: not listed

    choices = chat.list_interpreters(paths)
    assert [(c.kind, c.spec) for c in choices] == [
        ("shipped", str(shipped)), ("run", str(new)), ("run", str(old)), ("base", "base:smollm2-135m")]
    first = choices[0]
    assert first.encoder == "compact" and first.thresholds == TSET and first.base_spec == "base:smollm2-135m"
    assert choices[2].encoder == "paper" and choices[2].thresholds is None
    assert choices[3].base_spec is None
    # Nothing fetched: every choice says what to run.
    assert not any(c.available for c in choices)
    assert all("python -m interp models fetch smollm2-135m" in c.hint for c in choices)

    _fetch(paths.models_dir)
    assert all(c.available and not c.hint for c in chat.list_interpreters(paths))


def test_a_shipped_reader_is_the_default(tmp_path: Path) -> None:
    paths = Paths(root=tmp_path, data_dir=tmp_path / "data", assets_dir=tmp_path / "assets", runs_dir=tmp_path / "runs")
    text = _adapter(paths.assets_dir / "interpreters" / "a-text")
    reader = _adapter(paths.assets_dir / "interpreters" / "z-reader", encoder="paper")
    (reader / "reader.safetensors").write_bytes(b"")
    (reader / "reader_config.json").write_text("{}")
    choices = chat.list_interpreters(paths)
    assert [(c.spec, c.reader) for c in choices[:2]] == [(str(reader), True), (str(text), False)]
    assert "activation reader" in choices[0].label and "compact encoding" in choices[1].label


def test_a_choice_reads_the_layer_of_its_training_dataset(tmp_path: Path) -> None:
    from interp.interpreters.registry import read_interpreter_info

    paths = Paths(root=tmp_path, data_dir=tmp_path / "data", assets_dir=tmp_path / "assets", runs_dir=tmp_path / "runs")
    tset2 = ThresholdSet("t2", [[0.0, 0.1, 0.2, 0.3]] * 16, layer="conv2")
    deep = _adapter(paths.runs_dir / "deep" / "adapter", tset=tset2.to_dict(), layer="conv2")
    os.utime(deep / "adapter_config.json", (1_000, 1_000))
    old = _adapter(paths.runs_dir / "old" / "adapter")  # a manifest from before layers: conv1
    assert read_interpreter_info(deep)["layer"] == "conv2" and read_interpreter_info(old)["layer"] == "conv1"
    choices = {c.spec: c for c in chat.list_interpreters(paths)}
    assert choices[str(deep)].layer == "conv2" and choices[str(deep)].thresholds == tset2
    assert choices[str(old)].layer == choices["base:smollm2-135m"].layer == "conv1"
    injected = chat.with_overrides([], FakeInterpreter(str, name="deep", thresholds=tset2, layer="conv2"))
    assert injected[0].layer == "conv2"


def test_list_interpreters_without_anything_offers_the_default_base(tmp_path: Path) -> None:
    paths = Paths(root=tmp_path, data_dir=tmp_path / "data", assets_dir=tmp_path / "assets", runs_dir=tmp_path / "runs")
    [only] = chat.list_interpreters(paths)
    assert only.spec == "base:smollm2-135m" and not only.available


def test_unreadable_adapter_is_listed_unavailable(tmp_path: Path) -> None:
    paths = Paths(root=tmp_path, data_dir=tmp_path / "data", assets_dir=tmp_path / "assets", runs_dir=tmp_path / "runs")
    broken = paths.runs_dir / "broken" / "adapter"
    broken.mkdir(parents=True)
    (broken / "adapter_config.json").write_text("{}")  # no run_config.json
    choice = chat.list_interpreters(paths)[0]
    assert choice.spec == str(broken) and not choice.available and "run_config.json" in choice.hint


def test_overrides() -> None:
    listed = [chat.InterpreterChoice("run", "runs/a/adapter", "run", preset="smollm2-135m", available=False),
              chat.InterpreterChoice("base", "base:smollm2-135m", "base", preset="smollm2-135m", available=False)]
    fake = FakeInterpreter(str, name="fake", encoder="rle")
    assert chat.with_overrides(listed, None) == listed
    single = chat.with_overrides(listed, fake)
    assert single[0].spec == "injected:fake" and single[0].encoder == "rle" and all(c.available for c in single)
    mapped = chat.with_overrides(listed, {"runs/a/adapter": fake, "other": fake})
    assert [c.spec for c in mapped] == ["other", "runs/a/adapter", "base:smollm2-135m"]
    assert [c.available for c in mapped] == [True, True, False]


def test_load_error_message_says_what_to_run() -> None:
    msg = chat.load_error_message("base:gemma3-270m", OSError("missing"))
    assert "python -m interp models fetch gemma3-270m" in msg and "missing" in msg
    assert "fetch smollm2-135m" in chat.load_error_message("runs/x/adapter", OSError("x"), "smollm2-135m")


# --- conversations ----------------------------------------------------------------------------------------

def image_ref() -> chat.ImageRef:
    return chat.ImageRef("mnist", 7, "MNIST test #7 (label 9)", np.arange(784, dtype=np.uint8).reshape(28, 28) % 200)


def test_image_ref_round_trip() -> None:
    ref = image_ref()
    back = chat.ImageRef.from_dict(json.loads(json.dumps(ref.to_dict())))
    assert (back.source, back.index, back.label) == ("mnist", 7, "MNIST test #7 (label 9)")
    assert np.array_equal(back.pixels, ref.pixels) and back.pixels.dtype == np.uint8


def test_conversation_is_stored_and_continued(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.duckdb")
    prompts: list[str] = []

    def answer(prompt: str) -> str:
        prompts.append(prompt)
        return "Image with 1 shape: 1 corner" if len(prompts) == 1 else "There are 2 curves."

    fake = FakeInterpreter(answer)
    cid = chat.start_conversation(store, DESCRIBE, image_ref(), "fzzl", "paper", "default", "runs/a/adapter")
    streamed = []
    for question in (DESCRIBE, CURVES):
        prompt = chat.ask(store, cid, question)
        streamed.append("".join(chat.record_stream(fake.stream(prompt), chat.answer_saver(store, cid))))
    assert streamed == ["Image with 1 shape: 1 corner ", "There are 2 curves. "]  # pieces pass through unchanged

    assert prompts[0] == build_prompt("fzzl")
    assert prompts[1] == build_prompt("fzzl") + f"Image with 1 shape: 1 corner\n### Question: {CURVES}\n### Answer: "
    conv = store.get_conversation(cid)
    assert (conv.title, conv.encoding, conv.threshold_set, conv.model) == (DESCRIBE, "fzzl", "default", "runs/a/adapter")
    assert conv.image["index"] == 7 and len(conv.image["pixels"]) == 784
    thread = chat.load_thread(store, cid)
    assert thread.turns == [chat.Turn(DESCRIBE, "Image with 1 shape: 1 corner"), chat.Turn(CURVES, "There are 2 curves.")]
    assert [m.role for m in store.get_messages(cid)] == ["system", "user", "assistant", "user", "assistant"]


def test_stopped_stream_keeps_the_partial_answer(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.duckdb")
    cid = chat.start_conversation(store, "q", image_ref(), "fzzl", "paper", None, "base:smollm2-135m")
    chat.ask(store, cid, "Why?")
    stream = chat.record_stream(FakeInterpreter(lambda p: "one two three four").stream("p"),
                                chat.answer_saver(store, cid))
    assert next(stream) + next(stream) == "one two "
    stream.close()  # what Streamlit does when the stop button interrupts the run
    assert chat.load_thread(store, cid).turns == [chat.Turn("Why?", "one two")]


def test_unanswered_question_is_left_out_of_the_next_prompt(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.duckdb")
    cid = chat.start_conversation(store, "q", image_ref(), "fzzl", "paper", None, "m")
    chat.ask(store, cid, "Lost?")  # e.g. the model failed to load after the question was stored
    assert chat.ask(store, cid, "Why?") == build_question("fzzl", "Why?")
    assert chat.load_thread(store, cid).turns == [chat.Turn("Lost?"), chat.Turn("Why?")]


def test_exports(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.duckdb")
    cid = chat.start_conversation(store, "A very long question " * 10, image_ref(), "fzzl", "paper", "default", "m")
    chat.ask(store, cid, "Why?")
    chat.answer_saver(store, cid)("Because.")
    data = json.loads(chat.export_json(store, cid))
    assert data["title"].endswith("…") and len(data["title"]) == chat.TITLE_LENGTH
    assert [m["role"] for m in data["messages"]] == ["system", "user", "assistant"]
    assert data["messages"][0]["content"] == chat.prompt_head("fzzl")
    assert data["encoding"] == "fzzl" and data["image"]["label"] == "MNIST test #7 (label 9)"
    md = chat.export_markdown(store, cid)
    assert "- model: `m`" in md and "- image: MNIST test #7 (label 9)" in md
    assert "```text\n" + chat.prompt_head("fzzl").rstrip("\n") + "\n```" in md
    assert "**You:** Why?" in md and "**Interpreter:** Because." in md


def test_thread_keys_differ_by_model_and_encoding() -> None:
    assert chat.thread_key("a", "fzz") != chat.thread_key("b", "fzz") != chat.thread_key("a", "fzl")


PROBE_SAYS = {"ellipse": 1, "corner": 1, "vertical": 0}


def test_check_answer_sets_a_description_or_a_count_answer_beside_the_reference() -> None:
    ok = chat.check_answer(PRESET_QUESTIONS["describe"], "Image with 2 shapes: 1 ellipse, 1 corner", PROBE_SAYS)
    assert ok.agrees and ok.stated == {"ellipse": 1, "corner": 1}
    assert ok.summary() == "✅ the answer reads 1 ellipse, 1 corner; the probe reads 1 ellipse, 1 corner"
    wrong = chat.check_answer(PRESET_QUESTIONS["describe"], "Image with 1 shape: 1 vertical", PROBE_SAYS)
    assert not wrong.agrees and wrong.summary().startswith("❌ the answer reads 1 vertical")
    assert not chat.check_answer(PRESET_QUESTIONS["describe"], "zzzz", PROBE_SAYS).agrees

    curves = chat.check_answer(PRESET_QUESTIONS["curves"], "Image with 2 shapes: 1 ellipse, 1 corner. Curves are "
                               "ellipses and corners: 1 ellipse + 1 corner = 2 curves.", PROBE_SAYS)
    assert (curves.kind, curves.stated, curves.reference, curves.agrees) == ("curves", 2, 2, True)
    bare = chat.check_answer("How many corners are there?", "3", PROBE_SAYS)
    assert bare.stated is None and not bare.agrees and "no number" in bare.summary()
    exists = chat.check_answer("Is there a vertical in the image?", "Yes, 1 vertical.", PROBE_SAYS)
    assert (exists.stated, exists.reference, exists.agrees) == (1, 0, False)
    assert chat.check_answer(PRESET_QUESTIONS["origin"], "From MNIST.", PROBE_SAYS) is None


def test_a_reader_describes_before_its_first_count_question() -> None:
    describe, q = PRESET_QUESTIONS["describe"], "How many curves are in the image?"
    assert chat.turns_to_ask([], q, reader=True) == [describe, q]
    assert chat.turns_to_ask([], q, reader=False) == [q]  # text interpreters are asked as in §4.2
    assert chat.turns_to_ask([chat.Turn(describe, "Image with 1 shape: 1 corner")], q, reader=True) == [q]
    assert chat.turns_to_ask([chat.Turn(describe)], q, reader=True) == [describe, q]  # never answered
    assert chat.turns_to_ask([], "What colour is it?", reader=True) == ["What colour is it?"]  # not a count question
    assert chat.turns_to_ask([], describe, reader=True) == [describe]
