"""Shared fixtures: seeding, isolated paths, the shipped target CNN."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from interp.settings import ROOT, Paths


@pytest.fixture(autouse=True)
def _seed() -> None:
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture
def paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Paths:
    """A Paths whose data, runs and store live in tmp_path (assets stay the committed ones)."""
    monkeypatch.setenv("N2W_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("N2W_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("N2W_DB", str(tmp_path / "data" / "interp.duckdb"))
    return Paths.from_env()


@pytest.fixture(scope="session")
def target_model():
    """The committed target CNN checkpoint (read-only; tests must not modify it)."""
    from interp.target.cnn import load_target

    return load_target(ROOT / "assets" / "target")


@pytest.fixture(scope="session")
def conv2_thresholds(target_model):
    """A conv2 ThresholdSet calibrated like the shipped conv1 default, on 40 generated images (seconds)."""
    from interp.data.shapes import generate_shapes
    from interp.encoding.thresholds import calibrate_thresholds
    from interp.target.activations import blank_response, capture

    acts = capture(target_model, generate_shapes(40, 12345).images, "conv2")
    return calibrate_thresholds(acts, blank_response(target_model, "conv2"), name="c2")


@pytest.fixture(scope="session")
def mnist():
    """Real MNIST from the project's data folder (setup fetched it)."""
    from interp.data.mnist import load_mnist

    return load_mnist(ROOT / "data")


# Tiny language models built in the test (never downloaded): the real code paths on CPU.
PROMPT = "Activations:\n### Input: fzzlmhvzz\n### Output: "
COMPLETION = "Image with 2 shapes: 1 corner, 1 ellipse\n"


def tiny_tokenizer(directory: Path):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([PROMPT, COMPLETION] * 20, vocab_size=300, min_frequency=1,
                            special_tokens=["<s>", "</s>", "<pad>"])
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    tok.save_pretrained(directory)
    return tok


def tiny_model(kind: str, directory: Path, vocab: int) -> None:
    from transformers import MistralConfig, MistralForCausalLM, MixtralConfig, MixtralForCausalLM

    common = dict(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                  bos_token_id=0, eos_token_id=1, pad_token_id=2)
    if kind == "mistral":
        model = MistralForCausalLM(MistralConfig(**common))
    else:
        model = MixtralForCausalLM(MixtralConfig(**common, num_local_experts=4, num_experts_per_tok=2))
    model.save_pretrained(directory)


def tiny_setup(tmp_path: Path, kind: str, data: Path) -> dict:
    """A tiny random model of ``kind`` with its tokenizer, beside a dataset folder: what fine-tuning tests need."""
    model_dir = tmp_path / f"tiny-{kind}"
    tok = tiny_tokenizer(model_dir)
    tiny_model(kind, model_dir, len(tok))
    return {"model": model_dir, "data": data, "tok": tok, "tmp": tmp_path}
