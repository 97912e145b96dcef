"""Benchmark interpreters on the held-out sets and print the README's results rows (nothing is asserted).

For each interpreter spec: Table 1 metrics on D_syn_eval (n images, stored in the store like
`evaluate`), the held-out count-question accuracy (one grounded question per image), seconds per
description and per answer on this machine, and mnist_eval: the store's human MNIST annotations,
or else the 60 shipped ones in `assets/annotations/` (one annotator; see its README), as `evaluate` does. The default compares the shipped reader with the shipped text interpreter.

.venv/bin/python scripts/bench_reader.py
.venv/bin/python scripts/bench_reader.py --n 500 --specs assets/interpreters/reader-smollm2 runs/NAME
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from interp.evaluation.evaluate import (
    evaluate,
    evaluate_questions,
    load_eval_set,
    slug,
)
from interp.interpreters.questions import answer_all, eval_questions, score_answers
from interp.interpreters.registry import load_interpreter
from interp.language import SHAPES, counts_to_vector
from interp.settings import Paths
from interp.store.db import Store

DEFAULT_SPECS = ("assets/interpreters/reader-smollm2", "assets/interpreters/smollm2-compact")


def bench(spec: str, paths: Paths, n: int, n_questions: int, batch_size: int, fp32: bool = False) -> dict:
    store = Store(paths.db_path)
    t0 = time.perf_counter()
    interpreter = load_interpreter(spec, paths.models_dir, bf16=False if fp32 else None)
    load_s = time.perf_counter() - t0
    run_id = slug(spec)
    row = {"spec": spec, "run_id": run_id, "kind": getattr(interpreter, "kind", "text"), "load_s": load_s}
    es = load_eval_set("syn_eval", interpreter, paths, n=n)
    t0 = time.perf_counter()
    row["syn_eval"] = evaluate(interpreter, es.rows, run_id, store, batch_size, progress=False,
                               eval_set="syn_eval", config={"spec": spec, **es.config()}, path=spec)
    row["describe_s_per_sample"] = (time.perf_counter() - t0) / len(es.rows)
    if hasattr(interpreter, "read_counts"):  # the reader's own count head: what its shape tokens carry
        truth = [[r["counts"].get(s, 0) for s in SHAPES] for r in es.rows]
        heads = interpreter.read_counts([r["encoding"] for r in es.rows])
        row["count_head_exact"] = float((heads == truth).all(1).mean())
    if n_questions:
        asked = es.rows[:n_questions]
        t0 = time.perf_counter()
        row["qa"] = evaluate_questions(interpreter, asked, run_id, store)  # as the Chat page asks (stored)
        row["answer_s_per_sample"] = (time.perf_counter() - t0) / len(asked)
        if row["qa"]["describe_first"]:  # the same questions as a first turn, for comparison (not stored)
            questions = eval_questions(np.array([counts_to_vector(r["counts"]) for r in asked]), 0)
            t0 = time.perf_counter()
            row["qa_direct"] = score_answers(questions, answer_all(interpreter, [r["encoding"] for r in asked],
                                                                   questions))
            row["direct_s_per_sample"] = (time.perf_counter() - t0) / len(asked)
    try:  # the store's annotations, else the 60 shipped ones (`evaluate.shipped_annotations`)
        mes = load_eval_set("mnist_eval", interpreter, paths, n=n)
        row["mnist_eval"] = evaluate(interpreter, mes.rows, run_id, store, batch_size, progress=False,
                                     eval_set="mnist_eval", config={"spec": spec, **mes.config()}, path=spec)
    except (ValueError, OSError) as exc:
        row["mnist_eval_error"] = str(exc)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--specs", nargs="+", default=list(DEFAULT_SPECS), help="interpreter folders or base:PRESET")
    parser.add_argument("--n", type=int, default=500, help="D_syn_eval images (the issue's target: 500)")
    parser.add_argument("--questions", type=int, default=500, help="images that also get one count question (0: none)")
    parser.add_argument("--batch-size", type=int, default=50, help="encodings per describe call")
    parser.add_argument("--fp32", action="store_true", help="readers in fp32 even where bf16 autocast is the default")
    args = parser.parse_args()
    paths = Paths.from_env()
    print("| interpreter | set | n | exact | precision | recall | F1 | IoU | count-QA | s/description | s/answer |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for spec in args.specs:
        r = bench(spec, paths, args.n, args.questions, args.batch_size, args.fp32)
        for name in ("syn_eval", "mnist_eval"):
            m = r.get(name)
            if m is None:
                continue
            qa = r.get("qa", {}).get("accuracy") if name == "syn_eval" else None
            print(f"| {r['run_id']} ({r['kind']}) | {name} | {m['n']} | {m['accuracy']:.3f} | {m['precision']:.3f} | "
                  f"{m['recall']:.3f} | {m['f1']:.3f} | {m['iou']:.3f} | "
                  f"{'' if qa is None else f'{qa:.3f}'} | {r['describe_s_per_sample']:.3f} | "
                  f"{r.get('answer_s_per_sample', float('nan')):.3f} |")
        for key, how in (("qa", "as Chat asks"), ("qa_direct", "asked directly, as a first turn")):
            if key in r:
                print(f"    count-QA {r[key]['accuracy']:.3f} ({how}"
                      + ("; after its own description" if r[key].get("describe_first") else "") + ") by kind: "
                      + ", ".join(f"{k} {v['accuracy']:.3f} (n {v['n']})" for k, v in r[key]["by_kind"].items()))
        if "direct_s_per_sample" in r:
            print(f"    {r['direct_s_per_sample']:.3f} s an answer asked directly")
        if "mnist_eval_error" in r or "mnist_eval" not in r:
            print(f"    mnist_eval: {r.get('mnist_eval_error', 'no human MNIST annotations in the store')}")
        if "count_head_exact" in r:
            print(f"    the connector's count head alone: {r['count_head_exact']:.3f} exact on syn_eval")
        print(f"    load {r['load_s']:.1f} s")


if __name__ == "__main__":
    main()
