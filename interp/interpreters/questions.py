"""Grounded questions about an image's shapes, with answers computed from its counts.

The reader is trained on these besides the description (§4.2 asks the interpreter free questions;
here every answer follows from the counts, so it can be checked). Rules, stated in the answers:

- curves = ellipses + corners (a corner is a bent stroke; lines and checkerboards are straight);
- straight lines = diagonals + anti-diagonals + verticals + horizontals.

Sum answers list the parts, then the total ("Curves are ellipses and corners: 1 ellipse + 1 corner =
2 curves."). Tried and measured worse: answers that first state the whole reading in the
description's words, then the number (reader-c in the README: count-QA 0.76 against 0.89).

`answer_count` reads the number an answer gives for its question, so held-out answers are scored
(`score_answers`) the way descriptions are: against the truth, never by eye.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from interp.interpreters.prompt import PRESET_QUESTIONS, build_prompt, build_question
from interp.language import PLURALS, SHAPES, counts_from_vector, format_description

CURVES = ("ellipse", "corner")
"""Shape types that count as curves."""
LINES = ("diagonal", "anti-diagonal", "vertical", "horizontal")
"""Shape types that count as straight lines."""
QUESTION_KINDS = ("count", "exists", "curves", "lines", "total", "origin")


@dataclass(frozen=True)
class Question:
    """One question about an image: its text, what it asks about, and the answer its counts give."""

    kind: str
    """One of QUESTION_KINDS."""
    text: str
    answer: str
    shape: str | None = None
    """The shape type asked about (kinds 'count' and 'exists')."""
    truth: int | None = None
    """The count the answer states (for 'exists': 1 yes, 0 no); None for 'origin'."""


def _noun(name: str, n: int) -> str:
    return name if n == 1 else PLURALS[name]


def _sum_answer(counts: Mapping[str, int], names: Sequence[str], rule: str, noun: str) -> str:
    parts = [f"{counts.get(s, 0)} {_noun(s, counts.get(s, 0))}" for s in names if counts.get(s, 0)]
    total = sum(counts.get(s, 0) for s in names)
    plural = noun if total == 1 else noun + "s"
    if not parts:
        return f"{rule}: there are none, so 0 {noun}s."
    return f"{rule}: {' + '.join(parts)} = {total} {plural}."


def make_question(kind: str, counts: Mapping[str, int], shape: str | None = None, variant: int = 0) -> Question:
    """The question of ``kind`` (about ``shape`` where it takes one) and its answer from ``counts``."""
    canonical = {s: counts.get(s, 0) for s in SHAPES}  # descriptions list shapes in L's order
    if kind == "count":
        n = counts.get(shape, 0)
        text = (f"How many {PLURALS[shape]} are there?", f"How many {PLURALS[shape]} are in the image?")[variant % 2]
        return Question(kind, text, f"{n} {_noun(shape, n)}.", shape, n)
    if kind == "exists":
        n = counts.get(shape, 0)
        article = "an" if shape[0] in "aeiou" else "a"
        answer = f"Yes, {n} {_noun(shape, n)}." if n else f"No, there is no {shape}."
        return Question(kind, f"Is there {article} {shape} in the image?", answer, shape, int(n > 0))
    if kind == "curves":
        text = ("How many curves are in the image?", PRESET_QUESTIONS["curves"])[variant % 2]
        answer = _sum_answer(counts, CURVES, "Curves are ellipses and corners", "curve")
        return Question(kind, text, answer, None, sum(counts.get(s, 0) for s in CURVES))
    if kind == "lines":
        rule = "Straight lines are diagonals, anti-diagonals, verticals and horizontals"
        answer = _sum_answer(counts, LINES, rule, "straight line")
        return Question(kind, "How many straight lines are in the image?", answer, None,
                        sum(counts.get(s, 0) for s in LINES))
    if kind == "total":
        return Question(kind, "How many shapes are in the image?",
                        format_description(canonical).replace("Image with ", "", 1) + ".", None, sum(canonical.values()))
    if kind == "origin":
        return Question(kind, PRESET_QUESTIONS["origin"],
                        f"From a 28x28 image: {format_description(canonical)}.", None, None)
    raise ValueError(f"unknown question kind {kind!r}; choose one of {QUESTION_KINDS}")


def sample_questions(counts: Mapping[str, int], rng: np.random.Generator, k: int = 1) -> list[Question]:
    """``k`` random questions about ``counts``: half about one shape type (present or not), half about groups."""
    out = []
    present = [s for s in SHAPES if counts.get(s, 0)]
    for _ in range(k):
        kind = str(rng.choice(("count", "count", "exists", "curves", "lines", "total", "origin"),
                              p=(0.25, 0.1, 0.15, 0.2, 0.15, 0.1, 0.05)))
        shape = _pick_shape(present, rng) if kind in ("count", "exists") else None
        out.append(make_question(kind, counts, shape, int(rng.integers(2))))
    return out


def _pick_shape(present: Sequence[str], rng: np.random.Generator) -> str:
    """A shape type to ask about: one in the image half the time (when there is one), else any of S."""
    return str(rng.choice(present)) if present and rng.random() < 0.5 else str(rng.choice(SHAPES[:7]))


def answer_count(question: Question, answer: str) -> int | None:
    """The number ``answer`` gives for ``question`` (yes/no as 1/0); None when it gives none."""
    text = answer.strip()
    if question.kind == "exists":
        head = text.lower()
        return 1 if head.startswith("yes") else 0 if head.startswith("no") else None
    nouns = {"count": (question.shape, PLURALS.get(question.shape or "", "")), "curves": ("curves", "curve"),
             "lines": ("straight lines", "straight line"), "total": ("shapes", "shape")}.get(question.kind)
    if nouns is None:
        return None
    alternatives = "|".join(re.escape(n) for n in sorted(nouns, key=len, reverse=True))
    found = re.findall(rf"(\d{{1,3}})\s+(?:{alternatives})\b", text, flags=re.IGNORECASE)
    # The last number: an answer may name parts before its total ("1 ellipse + 2 corners = 3 curves").
    return int(found[-1]) if found else None


def parse_question(text: str) -> Question | None:
    """The grounded question a free text asks ("how many curves…", "is there an ellipse?"), without its
    answer; None for any other question. Curves and straight lines before single types: "How many curves"."""
    t = " ".join(text.lower().split())
    names = sorted(((n, s) for s in SHAPES for n in (PLURALS[s], s)), key=lambda p: -len(p[0]))
    if m := re.search(r"\bis there (?:an? |any )?([a-z-]+)", t):
        shape = next((s for n, s in names if m.group(1) == n), None)
        return Question("exists", text, "", shape) if shape else None
    if not re.search(r"\bhow many\b|\bcount\b|\bnumber of\b", t):
        return None
    for kind, pattern in (("curves", r"\bcurves?\b"), ("lines", r"\bstraight lines?\b|\blines\b"),
                          ("total", r"\bshapes?\b")):
        if re.search(pattern, t):
            return Question(kind, text, "")
    for name, shape in names:
        if re.search(rf"(?<![a-z-]){re.escape(name)}\b", t):
            return Question("count", text, "", shape)
    return None


def reference_number(question: Question, counts: Mapping[str, int]) -> int:
    """What ``counts`` (e.g. a probe's reading) say the answer to ``question`` is."""
    return make_question(question.kind, counts, question.shape).truth


def score_answers(questions: Sequence[Question], answers: Sequence[str]) -> dict:
    """Accuracy of the numbers the answers give, overall and per kind ('origin' questions are not scored)."""
    if len(questions) != len(answers):
        raise ValueError(f"{len(questions)} questions but {len(answers)} answers")
    per_kind: dict[str, list[bool]] = {}
    for q, a in zip(questions, answers, strict=True):
        if q.truth is None:
            continue
        per_kind.setdefault(q.kind, []).append(answer_count(q, a) == q.truth)
    every = [ok for oks in per_kind.values() for ok in oks]
    return {"n": len(every), "accuracy": float(np.mean(every)) if every else None,
            "by_kind": {k: {"n": len(v), "accuracy": float(np.mean(v))} for k, v in sorted(per_kind.items())}}


SCORED_KINDS = ("count", "exists", "curves", "lines", "total")
"""The question kinds with a number for an answer: the held-out QA accuracy covers these."""


def eval_questions(counts: np.ndarray, seed: int = 0) -> list[Question]:
    """One question per image, kinds in turn (SCORED_KINDS), the shape asked about drawn seeded
    (a present one half the time); ``counts`` int [n, 8] in SHAPES order."""
    rng = np.random.default_rng(seed)
    out = []
    for i, vec in enumerate(np.asarray(counts)):
        c = counts_from_vector(vec)
        kind = SCORED_KINDS[i % len(SCORED_KINDS)]
        present = [s for s in SHAPES if c.get(s, 0)]
        shape = _pick_shape(present, rng) if kind in ("count", "exists") else None
        out.append(make_question(kind, c, shape, int(rng.integers(2))))
    return out


def describes_first(interpreter) -> bool:
    """Whether ``interpreter`` is asked a count question after its own description (the Chat page's way
    with a reader, which is trained on description-then-question conversations): readers, not text
    interpreters (trained on descriptions alone, asked as in §4.2)."""
    return getattr(interpreter, "kind", None) == "reader"


def answer_all(interpreter, encodings: Sequence[str], questions: Sequence[Question], batch_size: int = 25,
               progress: bool = False, describe_first: bool = False) -> list[str]:
    """The interpreter's answers: batched where it offers `answer_questions`, else one streamed answer each.

    ``describe_first``: each question is the second turn, after the interpreter's own description of the
    image (a reader answers sums better once it has written the counts out: 0.95 against 0.89 measured).
    """
    from tqdm.auto import tqdm

    out: list[str] = []
    batched = hasattr(interpreter, "answer_questions")
    step = batch_size if batched else 1
    desc = f"answer ({getattr(interpreter, 'name', 'interpreter')})"
    with tqdm(total=len(encodings), unit="question", desc=desc, disable=not progress) as bar:
        for i in range(0, len(encodings), step):
            chunk, asked = list(encodings[i : i + step]), questions[i : i + step]
            if batched:
                told = interpreter.describe(chunk) if describe_first else None
                out += interpreter.answer_questions(chunk, [q.text for q in asked], descriptions=told)
            else:
                told = _streamed(interpreter, build_prompt(chunk[0], interpreter.encoder), 48) \
                    if describe_first else None
                out.append(_streamed(interpreter, build_question(chunk[0], asked[0].text, interpreter.encoder, told),
                                     96))
            bar.update(len(chunk))
    return out


def _streamed(interpreter, prompt: str, max_new_tokens: int) -> str:
    return "".join(interpreter.stream(prompt, max_new_tokens=max_new_tokens)).strip()
