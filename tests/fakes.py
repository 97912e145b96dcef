"""Test doubles: an interpreter that answers from a fixed function, behind the Interpreter interface."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class FakeInterpreter:
    """Answers every encoding or prompt with ``answer(text)``."""

    answer: Any
    name: str = "fake"
    encoder: str = "paper"
    thresholds: Any = None
    layer: str = "conv1"

    def describe(self, encodings: Sequence[str], max_new_tokens: int = 48) -> list[str]:
        return [self.answer(e) for e in encodings]

    def stream(self, prompt: str, max_new_tokens: int = 128, temperature: float = 0.0,
               stop_event: threading.Event | None = None) -> Iterator[str]:
        for word in str(self.answer(prompt)).split(" "):
            if stop_event is not None and stop_event.is_set():
                return
            yield word + " "
