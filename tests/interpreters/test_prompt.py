"""The prompt p as an exact string: training, evaluation and chat must agree on it."""

from __future__ import annotations

from interp.interpreters.prompt import build_prompt, build_question, build_training_text, task_text


def test_paper_prompt_exact() -> None:
    assert build_prompt("fzzl", "paper") == (
        "Activations of the first conv layer of a CNN trained on MNIST, for one 28x28 image: "
        "8 filters of 14x14 cells, each filter starts with 'f', then one letter per cell: z zero, l low, "
        "m medium, h high, v very high. Name and count the shapes in the image.\n"
        "### Input: fzzl\n"
        "### Output: "
    )


def test_training_text_is_prompt_plus_description() -> None:
    prompt, completion = build_training_text("fzzl", "Image with 1 shape: 1 corner", "paper")
    assert prompt == build_prompt("fzzl", "paper")
    assert completion == "Image with 1 shape: 1 corner\n"


def test_question_prompt_exact() -> None:
    q = build_question("f\\n b", "How many curves are in the image, 0, 1, 2, 3, 4, 5? Explain your answer first.",
                       "compact")
    assert q.startswith(task_text("compact") + "\n### Input: f\\n b\n")
    assert q.endswith("\n### Question: How many curves are in the image, 0, 1, 2, 3, 4, 5? "
                      "Explain your answer first.\n### Answer: ")


def test_each_encoder_has_its_own_reading_note() -> None:
    assert "one letter per cell" in task_text("paper")
    assert "one line per row" in task_text("compact")
    assert task_text("paper") != task_text("compact")
