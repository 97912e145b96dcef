"""Benchmark the synthetic shape generator (§3.1: 15,000 images) and optionally save a sample grid.

.venv/bin/python scripts/bench_shapes.py                      # 15,000 images, all CPU threads
.venv/bin/python scripts/bench_shapes.py --workers 1 --repeats 1
.venv/bin/python scripts/bench_shapes.py --grid /tmp/shapes_grid.png
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from dataclasses import dataclass

import numpy as np

from interp.data.shapes import generate_shapes
from interp.language import SYNTH_SHAPES


@dataclass(frozen=True)
class BenchConfig:
    n: int = 15_000
    """Images per run (the paper's D_synth size)."""
    seed: int = 0
    """Seed of the first run; run r uses seed + r."""
    repeats: int = 3
    """Timed runs; the best is reported."""
    grid: str = ""
    """If set, save a PNG grid of 32 samples with their descriptions here."""

    def __post_init__(self) -> None:
        if self.n < 1 or self.repeats < 1:
            raise ValueError("need n >= 1 and repeats >= 1")


def save_grid(path: str, seed: int, count: int = 32, cols: int = 4, zoom: int = 6) -> None:
    """32 samples, enlarged, each with its description underneath."""
    from PIL import Image, ImageDraw

    batch = generate_shapes(count, seed)
    tile_w, tile_h = 28 * zoom + 10, 28 * zoom + 40
    sheet = Image.new("RGB", (cols * tile_w, -(-count // cols) * tile_h), (60, 60, 60))
    draw = ImageDraw.Draw(sheet)
    for k, (image, text) in enumerate(zip(batch.images, batch.descriptions, strict=True)):
        row, col = divmod(k, cols)
        sheet.paste(
            Image.fromarray(image).resize((28 * zoom, 28 * zoom), Image.NEAREST), (col * tile_w + 5, row * tile_h + 5)
        )
        text = text.removeprefix("Image with ")
        cut = text.find(", ", 25)
        if len(text) > 30 and cut > 0:
            text = text[: cut + 1] + "\n" + text[cut + 2 :]
        draw.text((col * tile_w + 5, row * tile_h + 28 * zoom + 7), text, fill=(255, 255, 0))
    sheet.save(path)
    print(f"grid of {count} samples -> {path}")


def main(cfg: BenchConfig) -> None:
    print(f"generate_shapes(n={cfg.n}), one thread, {os.cpu_count()} CPU(s) on this machine")
    times = []
    for r in range(cfg.repeats):
        start, cpu = time.perf_counter(), time.process_time()
        batch = generate_shapes(cfg.n, cfg.seed + r)
        times.append(time.perf_counter() - start)
        cpu = time.process_time() - cpu  # unlike wall time, not inflated by other processes
        print(f"  run {r}: {times[-1]:.2f} s wall, {cpu:.2f} s CPU, {cfg.n / times[-1]:,.0f} images/s")
    best = min(times)
    print(f"best: {best:.2f} s, {cfg.n / best:,.0f} images/s")
    totals = np.bincount(batch.counts.sum(1), minlength=5)
    print("shapes per image:", {t: int(c) for t, c in enumerate(totals) if c})
    print("shapes per type:", dict(zip(SYNTH_SHAPES, batch.counts.sum(0).tolist(), strict=True)))
    if cfg.grid:
        save_grid(cfg.grid, cfg.seed)


def parse_args(argv: list[str] | None = None) -> BenchConfig:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in dataclasses.fields(BenchConfig):
        parser.add_argument(f"--{f.name}", type=type(f.default), default=f.default)
    return BenchConfig(**vars(parser.parse_args(argv)))


if __name__ == "__main__":
    main(parse_args())
