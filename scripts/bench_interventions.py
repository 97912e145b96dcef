"""Benchmark interventions on this machine and print the figures (nothing is asserted).

1. One intervention on one image, re-described: `intervene_image` (the target twice, both encodings
   described in one batch) with the shipped interpreter; median seconds over ``runs`` MNIST digits
   (issue 17's target: < 1 s on CPU).
2. The effect map: each of the 8 filters ablated over ``n`` held-out synthetic images, interpreter and
   probe, with the digit accuracy on ``n_mnist`` MNIST test images (target: < 5 min for 8 × 200).
   Saved as runs/<name>/, so the Intervene page shows it; its summary sentences are printed.

.venv/bin/python scripts/bench_interventions.py
.venv/bin/python scripts/bench_interventions.py --n 200 --name effects-reader-200
"""

from __future__ import annotations

import argparse
import statistics
import time

from interp.data.mnist import load_mnist
from interp.evaluation.effects import EffectConfig, run_effects
from interp.evaluation.evaluate import interpreter_thresholds
from interp.interpreters.registry import load_interpreter
from interp.interventions import Intervention, intervene_image
from interp.settings import Paths
from interp.store.db import Store
from interp.target.cnn import load_target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--interpreter", default="assets/interpreters/reader-smollm2")
    parser.add_argument("--runs", type=int, default=10, help="images for the one-intervention latency")
    parser.add_argument("--n", type=int, default=200, help="effect map: held-out synthetic images (0: skip)")
    parser.add_argument("--n-mnist", type=int, default=1000)
    parser.add_argument("--name", default="effects-bench", help="saved as runs/NAME/effects.json")
    args = parser.parse_args()
    paths = Paths.from_env()
    t0 = time.perf_counter()
    interpreter = load_interpreter(args.interpreter, paths.models_dir)
    print(f"load {args.interpreter}: {time.perf_counter() - t0:.1f} s")
    model, test = load_target(paths.target_dir), load_mnist(paths.data_dir).test
    thresholds = interpreter_thresholds(interpreter, Store(paths.db_path))

    first, again, changed = [], [], 0
    for i in range(args.runs + 1):
        cache: dict[str, str] = {}  # as the page keeps it: the original is read once per image
        t0 = time.perf_counter()
        r = intervene_image(model, test.images[i], [Intervention(i % 8, "ablate")], thresholds, interpreter.encoder,
                            interpreter.describe, cache)
        t1 = time.perf_counter()
        intervene_image(model, test.images[i], [Intervention(i % 8, "scale", 0.5)], thresholds, interpreter.encoder,
                        interpreter.describe, cache)
        if i:  # the first call warms up
            first.append(t1 - t0)
            again.append(time.perf_counter() - t1)
            changed += bool(r.changed)
    print(f"one intervention on a new image (both read, one batch of 2): median {statistics.median(first):.3f} s; "
          f"the next intervention on it (only the changed image read): median {statistics.median(again):.3f} s, "
          f"max {max(again):.3f} s; over {len(first)} MNIST digits ({changed} read differently after ablation)")

    if args.n:
        path, fx = run_effects(interpreter, paths, EffectConfig(n=args.n, n_mnist=args.n_mnist), args.name)
        print(f"effect map, 8 filters ablated × {args.n} images (+ {args.n_mnist} MNIST digits): "
              f"{fx.seconds:.0f} s → {path}")
        for line in fx.summary():
            print(f"  {line}")


if __name__ == "__main__":
    main()
