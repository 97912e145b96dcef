"""SmolLM2 tokens, characters and encode speed of each registered encoder (§3.2's encoding c).

Activations come from the shipped target CNN (a random stand-in conv1 if there is none yet) on
MNIST test digits and synthetic shapes; thresholds are calibrated on separate reference images.

.venv/bin/python scripts/bench_encoding.py                   # 300 MNIST + 300 shapes, all encoders
.venv/bin/python scripts/bench_encoding.py --encoders paper compact --n 1000
.venv/bin/python scripts/bench_encoding.py --derive-words    # re-derive compact's SINGLE_TOKEN_WORDS
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from interp.configs import add_config_args
from interp.encoding.encoders import (
    SINGLE_TOKEN_WORDS,
    WORD_ALPHABETS,
    bin_activations,
    get_encoder,
    list_encoders,
)
from interp.encoding.thresholds import ThresholdSet, bin_occupancy, calibrate_thresholds
from interp.settings import Paths

PRESET = "smollm2-135m"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class BenchConfig:
    n: int = 300
    """Samples per data set (MNIST test digits, synthetic shapes)."""
    reference: int = 2000
    """Reference images per data set for calibrating the thresholds."""
    seed: int = 0
    """Seed of the synthetic shapes (reference: seed + 1) and of the stand-in conv."""
    encoders: tuple[str, ...] = ()
    """Encoders to measure (default: all registered)."""
    derive_words: bool = False
    """Only re-derive compact's SINGLE_TOKEN_WORDS from the tokenizer and compare with the committed list."""

    def __post_init__(self) -> None:
        if self.n < 1 or self.reference < 1:
            raise ValueError("need n >= 1 and reference >= 1")


def load_smollm2_tokenizer(models_dir: Path) -> Any:
    """The fetched preset's tokenizer, else straight from the GGUF (slower); None if neither is here."""
    try:
        from interp.interpreters.models import load_tokenizer

        return load_tokenizer(PRESET, models_dir)
    except Exception:  # noqa: BLE001 - not fetched: try the bare GGUF below
        pass
    gguf_dir = models_dir / PRESET
    if (gguf_dir / GGUF_FILE).exists():
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(gguf_dir, gguf_file=GGUF_FILE)
    return None


def derive_single_token_words(tokenizer: Any) -> list[str]:
    """Words of 2–4 letters over WORD_ALPHABETS that the tokenizer reads as one token after a space."""
    words = []
    for length in range(1, len(WORD_ALPHABETS) + 1):
        for cells in itertools.product(range(5), repeat=length):
            w = "".join(WORD_ALPHABETS[k][lv] for k, lv in enumerate(cells))
            single = len(tokenizer.tokenize(" " + w)) == 1
            if length == 1 and not single:
                raise RuntimeError(f"one-letter word {w!r} is not a single token: compact's cost model is off")
            if length > 1 and single:
                words.append(w)
    return words


def conv1_source(paths: Paths, seed: int) -> tuple[Any, np.ndarray, str]:
    """(images uint8 [n,28,28] → activations [n,8,14,14], blank response [8], label)."""
    if (paths.target_dir / "model.safetensors").exists():
        from interp.target.activations import blank_response, capture_conv1
        from interp.target.cnn import load_target

        model = load_target(paths.target_dir)
        return (lambda images: capture_conv1(model, images)), blank_response(model), "shipped target CNN"
    torch.manual_seed(seed)
    stand_in = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 9, padding=4), torch.nn.ReLU(), torch.nn.MaxPool2d(2))

    @torch.no_grad()
    def capture(images: np.ndarray) -> np.ndarray:
        return stand_in(torch.as_tensor(images, dtype=torch.float32)[:, None] / 255).numpy()

    blank = capture(np.zeros((1, 28, 28), np.uint8))[0].reshape(8, -1).max(1)
    return capture, blank, "random stand-in conv1 (no target checkpoint yet)"


def main(cfg: BenchConfig) -> None:
    paths = Paths.from_env()
    tokenizer = load_smollm2_tokenizer(paths.models_dir)
    if cfg.derive_words:
        if tokenizer is None:
            sys.exit(f"no SmolLM2 tokenizer under {paths.models_dir}")
        words = derive_single_token_words(tokenizer)
        print(" ".join(words))
        same = set(words) == SINGLE_TOKEN_WORDS
        print(f"{len(words)} words; committed list {'matches' if same else 'DIFFERS'}")
        sys.exit(0 if same else 1)

    from interp.data.mnist import load_mnist
    from interp.data.shapes import generate_shapes

    capture, blank, source = conv1_source(paths, cfg.seed)
    mnist = load_mnist(paths.data_dir)
    ref_images = np.concatenate([mnist.train.images[: cfg.reference], generate_shapes(cfg.reference, cfg.seed + 1).images])
    thresholds: ThresholdSet = calibrate_thresholds(capture(ref_images), blank)
    data = {"MNIST test": mnist.test.images[: cfg.n], "synthetic shapes": generate_shapes(cfg.n, cfg.seed).images}
    names = list(cfg.encoders) or list_encoders()
    print(f"activations: {source}; thresholds: {thresholds.notes}")
    if tokenizer is None:
        print("no SmolLM2 tokenizer found: token counts skipped (fetch it with `python -m interp models fetch`)")
    else:
        bound = 8 * 196 * math.log2(5) / math.log2(len(tokenizer))
        print(f"tokenizer: SmolLM2 ({len(tokenizer):,} tokens); lossless limit {bound:.0f} tokens/sample")
    for label, images in data.items():
        bins = bin_activations(capture(images), thresholds)
        share = bin_occupancy(bins).mean(0)
        print(f"\n{label}: {len(images)} samples; bins z/l/m/h/v = " + " / ".join(f"{s:.0%}" for s in share))
        print(f"  {'encoder':10s} {'tokens mean':>11s} {'median':>7s} {'max':>5s} {'chars':>6s} {'samples/s':>10s}")
        for name in names:
            encoder = get_encoder(name)
            start = time.perf_counter()
            texts = encoder.encode_batch(bins)
            rate = len(texts) / (time.perf_counter() - start)
            chars = np.mean([len(t) for t in texts])
            if tokenizer is not None:
                tokens = np.array([len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]])
                counts = f"{tokens.mean():11.0f} {np.median(tokens):7.0f} {tokens.max():5d}"
            else:
                counts = f"{'-':>11s} {'-':>7s} {'-':>5s}"
            print(f"  {name:10s} {counts} {chars:6.0f} {rate:10,.0f}")


def parse_args(argv: list[str] | None = None) -> BenchConfig:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser, BenchConfig)
    args = vars(parser.parse_args(argv))
    args["encoders"] = tuple(args["encoders"] or ())
    return BenchConfig(**args)


if __name__ == "__main__":
    main(parse_args())
