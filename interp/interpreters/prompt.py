"""The prompt p of §3.2: the task in English, the encoded activations, the output signifier.

Every text the interpreter sees is built here, so training, evaluation and chat agree exactly.
"""

from __future__ import annotations

from interp.language import OUTPUT_SIGNIFIER

INPUT_SIGNIFIER = "### Input:"
QUESTION_SIGNIFIER = "### Question:"
ANSWER_SIGNIFIER = "### Answer:"

TASK = (
    "Activations of the first conv layer of a CNN trained on MNIST, for one 28x28 image: "
    "8 filters of 14x14 cells, {encoding_note}. Name and count the shapes in the image."
)

# One line per encoder so the prompt tells the model how to read its input.
ENCODING_NOTES = {
    "paper": "each filter starts with 'f', then one letter per cell: z zero, l low, m medium, h high, v very high",
    "rle": "each filter starts with 'f', then one letter per cell (z zero, l low, m medium, h high, v very high), "
           "z<n> for n zero cells",
    "compact": "each filter starts with a line 'f', then one line per row: a space skips an empty cell, "
               "each letter of a word gives one cell's level",
}
DEFAULT_NOTE = "encoded as text, one block per filter"

# The paper's free questions (§4.2); the chat page offers them as presets.
PRESET_QUESTIONS = {
    "describe": "Describe the shapes in the image.",
    "curves": "How many curves are in the image, 0, 1, 2, 3, 4, 5? Explain your answer first.",
    "origin": "Where does this activation pattern come from?",
}


def task_text(encoder: str = "paper") -> str:
    """The English task description for an encoder."""
    return TASK.format(encoding_note=ENCODING_NOTES.get(encoder, DEFAULT_NOTE))


def build_prompt(encoding: str, encoder: str = "paper") -> str:
    """p + c(a) + the output signifier; the model continues with the description (§3.2, §4.1)."""
    return f"{task_text(encoder)}\n{INPUT_SIGNIFIER} {encoding}\n{OUTPUT_SIGNIFIER} "


def build_training_text(encoding: str, description: str, encoder: str = "paper") -> tuple[str, str]:
    """(prompt, completion) of one training instance s_j = (p, c(a_j), l_j); completion ends the turn."""
    return build_prompt(encoding, encoder), description + "\n"


def build_question(encoding: str, question: str, encoder: str = "paper", description: str | None = None) -> str:
    """A free question about the activations (§4.2), answered after the answer signifier; with a
    ``description``, asked as the second turn after it (as the Chat page asks after "describe")."""
    before = "" if description is None else f"{OUTPUT_SIGNIFIER} {description.strip()}\n"
    return (f"{task_text(encoder)}\n{INPUT_SIGNIFIER} {encoding}\n{before}"
            f"{QUESTION_SIGNIFIER} {question}\n{ANSWER_SIGNIFIER} ")
