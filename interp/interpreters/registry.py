"""The neural interpreter I: encoded activations in, a description (or an answer) out.

The app, the evaluator and the tests talk to the small ``Interpreter`` interface; behind it sits a
local transformers model with or without its LoRA adapter (the paper's before/after), or a fake.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from interp.interpreters.prompt import INPUT_SIGNIFIER, build_prompt, build_question
from interp.interpreters.reader import READER_FILE
from interp.interpreters.stopping import StopOnStrings

STOP_STRINGS = ("\n", "###", INPUT_SIGNIFIER)
"""A description is one line: generation stops at a newline or the next section marker (§4.2)."""
CHAT_STOP_STRINGS = ("###",)
"""A chat answer may span lines but ends at the next section marker."""


class Interpreter(Protocol):
    """What every interpreter offers; ``encoder`` and ``thresholds`` say how to encode its input."""

    name: str
    encoder: str
    thresholds: Any

    def describe(self, encodings: Sequence[str], max_new_tokens: int = 48) -> list[str]: ...

    def stream(self, prompt: str, max_new_tokens: int = 128, temperature: float = 0.0,
               stop_event: threading.Event | None = None) -> Iterator[str]: ...


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

    def answer_questions(self, encodings: Sequence[str], questions: Sequence[str], max_new_tokens: int = 64) -> list[str]:
        """Greedy answers, one question per encoding, as a first chat turn (`build_question`); one line each."""
        prompts = [build_question(e, q.strip(), self.encoder) for e, q in zip(encodings, questions, strict=True)]
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


@dataclass
class FakeInterpreter:
    """Answers from a fixed function: for tests and for the app without any model."""

    answer: Any
    name: str = "fake"
    encoder: str = "paper"
    thresholds: Any = None

    def describe(self, encodings: Sequence[str], max_new_tokens: int = 48) -> list[str]:
        return [self.answer(e) for e in encodings]

    def stream(self, prompt: str, max_new_tokens: int = 128, temperature: float = 0.0,
               stop_event: threading.Event | None = None) -> Iterator[str]:
        for word in str(self.answer(prompt)).split(" "):
            if stop_event is not None and stop_event.is_set():
                return
            yield word + " "


def read_interpreter_info(adapter_dir: Path) -> dict:
    """preset, encoder, threshold set and kind ('text' or 'reader') of an adapter (from its run_config.json)."""
    cfg_path = Path(adapter_dir) / "run_config.json"
    if not cfg_path.exists():
        raise FileNotFoundError(f"{adapter_dir} has no run_config.json: not an adapter saved by `interp finetune`")
    cfg = json.loads(cfg_path.read_text())
    manifest = cfg.get("dataset_manifest") or {}
    kind = "reader" if (Path(adapter_dir) / READER_FILE).exists() else "text"
    return {"preset": cfg["finetune"]["preset"], "encoder": manifest.get("encoder", "paper"),
            "threshold_set": manifest.get("threshold_set"), "kind": kind, "run_config": cfg}


def load_interpreter(spec: str, models_dir: Path, device: str = "auto") -> Any:
    """``spec``: an adapter folder (a run's ``adapter/`` or a shipped one), a run folder, or ``base:PRESET``.

    An adapter folder holding a connector (``reader.safetensors``) loads as a `ReaderInterpreter`.

    ``base:PRESET`` is the pre-trained model without adapter (the paper's before-fine-tuning column);
    it reads the paper encoding unless a later caller sets ``encoder``.
    """
    from interp.encoding.thresholds import ThresholdSet
    from interp.interpreters.models import load_model, load_tokenizer, resolve_device

    device = resolve_device(device)
    if spec.startswith("base:"):
        preset = spec.split(":", 1)[1]
        model = load_model(preset, models_dir, device=device).eval()
        return HFInterpreter(model, load_tokenizer(preset, models_dir), name=spec, encoder="paper")
    adapter = Path(spec)
    if (adapter / "adapter" / "adapter_config.json").exists():
        adapter = adapter / "adapter"
    if not (adapter / "adapter_config.json").exists():
        raise FileNotFoundError(f"no adapter in {spec}: give a run folder, an adapter folder or base:PRESET")
    from peft import PeftModel

    info = read_interpreter_info(adapter)
    base = load_model(info["preset"], models_dir, device=device)
    model = PeftModel.from_pretrained(base, str(adapter)).eval()
    tset = ThresholdSet.from_dict(info["threshold_set"]) if info["threshold_set"] else None
    tokenizer = load_tokenizer(info["preset"], models_dir)
    if info["kind"] == "reader":
        from interp.interpreters.reader import ReaderInterpreter, load_reader

        return ReaderInterpreter(load_reader(adapter, model, tokenizer), tokenizer, name=str(spec),
                                 encoder=info["encoder"], thresholds=tset, info=info)
    return HFInterpreter(model, tokenizer, name=str(spec), encoder=info["encoder"], thresholds=tset, info=info)
