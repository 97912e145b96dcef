"""Benchmark the exploration pipeline on this machine and print the figures (nothing is asserted).

1. Interactive: a 280×280 canvas drawing → MNIST-style 28×28 (`prepare_drawing`) → prediction,
   conv1 activations, bins and encoding (`analyze_image`): ms per image, median of `runs`. This is
   the server-side compute behind a new stroke on the Draw & upload page (target: well under 100 ms).
2. Batch: `generate_shapes` → `capture_conv1` → `encode_activations` over `n` synthetic images:
   images/s, per stage and end to end, for each encoder.

.venv/bin/python scripts/bench_pipeline.py
.venv/bin/python scripts/bench_pipeline.py --n 2000 --runs 50 --encoders paper compact
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from dataclasses import dataclass

import numpy as np

from interp.data.images import prepare_drawing
from interp.data.shapes import generate_shapes
from interp.encoding.encoders import encode_activations, list_encoders
from interp.encoding.thresholds import ThresholdSet
from interp.pipeline import analyze_image
from interp.settings import Paths
from interp.target.activations import capture_conv1
from interp.target.cnn import load_target


@dataclass(frozen=True)
class BenchConfig:
    runs: int = 50
    """Timed repetitions of the interactive path; the median is reported."""
    n: int = 2_000
    """Synthetic images in the batch benchmark."""
    seed: int = 0
    """Seed of the synthetic batch."""
    encoders: tuple[str, ...] = ("paper", "compact")
    """Encoders to time (registered names)."""

    def __post_init__(self) -> None:
        if self.runs < 1 or self.n < 1:
            raise ValueError("need runs >= 1 and n >= 1")
        unknown = set(self.encoders) - set(list_encoders())
        if unknown:
            raise ValueError(f"unknown encoders {sorted(unknown)}; registered: {list_encoders()}")


def canvas_drawing(k: int) -> np.ndarray:
    """RGBA [280, 280, 4] like the app's canvas: a white '7' (stroke 18 px) on opaque black, varied by k."""
    from PIL import Image, ImageDraw

    img = Image.new("RGBA", (280, 280), (0, 0, 0, 255))
    draw = ImageDraw.Draw(img)
    dx = k % 20
    draw.line([(70 + dx, 60), (210 + dx, 60), (120 + dx, 230)], fill=(255, 255, 255, 255), width=18, joint="curve")
    return np.asarray(img)


def bench_interactive(model, thresholds: ThresholdSet, encoder: str, runs: int) -> tuple[float, float]:
    """(median ms for drawing → 28×28, median ms for drawing → encoding) over `runs` distinct drawings."""
    drawings = [canvas_drawing(k) for k in range(runs)]
    analyze_image(model, prepare_drawing(drawings[0]), thresholds, encoder)  # warm-up (torch, caches)
    prep, total = [], []
    for rgba in drawings:
        t0 = time.perf_counter()
        image = prepare_drawing(rgba)
        t1 = time.perf_counter()
        analyze_image(model, image, thresholds, encoder)
        t2 = time.perf_counter()
        prep.append(t1 - t0)
        total.append(t2 - t0)
    return statistics.median(prep) * 1e3, statistics.median(total) * 1e3


def bench_batch(model, thresholds: ThresholdSet, cfg: BenchConfig) -> None:
    t0 = time.perf_counter()
    images = generate_shapes(cfg.n, cfg.seed).images
    t1 = time.perf_counter()
    acts = capture_conv1(model, images)
    t2 = time.perf_counter()
    gen_s, act_s = t1 - t0, t2 - t1
    print(f"  generate_shapes   {cfg.n / gen_s:10,.0f} images/s  ({gen_s:.2f} s)")
    print(f"  capture_conv1     {cfg.n / act_s:10,.0f} images/s  ({act_s:.2f} s)")
    for name in cfg.encoders:
        t3 = time.perf_counter()
        texts = encode_activations(acts, thresholds, name)
        enc_s = time.perf_counter() - t3
        chars = np.mean([len(t) for t in texts])
        total = gen_s + act_s + enc_s
        print(f"  encode {name:<10} {cfg.n / enc_s:10,.0f} images/s  ({enc_s:.2f} s, {chars:,.0f} chars each)"
              f"  -> end to end {cfg.n / total:,.0f} images/s")


def main(cfg: BenchConfig) -> None:
    import torch

    paths = Paths.from_env()
    model = load_target(paths.target_dir)
    thresholds = ThresholdSet.load(paths.assets_dir / "thresholds" / "default.json")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; thresholds '{thresholds.name}'")
    print(f"\nInteractive: canvas drawing -> 28x28 -> prediction + activations + encoding (median of {cfg.runs})")
    for name in cfg.encoders:
        prep_ms, total_ms = bench_interactive(model, thresholds, name, cfg.runs)
        print(f"  {name:<10} {total_ms:6.2f} ms per image  (preprocessing {prep_ms:.2f} ms)")
    print(f"\nBatch: generate -> activations -> encode, {cfg.n:,} synthetic images")
    bench_batch(model, thresholds, cfg)


def parse_args(argv: list[str] | None = None) -> BenchConfig:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for f in dataclasses.fields(BenchConfig):
        if f.name == "encoders":
            parser.add_argument("--encoders", nargs="+", default=list(f.default))
        else:
            parser.add_argument(f"--{f.name}", type=type(f.default), default=f.default)
    args = vars(parser.parse_args(argv))
    args["encoders"] = tuple(args["encoders"])
    return BenchConfig(**args)


if __name__ == "__main__":
    main(parse_args())
