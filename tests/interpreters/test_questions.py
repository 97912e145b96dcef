"""Grounded questions: answers follow from the counts, and answer_count reads them back."""

from __future__ import annotations

import numpy as np
import pytest

from interp.interpreters.questions import (
    Question,
    answer_all,
    answer_count,
    describes_first,
    eval_questions,
    make_question,
    parse_question,
    reference_number,
    sample_questions,
    score_answers,
)
from interp.language import SHAPES

COUNTS = {"ellipse": 1, "corner": 2, "vertical": 1}


def test_answers_state_the_rule_and_the_total() -> None:
    assert make_question("count", COUNTS, "corner").answer == "2 corners."
    assert make_question("count", COUNTS, "ellipse", variant=1).text == "How many ellipses are in the image?"
    assert make_question("count", COUNTS, "horizontal").answer == "0 horizontals."
    assert make_question("exists", COUNTS, "ellipse").answer == "Yes, 1 ellipse."
    assert make_question("exists", COUNTS, "anti-diagonal").text == "Is there an anti-diagonal in the image?"
    assert make_question("exists", COUNTS, "horizontal").answer == "No, there is no horizontal."
    curves = make_question("curves", COUNTS)
    assert curves.answer == "Curves are ellipses and corners: 1 ellipse + 2 corners = 3 curves."
    assert curves.truth == 3
    lines = make_question("lines", COUNTS)
    assert lines.answer.endswith(": 1 vertical = 1 straight line.") and lines.truth == 1
    assert make_question("lines", {"ellipse": 1}).answer == (
        "Straight lines are diagonals, anti-diagonals, verticals and horizontals: there are none, so 0 straight lines.")
    total = make_question("total", COUNTS)
    assert total.answer == "4 shapes: 1 vertical, 1 ellipse, 2 corners." and total.truth == 4
    assert make_question("origin", COUNTS).truth is None
    with pytest.raises(ValueError, match="unknown question kind"):
        make_question("colour", COUNTS)


@pytest.mark.parametrize("kind,shape", [("count", "corner"), ("exists", "horizontal"), ("curves", None),
                                        ("lines", None), ("total", None)])
def test_answer_count_reads_back_every_generated_answer(kind: str, shape: str | None) -> None:
    q = make_question(kind, COUNTS, shape)
    assert answer_count(q, q.answer) == q.truth


def test_answer_count_on_free_answers() -> None:
    curves = make_question("curves", COUNTS)
    assert answer_count(curves, "I see 1 ellipse and 2 corners, so 3 curves") == 3
    assert answer_count(curves, "There are some curves.") is None
    count = make_question("count", COUNTS, "corner")
    assert answer_count(count, "1 corner.") == 1
    assert answer_count(count, "Image with 2 shapes: 1 ellipse, 1 vertical") is None
    assert answer_count(count, "Image with 2 shapes: 1 ellipse, 1 corner. So 2 corners.") == 2  # the last number
    exists = make_question("exists", COUNTS, "ellipse")
    assert answer_count(exists, "no") == 0 and answer_count(exists, "maybe") is None


def test_score_answers_counts_right_numbers_per_kind() -> None:
    qs = [make_question("count", COUNTS, "corner"), make_question("curves", COUNTS), make_question("origin", COUNTS)]
    result = score_answers(qs, ["2 corners.", "= 4 curves.", "anything"])
    assert result["n"] == 2 and result["accuracy"] == 0.5
    assert result["by_kind"] == {"count": {"n": 1, "accuracy": 1.0}, "curves": {"n": 1, "accuracy": 0.0}}
    with pytest.raises(ValueError):
        score_answers(qs, ["one"])


def test_sampled_and_eval_questions_are_grounded_and_seeded() -> None:
    rng = np.random.default_rng(3)
    for q in sample_questions(COUNTS, rng, k=50):
        assert answer_count(q, q.answer) == q.truth
    counts = np.zeros((10, len(SHAPES)), np.int64)
    counts[:, SHAPES.index("corner")] = 2
    first, again = eval_questions(counts, seed=1), eval_questions(counts, seed=1)
    assert first == again
    assert [q.kind for q in first[:5]] == ["count", "exists", "curves", "lines", "total"]
    assert all(answer_count(q, q.answer) == q.truth for q in first)


def test_answer_all_falls_back_to_streaming() -> None:
    class Streams:
        encoder = "paper"

        def stream(self, prompt: str, max_new_tokens: int = 64):
            yield from ("2 ", "corners.")

    q = [make_question("count", COUNTS, "corner")]
    assert answer_all(Streams(), ["fzz"], q) == ["2 corners."]
    assert isinstance(q[0], Question)


def test_describe_first_asks_each_question_after_the_interpreters_own_description() -> None:
    from interp.interpreters.prompt import build_prompt, build_question

    seen: list[str] = []

    class Streams:
        encoder = "paper"

        def stream(self, prompt: str, max_new_tokens: int = 64):
            seen.append(prompt)
            yield "Image with 1 shape: 1 corner" if prompt.endswith("### Output: ") else "1 corner."

    q = [make_question("count", COUNTS, "corner")]
    assert answer_all(Streams(), ["fzz"], q, describe_first=True) == ["1 corner."]
    assert seen == [build_prompt("fzz"), build_question("fzz", q[0].text, "paper", "Image with 1 shape: 1 corner")]
    assert "### Output: Image with 1 shape: 1 corner\n### Question: " in seen[1]

    class Batched:
        kind, encoder = "reader", "paper"

        def describe(self, encodings):
            return [f"desc of {e}" for e in encodings]

        def answer_questions(self, encodings, questions, descriptions=None):
            return [f"{d} | {q}" for d, q in zip(descriptions or [None] * len(questions), questions, strict=True)]

    two = [make_question("total", COUNTS), make_question("curves", COUNTS)]
    assert answer_all(Batched(), ["a", "b"], two, batch_size=1, describe_first=True) == [
        f"desc of a | {two[0].text}", f"desc of b | {two[1].text}"]
    assert answer_all(Batched(), ["a"], two[:1]) == [f"None | {two[0].text}"]
    assert describes_first(Batched()) and not describes_first(Streams())


@pytest.mark.parametrize("text,kind,shape", [
    ("How many curves are in the image, 0, 1, 2, 3, 4, 5? Explain your answer first.", "curves", None),
    ("how many straight lines?", "lines", None),
    ("How many shapes are in the image?", "total", None),
    ("How many anti-diagonals are there?", "count", "anti-diagonal"),
    ("How many diagonals are there?", "count", "diagonal"),
    ("Count the corners", "count", "corner"),
    ("Is there an ellipse in the image?", "exists", "ellipse"),
])
def test_parse_question_finds_the_grounded_question_in_free_text(text: str, kind: str, shape: str | None) -> None:
    q = parse_question(text)
    assert (q.kind, q.shape) == (kind, shape)
    assert reference_number(q, COUNTS) == make_question(kind, COUNTS, shape).truth


@pytest.mark.parametrize("text", ["Where does this pattern come from?", "Is there a cat?", "Describe it"])
def test_parse_question_leaves_other_questions_alone(text: str) -> None:
    assert parse_question(text) is None
