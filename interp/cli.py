"""``python -m interp <command>``: one small function per command, the work lives in the modules."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from interp.settings import Paths

COMMANDS: dict[str, Callable[[argparse.Namespace, Paths], int]] = {}


def command(name: str) -> Callable:
    def register(fn: Callable[[argparse.Namespace, Paths], int]) -> Callable:
        COMMANDS[name] = fn
        return fn
    return register


def _print_json(obj: object) -> None:
    print(json.dumps(obj, indent=None, default=float))


# --- setup and data ---------------------------------------------------------------------------

@command("setup")
def cmd_setup(args: argparse.Namespace, paths: Paths) -> int:
    from interp.bootstrap import ensure_all

    for line in ensure_all(paths, fetch_models=not args.no_models):
        print(f"[setup] {line}")
    return 0


@command("mnist")
def cmd_mnist(args: argparse.Namespace, paths: Paths) -> int:
    from interp.mnist import load_mnist

    data = load_mnist(paths.data_dir)
    _print_json({"source": data.source, "n_train": len(data.train), "n_test": len(data.test)})
    return 0


# --- target CNN ---------------------------------------------------------------------------------

@command("target train")
def cmd_target_train(args: argparse.Namespace, paths: Paths) -> int:
    from interp.configs import config_from_args
    from interp.mnist import load_mnist
    from interp.target import TargetConfig, save_target, train_target

    cfg = config_from_args(TargetConfig, args)
    data = load_mnist(paths.data_dir)
    print(f"MNIST from {data.source}: {len(data.train)} train / {len(data.test)} test images")
    model, summary = train_target(data, cfg)
    out = Path(args.out) if args.out else paths.target_dir
    save_target(model, out, summary)
    print(f"test accuracy {summary['accuracy']:.4f} on {summary['n']} images ({data.source}); saved to {out}")
    return 0


@command("target eval")
def cmd_target_eval(args: argparse.Namespace, paths: Paths) -> int:
    from interp.mnist import load_mnist
    from interp.target import evaluate_target, load_target

    data = load_mnist(paths.data_dir)
    model = load_target(Path(args.checkpoint) if args.checkpoint else paths.target_dir)
    result = {"accuracy": evaluate_target(model, data.test), "n": len(data.test), "source": data.source}
    if args.json:
        _print_json(result)
    else:
        print(f"accuracy {result['accuracy']:.4f} on {result['n']} test images from {result['source']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from interp.configs import add_config_args
    from interp.target import TargetConfig

    parser = argparse.ArgumentParser(prog="python -m interp", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("setup", help="fetch data and models, create the store (idempotent)")
    p.add_argument("--no-models", action="store_true", help="skip fetching the offline LLM")
    p.set_defaults(cmd="setup")

    p = sub.add_parser("mnist", help="load MNIST and report its source and size")
    p.set_defaults(cmd="mnist")

    target = sub.add_parser("target", help="train or evaluate the target CNN").add_subparsers(
        dest="target_cmd", required=True, metavar="ACTION")
    p = target.add_parser("train", help="train the target CNN on MNIST (seeded, ~1-2 min on 2 cores)")
    add_config_args(p, TargetConfig)
    p.add_argument("--out", help="checkpoint folder (default: assets/target)")
    p.set_defaults(cmd="target train")
    p = target.add_parser("eval", help="accuracy of the target CNN on the held-out test split")
    p.add_argument("--checkpoint", help="checkpoint folder (default: assets/target)")
    p.add_argument("--json", action="store_true", help="print {accuracy, n, source} as JSON")
    p.set_defaults(cmd="target eval")

    for register in EXTRA_PARSERS:
        register(sub)
    return parser


# Later command groups append a function (subparsers) -> None here.
EXTRA_PARSERS: list[Callable[[argparse._SubParsersAction], None]] = []


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.cmd](args, Paths.from_env())
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
