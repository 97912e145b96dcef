"""The neural interpreter I behind one interface, and loading one from a spec.

The app, the evaluator and the tests talk to the small ``Interpreter`` interface; behind it sits the
paper's text interpreter (`interp.interpreters.text`, with or without its LoRA adapter: the paper's
before/after), the activation reader (`interp.interpreters.reader`) or a baseline
(`interp.interpreters.probe`, `interp.evaluation.baselines`). `load_interpreter` turns a spec (an
adapter or run folder, ``base:PRESET``) into the right one.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from interp.encoding.thresholds import ThresholdSet
from interp.interpreters.dataset import manifest_layer
from interp.interpreters.models import load_model, load_tokenizer, resolve_device
from interp.interpreters.probe import PROBE_WEIGHTS, ProbeInterpreter
from interp.interpreters.reader import READER_FILE, ReaderInterpreter, load_reader
from interp.interpreters.text import HFInterpreter
from interp.interpreters.training import cpu_has_bf16


class Interpreter(Protocol):
    """What every interpreter offers; ``encoder`` and ``thresholds`` say how to encode its input (and ``layer``,
    where it has one, which target layer's maps: read with `interp.pipeline.interpreter_layer`, conv1 without)."""

    name: str
    encoder: str
    thresholds: Any

    def describe(self, encodings: Sequence[str], max_new_tokens: int = 48) -> list[str]: ...

    def stream(self, prompt: str, max_new_tokens: int = 128, temperature: float = 0.0,
               stop_event: threading.Event | None = None) -> Iterator[str]: ...


def read_interpreter_info(adapter_dir: Path) -> dict:
    """preset, layer (conv1 for a dataset from before layers), encoder, threshold set and kind ('text' or
    'reader') of an adapter (from its run_config.json)."""
    cfg_path = Path(adapter_dir) / "run_config.json"
    if not cfg_path.exists():
        raise FileNotFoundError(f"{adapter_dir} has no run_config.json: not an adapter saved by `interp finetune`")
    cfg = json.loads(cfg_path.read_text())
    manifest = cfg.get("dataset_manifest") or {}
    kind = "reader" if (Path(adapter_dir) / READER_FILE).exists() else "text"
    return {"preset": cfg["finetune"]["preset"], "layer": manifest_layer(manifest),
            "encoder": manifest.get("encoder", "paper"), "threshold_set": manifest.get("threshold_set"),
            "kind": kind, "run_config": cfg}


def load_interpreter(spec: str, models_dir: Path, device: str = "auto", bf16: bool | None = None) -> Any:
    """``spec``: an adapter folder (a run's ``adapter/`` or a shipped one), a run folder, a probe folder, or
    ``base:PRESET``.

    An adapter folder holding a connector (``reader.safetensors``) loads as a `ReaderInterpreter`; a folder
    saved by `baseline probe` (``model.safetensors``) as a `ProbeInterpreter`.

    ``base:PRESET`` is the pre-trained model without adapter (the paper's before-fine-tuning column);
    it reads the paper encoding unless a later caller sets ``encoder``.

    ``bf16`` (readers): bf16 autocast; None: on where the reader was trained under it and this CPU has
    native bf16 (1.8× faster descriptions; the shipped reader: 0.906 / 0.963 exact / F1 against 0.912 /
    0.966 in fp32, README "Results").
    """

    device = resolve_device(device)
    if spec.startswith("base:"):
        preset = spec.split(":", 1)[1]
        model = load_model(preset, models_dir, device=device).eval()
        return HFInterpreter(model, load_tokenizer(preset, models_dir), name=spec, encoder="paper")
    if (Path(spec) / PROBE_WEIGHTS).exists():
        return ProbeInterpreter.load(Path(spec))
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
        if bf16 is None:
            bf16 = device == "cpu" and bool(info["run_config"].get("bf16")) and cpu_has_bf16()
        return ReaderInterpreter(load_reader(adapter, model, tokenizer), tokenizer, name=str(spec),
                                 encoder=info["encoder"], thresholds=tset, info=info, bf16=bf16)
    return HFInterpreter(model, tokenizer, name=str(spec), encoder=info["encoder"], thresholds=tset, info=info,
                         layer=info["layer"])
