"""When generation ends: a transformers StoppingCriteria over the decoded new text (or on request)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import torch


class StopOnStrings:
    """A StoppingCriteria: stop when every sequence's new text holds a stop string (or on request)."""

    def __init__(self, tokenizer: Any, prompt_len: int, stops: Sequence[str], stop_event: threading.Event | None):
        self.tokenizer, self.prompt_len, self.stops, self.stop_event = tokenizer, prompt_len, stops, stop_event

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kw: Any) -> torch.Tensor:
        if self.stop_event is not None and self.stop_event.is_set():
            return torch.ones(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_len:], skip_special_tokens=True)
        done = [any(s in t for s in self.stops) for t in texts]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)
