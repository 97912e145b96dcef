"""Where a reader's stored D_syn_eval descriptions go wrong: the LLM against the connector's own count head.

Reads the predictions `bench_reader.py` / `evaluate` stored for a reader run, decodes their encodings
back to bins, runs the run's connector alone (no LLM) and prints how many wrong descriptions had the
count head right, and how many are "a count moved": the right shape types and total, one count written
on another listed type ("1 vertical, 2 ellipses" for "2 verticals, 1 ellipse").

.venv/bin/python scripts/reader_errors.py runs/reader-f
.venv/bin/python scripts/reader_errors.py assets/interpreters/reader-smollm2 --examples 10
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from interp.evaluation.evaluate import slug
from interp.interpreters.probe import bins_from_encodings
from interp.interpreters.reader import READER_CONFIG, READER_FILE, Connector, ReaderConfig
from interp.language import SHAPES, parse_description
from interp.settings import Paths
from interp.store.db import Store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="a reader run folder (runs/NAME or assets/interpreters/NAME)")
    ap.add_argument("--set", default="syn_eval", dest="eval_set")
    ap.add_argument("--examples", type=int, default=5, help="wrong descriptions to print")
    args = ap.parse_args()
    folder = Path(args.run)
    folder = folder / "adapter" if (folder / "adapter" / READER_FILE).exists() else folder
    meta = json.loads((folder / READER_CONFIG).read_text())
    connector = Connector(ReaderConfig.from_dict(meta["connector"]))
    connector.load_state_dict(load_file(str(folder / READER_FILE)))
    connector.eval()

    rows = Store(Paths.from_env().db_path).get_predictions(slug(args.run), args.eval_set)
    if rows.empty:
        raise SystemExit(f"no stored {args.eval_set} predictions for {slug(args.run)}: run bench_reader.py first")
    bins = torch.as_tensor(np.asarray(bins_from_encodings(list(rows["prompt_encoding"]), "paper")), dtype=torch.long)
    with torch.no_grad():
        head = torch.cat([connector.features(bins[i : i + 256])[2][:, : len(SHAPES)].argmax(-1)
                          for i in range(0, len(bins), 256)]).numpy()
    pred = np.stack([parse_description(p).vector for p in rows["prediction"]])
    truth = np.stack([parse_description(t).vector for t in rows["truth"]])
    llm_ok, head_ok = (pred == truth).all(1), (head == truth).all(1)
    moved = ~llm_ok & ((pred > 0) == (truth > 0)).all(1) & (pred.sum(1) == truth.sum(1))
    n = len(rows)
    print(f"{slug(args.run)} on {args.eval_set} (n = {n}): descriptions exact {llm_ok.mean():.3f}, "
          f"count head exact {head_ok.mean():.3f}")
    print(f"wrong descriptions {(~llm_ok).sum()}: count head right in {(~llm_ok & head_ok).sum()}, "
          f"a count moved between listed types in {moved.sum()} (count head right in {(moved & head_ok).sum()})")
    print(f"right descriptions where the count head was wrong: {(llm_ok & ~head_ok).sum()}")
    for i in np.flatnonzero(~llm_ok)[: args.examples]:
        print(f"  #{rows['sample_index'].iloc[i]}: {rows['prediction'].iloc[i]!r}  truth {rows['truth'].iloc[i]!r}")


if __name__ == "__main__":
    main()
