"""The paper's text interpreter: the encoded activations as prompt text into a causal LM (§3.2–3.3).

A transformers model (optionally a PeftModel with its LoRA adapter) behind the Interpreter interface:
`describe` batches greedy descriptions, `stream` yields a chat answer as it is generated.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from interp.interpreters.prompt import INPUT_SIGNIFIER, build_prompt, build_question
from interp.interpreters.stopping import StopOnStrings
from interp.target.layers import DEFAULT_LAYER

STOP_STRINGS = ("\n", "###", INPUT_SIGNIFIER)
"""A description is one line: generation stops at a newline or the next section marker (§4.2)."""

CHAT_STOP_STRINGS = ("###",)
"""A chat answer may span lines but ends at the next section marker."""

def cut_at_stop(text: str, stops: Sequence[str] = STOP_STRINGS) -> str:
    """The text before the first stop string."""
    cut = len(text)
    for s in stops:
        i = text.find(s)
        if i != -1:
            cut = min(cut, i)
    return text[:cut].strip()

@dataclass
class HFInterpreter:
    """A transformers causal LM (optionally a PeftModel) behind the Interpreter interface."""

    model: Any
    tokenizer: Any
    name: str
    encoder: str = "paper"
    thresholds: Any = None
    info: dict = field(default_factory=dict)
    kind: str = "text"
    layer: str = DEFAULT_LAYER
    """The target layer whose encoded maps it reads (its training dataset's)."""

    def _generate(self, prompts: Sequence[str], max_new_tokens: int, temperature: float, stops: Sequence[str],
                  stop_event: threading.Event | None = None, streamer: Any = None) -> list[str]:
        from transformers import StoppingCriteriaList

        tok = self.tokenizer
        tok.padding_side = "left"  # generation continues from the right end of every row
        batch = tok(list(prompts), return_tensors="pt", padding=True).to(self.model.device)
        prompt_len = batch["input_ids"].shape[1]
        criteria = StoppingCriteriaList([StopOnStrings(tok, prompt_len, stops, stop_event)])
        sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
        with torch.no_grad():
            out = self.model.generate(**batch, max_new_tokens=max_new_tokens, stopping_criteria=criteria,
                                      pad_token_id=tok.pad_token_id or tok.eos_token_id, streamer=streamer,
                                      **sampling)
        return tok.batch_decode(out[:, prompt_len:], skip_special_tokens=True)

    def describe(self, encodings: Sequence[str], max_new_tokens: int = 48, batch_size: int = 8) -> list[str]:
        """One description per encoding, greedy, cut at the end of the description."""
        out: list[str] = []
        for i in range(0, len(encodings), batch_size):
            prompts = [build_prompt(e, self.encoder) for e in encodings[i : i + batch_size]]
            out += [cut_at_stop(t) for t in self._generate(prompts, max_new_tokens, 0.0, STOP_STRINGS)]
        return out

    def answer_questions(self, encodings: Sequence[str], questions: Sequence[str], max_new_tokens: int = 96,
                         descriptions: Sequence[str] | None = None) -> list[str]:
        """Greedy answers, one question per encoding, as a first chat turn (`build_question`), or after
        the interpreter's own ``descriptions``; one line each."""
        descriptions = [None] * len(questions) if descriptions is None else descriptions
        prompts = [build_question(e, q.strip(), self.encoder, d)
                   for e, q, d in zip(encodings, questions, descriptions, strict=True)]
        return [cut_at_stop(t) for t in self._generate(prompts, max_new_tokens, 0.0, STOP_STRINGS)]

    def stream(self, prompt: str, max_new_tokens: int = 128, temperature: float = 0.0,
               stop_event: threading.Event | None = None) -> Iterator[str]:
        """Yield text pieces as they are generated; ``stop_event.set()`` ends generation early."""
        from transformers import TextIteratorStreamer

        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        stop_event = stop_event or threading.Event()
        worker = threading.Thread(target=self._generate, daemon=True,
                                  args=([prompt], max_new_tokens, temperature, CHAT_STOP_STRINGS, stop_event, streamer))
        worker.start()
        hold = max(len(s) for s in CHAT_STOP_STRINGS) - 1  # a tail that may be the start of a stop string
        text, emitted = "", 0
        try:
            for piece in streamer:
                text += piece
                cut = min((text.find(s) for s in CHAT_STOP_STRINGS if s in text), default=-1)
                if cut != -1:
                    if cut > emitted:
                        yield text[emitted:cut]
                    return
                if len(text) - hold > emitted:
                    yield text[emitted : len(text) - hold]
                    emitted = len(text) - hold
            if len(text) > emitted:
                yield text[emitted:]
        finally:
            stop_event.set()
            worker.join(timeout=60)
