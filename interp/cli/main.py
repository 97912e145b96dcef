"""``python -m interp <command>``: one small function per command, the work lives in the modules."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from interp.bootstrap import ensure_all, ensure_results, shipped_thresholds_path
from interp.cli import jobs as cli_jobs
from interp.cli.registry import COMMANDS, command
from interp.configs import add_config_args, config_from_args
from interp.data.images import prepare_upload
from interp.data.mnist import load_mnist
from interp.encoding.encoders import encode_activations, list_encoders
from interp.encoding.reference import calibrate_default
from interp.evaluation.baselines import run_majority, run_probe
from interp.evaluation.effects import EffectConfig, run_effects
from interp.evaluation.evaluate import DEFAULT_N, EVAL_SETS, eval_set_name, evaluate_spec, interpreter_thresholds
from interp.evaluation.metrics import main_metrics
from interp.evaluation.shipped import export_results
from interp.interpreters.dataset import DatasetConfig, build_dataset_in, token_stats
from interp.interpreters.finetune import finetune
from interp.interpreters.models import fetch_model, is_fetched, load_tokenizer
from interp.interpreters.presets import list_presets
from interp.interpreters.probe import ProbeConfig
from interp.interpreters.registry import load_interpreter
from interp.interpreters.training import FinetuneConfig, resolve_dataset
from interp.interventions import Intervention, intervene_image
from interp.language import parse_description
from interp.pipeline import encode_image
from interp.settings import Paths
from interp.store.db import Store
from interp.store.thresholds import resolve_threshold_set
from interp.target.cnn import TargetConfig, evaluate_target, load_target, save_target, train_target
from interp.target.layers import DEFAULT_LAYER, layer_of_shape, list_layers


def _print_json(obj: object) -> None:
    print(json.dumps(obj, indent=None, default=float))


# --- setup and data ---------------------------------------------------------------------------

@command("setup")
def cmd_setup(args: argparse.Namespace, paths: Paths) -> int:
    for line in ensure_all(paths, fetch_models=not args.no_models):
        print(f"[setup] {line}")
    return 0


@command("mnist")
def cmd_mnist(args: argparse.Namespace, paths: Paths) -> int:
    data = load_mnist(paths.data_dir)
    _print_json({"source": data.source, "n_train": len(data.train), "n_test": len(data.test)})
    return 0


# --- target CNN ---------------------------------------------------------------------------------

@command("target train")
def cmd_target_train(args: argparse.Namespace, paths: Paths) -> int:
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
    data = load_mnist(paths.data_dir)
    model = load_target(Path(args.checkpoint) if args.checkpoint else paths.target_dir)
    result = {"accuracy": evaluate_target(model, data.test), "n": len(data.test), "source": data.source}
    if args.json:
        _print_json(result)
    else:
        print(f"accuracy {result['accuracy']:.4f} on {result['n']} test images from {result['source']}")
    return 0


# --- language, encoding, thresholds -----------------------------------------------------------

@command("parse")
def cmd_parse(args: argparse.Namespace, paths: Paths) -> int:
    parsed = parse_description(args.text)
    result = {"counts": parsed.counts, "total": parsed.total, "well_formed": parsed.well_formed}
    if args.json:
        _print_json(result)
    else:
        items = ", ".join(f"{n} {s}" for s, n in parsed.counts.items() if n) or "no shapes"
        print(f"{items}; stated total {parsed.total}; well-formed: {parsed.well_formed}")
    return 0


@command("encode")
def cmd_encode(args: argparse.Namespace, paths: Paths) -> int:
    if (args.activations is None) == (args.image is None):
        raise ValueError("give exactly one of --activations A.npy or --image PNG")
    thresholds = resolve_threshold_set(args.thresholds, paths.db_path)
    if args.image:
        _, image = prepare_upload(Path(args.image).read_bytes())
        # the set's layer says which maps to encode: a conv2 set gives conv2's encoding
        print(encode_image(load_target(paths.target_dir), image, thresholds, args.encoder, layer=thresholds.layer))
        return 0
    acts = np.load(args.activations, allow_pickle=False)
    layer_of_shape(acts.shape, "activations", ndims=(3,))  # one sample; a set of another layer is refused below
    print(encode_activations(acts, thresholds, encoder=args.encoder)[0])
    return 0


@command("thresholds calibrate")
def cmd_thresholds_calibrate(args: argparse.Namespace, paths: Paths) -> int:
    tset, occupancy = calibrate_default(paths, name=args.name, n_synthetic=args.n_synthetic, n_mnist=args.n_mnist,
                                        layer=args.layer)
    if args.json_out:
        tset.save(Path(args.json_out))
    if args.ship:
        shipped = shipped_thresholds_path(paths.assets_dir, tset.layer)
        tset.save(shipped)
        print(f"written to {shipped}: setup loads it as the {tset.layer} default into a store that has none")

    Store(paths.db_path).save_threshold_set(tset.name, tset.as_array().tolist(), notes=tset.notes,
                                            make_default=args.make_default, layer=tset.layer)
    print(f"{tset.layer} threshold set '{tset.name}' saved"
          + (f" as the {tset.layer} default" if args.make_default else ""))
    print("filter   t1      t2      t3      t4     occupancy z/l/m/h/v")
    for f, (row, occ) in enumerate(zip(tset.as_array(), occupancy, strict=True)):
        print(f"{f:>6} " + " ".join(f"{t:7.3f}" for t in row) + "   " + " ".join(f"{o:4.0%}" for o in occ))
    return 0


@command("thresholds list")
def cmd_thresholds_list(args: argparse.Namespace, paths: Paths) -> int:
    df = Store(paths.db_path).list_threshold_sets()
    print(df[["name", "layer", "is_default", "notes"]].to_string(index=False) if len(df) else "no threshold sets")
    return 0


# --- datasets, models, fine-tuning -------------------------------------------------------------

@command("dataset build")
def cmd_dataset_build(args: argparse.Namespace, paths: Paths) -> int:
    cfg = config_from_args(DatasetConfig, args)
    manifest = build_dataset_in(paths, cfg)
    print(f"dataset '{cfg.name}' ({manifest['hash']}): {manifest['n_train']} train / {manifest['n_val']} val / "
          f"{manifest['n_test']} test, {manifest['n_mnist']} annotated MNIST, {cfg.layer}, encoder '{cfg.encoder}', "
          f"thresholds '{manifest['threshold_set']['name']}' → {paths.datasets_dir / cfg.name}")
    return 0


@command("dataset stats")
def cmd_dataset_stats(args: argparse.Namespace, paths: Paths) -> int:
    stats = token_stats(resolve_dataset(args.dataset, paths.datasets_dir),
                        load_tokenizer(args.tokenizer, paths.models_dir), limit=args.limit)
    _print_json(stats)
    return 0


@command("models list")
def cmd_models_list(args: argparse.Namespace, paths: Paths) -> int:
    for p in list_presets():
        mark = "fetched" if is_fetched(p.name, paths.models_dir) else "-"
        print(f"{p.name:<14} {mark:<8} lr {p.learning_rate:<8g} batch {p.batch_size}  {p.description}")
    return 0


@command("models fetch")
def cmd_models_fetch(args: argparse.Namespace, paths: Paths) -> int:
    print(f"{args.name}: {fetch_model(args.name, paths.models_dir)}")
    return 0


@command("finetune")
def cmd_finetune(args: argparse.Namespace, paths: Paths) -> int:
    cfg = config_from_args(FinetuneConfig, args)
    result = finetune(cfg, paths.models_dir, paths.datasets_dir)
    print(f"adapter saved to {result.adapter_dir} after {result.steps} steps")
    return 0


@command("metrics")
def cmd_metrics(args: argparse.Namespace, paths: Paths) -> int:
    result = main_metrics(Path(args.predictions))
    if args.json:
        _print_json(result)
    else:
        for key in ("n", "accuracy", "precision", "recall", "f1", "iou", "fdr", "fnr", "fpr", "bleu", "rouge1",
                    "rouge2", "edit_distance", "well_formed"):
            value = result[key]
            print(f"{key:<14} {value:.4f}" if isinstance(value, float) else f"{key:<14} {value}")
    return 0


# --- evaluation runs and baselines (§4, Table 1) ----------------------------------------------

TABLE1_KEYS = ("n", "accuracy", "bleu", "rouge1", "rouge2", "iou", "edit_distance", "precision", "recall", "f1",
               "fdr", "fnr", "fpr", "well_formed")


def _print_run_metrics(run_id: str, eval_set: str, metrics: dict, as_json: bool) -> None:
    if as_json:
        _print_json({"run_id": run_id, "eval_set": eval_set, **metrics})
        return
    print(f"run '{run_id}' on {eval_set}:")
    for key in TABLE1_KEYS:
        value = metrics[key]
        print(f"  {key:<14} {value:.4f}" if isinstance(value, float) else f"  {key:<14} {value}")
    if metrics.get("qa"):
        qa = metrics["qa"]
        print(f"  {'qa_accuracy':<14} {qa['accuracy']:.4f}  (n {qa['n']}; "
              + ", ".join(f"{k} {v['accuracy']:.2f}" for k, v in qa["by_kind"].items()) + ")"
              + ("; asked after its own description" if qa.get("describe_first") else ""))


@command("evaluate")
def cmd_evaluate(args: argparse.Namespace, paths: Paths) -> int:
    run_id, metrics = evaluate_spec(args.run, args.set, paths, n=args.n, batch_size=args.batch_size,
                                    run_id=args.run_id, offset=args.offset, dataset=args.dataset,
                                    progress=not args.json, questions=args.questions,
                                    describe_first=False if args.ask_directly else None)
    _print_run_metrics(run_id, eval_set_name(args.set), metrics, args.json)
    return 0


@command("baseline majority")
def cmd_baseline_majority(args: argparse.Namespace, paths: Paths) -> int:
    run_id, metrics = run_majority(paths, args.dataset, mode=args.mode, eval_set=args.set, n=args.n,
                                   offset=args.offset, run_id=args.run_id, progress=not args.json)
    _print_run_metrics(run_id, eval_set_name(args.set), metrics, args.json)
    return 0


@command("baseline probe")
def cmd_baseline_probe(args: argparse.Namespace, paths: Paths) -> int:
    os.nice(10)  # a side job: a fine-tuning run on the same CPU keeps priority
    cfg = config_from_args(ProbeConfig, args)
    run_id, metrics = run_probe(paths, args.dataset, cfg, eval_set=args.set, n=args.n, offset=args.offset,
                                run_id=args.run_id, out=Path(args.out) if args.out else None, progress=not args.json)
    if not args.json:
        print(f"probe trained in {metrics['train_seconds']:.1f} s; last epoch {metrics['history'][-1]}")
    _print_run_metrics(run_id, eval_set_name(args.set), metrics, args.json)
    return 0


@command("intervene image")
def cmd_intervene_image(args: argparse.Namespace, paths: Paths) -> int:
    interventions = _interventions(args)
    interpreter = load_interpreter(args.interpreter, paths.models_dir)
    thresholds = interpreter_thresholds(interpreter, Store(paths.db_path))
    if args.image:
        _, image = prepare_upload(Path(args.image).read_bytes())
    else:
        image = load_mnist(paths.data_dir).test.images[args.mnist]
    r = intervene_image(load_target(paths.target_dir), image, interventions, thresholds, interpreter.encoder,
                        interpreter.describe)
    _print_json({"interventions": [iv.label for iv in interventions],
                 "prediction": [r.before.prediction, r.after.prediction],
                 "description": [r.description_before, r.description_after], "changed": r.changed,
                 "changed_cells": r.changed_cells})
    return 0


@command("intervene effects")
def cmd_intervene_effects(args: argparse.Namespace, paths: Paths) -> int:
    # None: each filter of the interpreter's layer (8 on conv1, 16 on conv2)
    cfg = EffectConfig(n=args.n, n_mnist=args.n_mnist, interventions=tuple(_interventions(args)) or None,
                       batch_size=args.batch_size)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    with tqdm(unit="intervention", desc="effects") as bar:
        path, result = run_effects(load_interpreter(args.interpreter, paths.models_dir), paths, cfg, args.name,
                                   progress=progress)
    for line in result.summary():
        print(line)
    print(f"saved {path} ({result.seconds:.0f} s)")
    return 0


def _interventions(args: argparse.Namespace) -> list:
    """--ablate F, --scale F:X, --clamp F:LETTER (each repeatable) as Interventions."""
    out = [Intervention(int(f), "ablate") for f in args.ablate or []]
    for item in args.scale or []:
        f, _, x = item.partition(":")
        out.append(Intervention(int(f), "scale", float(x)))
    for item in args.clamp or []:
        f, _, letter = item.partition(":")
        out.append(Intervention(int(f), "clamp", letter))
    return out


@command("results export")
def cmd_results_export(args: argparse.Namespace, paths: Paths) -> int:
    out = Path(args.out) if args.out else paths.results_path
    n = export_results(Store(paths.db_path), args.runs, out, load_mnist(paths.data_dir).source)
    print(f"{n} (run, set) results of {len(args.runs)} run(s) written to {out}")
    return 0


@command("results load")
def cmd_results_load(args: argparse.Namespace, paths: Paths) -> int:
    for line in ensure_results(paths, load_mnist(paths.data_dir).source):
        print(line)
    return 0


def _add_eval_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", default="syn_eval", metavar="SET",
                   help=f"held-out set: {', '.join(EVAL_SETS)} (default: syn_eval), or a labelled set of your own: "
                        "FILE.npz (images uint8 [n,28,28] + counts int [n,8] or descriptions), a folder with "
                        "labels.csv (file,description) and its images, or file:NAME (data/labelled/NAME)")
    p.add_argument("--n", type=int, default=DEFAULT_N, help=f"samples (default: {DEFAULT_N}; mnist_eval: at most)")
    p.add_argument("--offset", type=int, default=0, help="syn_eval seed offset (another disjoint set)")
    p.add_argument("--run-id", help="id in the store (default: from the run folder / dataset name)")
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object (no progress bar)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="n2w", description=__doc__)
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

    p = sub.add_parser("parse", help="parse an interpreter output into shape counts")
    p.add_argument("text", help="the description text, e.g. 'Image with 2 shapes: 1 corner, 1 ellipse'")
    p.add_argument("--json", action="store_true", help="print {counts, total, well_formed} as JSON")
    p.set_defaults(cmd="parse")

    p = sub.add_parser("encode", help="encode conv1 activations c(a) as text")
    p.add_argument("--activations", help="an .npy file holding a float [8, 14, 14] array")
    p.add_argument("--image", help="an image file, run through the target CNN")
    p.add_argument("--thresholds", help="threshold set: a JSON file or a name in the store (default: the default set)")
    p.add_argument("--encoder", default="paper", choices=list_encoders(), help="encoding (default: paper)")
    p.set_defaults(cmd="encode")

    th = sub.add_parser("thresholds", help="calibrate and list bin threshold sets").add_subparsers(
        dest="thresholds_cmd", required=True, metavar="ACTION")
    p = th.add_parser("calibrate", help="calibrate per-filter thresholds on synthetic + MNIST activations")
    p.add_argument("--name", default="calibrated", help="name of the new set")
    p.add_argument("--n-synthetic", type=int, default=2000, help="synthetic reference images")
    p.add_argument("--n-mnist", type=int, default=2000, help="MNIST training images in the reference set")
    p.add_argument("--json-out", help="also write the set as JSON here")
    p.add_argument("--make-default", action="store_true", help="make it the default set (of its layer)")
    p.add_argument("--ship", action="store_true",
                   help="also write it as the committed default of its layer (assets/thresholds/default.json for "
                        "conv1, assets/thresholds/<layer>-default.json otherwise), which setup loads into a fresh store")
    p.add_argument("--layer", default=DEFAULT_LAYER, choices=list_layers(),
                   help="the layer whose activations it bins (conv1: the paper's, what the interpreters read)")
    p.set_defaults(cmd="thresholds calibrate")
    p = th.add_parser("list", help="list the threshold sets in the store")
    p.set_defaults(cmd="thresholds list")

    ds = sub.add_parser("dataset", help="build D_interpret and report its token counts").add_subparsers(
        dest="dataset_cmd", required=True, metavar="ACTION")
    p = ds.add_parser("build", help="generate shapes + annotated MNIST, encode, split, write JSONL")
    add_config_args(p, DatasetConfig)
    p.set_defaults(cmd="dataset build")
    p = ds.add_parser("stats", help="tokens per sample for a tokenizer")
    p.add_argument("--dataset", default="default", help="dataset name or folder")
    p.add_argument("--tokenizer", default="smollm2-135m", help="model preset whose tokenizer counts")
    p.add_argument("--limit", type=int, default=300, help="samples to count")
    p.set_defaults(cmd="dataset stats")

    md = sub.add_parser("models", help="list and fetch interpreter base models").add_subparsers(
        dest="models_cmd", required=True, metavar="ACTION")
    p = md.add_parser("list", help="model presets and whether they are fetched")
    p.set_defaults(cmd="models list")
    p = md.add_parser("fetch", help="download (and convert) a model preset, cached")
    p.add_argument("name", help="preset name, Hugging Face id or local folder")
    p.set_defaults(cmd="models fetch")

    p = sub.add_parser("finetune", help="fine-tune an interpreter with LoRA / QLoRA (§3.3)")
    add_config_args(p, FinetuneConfig)
    p.set_defaults(cmd="finetune")

    p = sub.add_parser("metrics", help="score predictions with the paper's Table 1 metrics")
    p.add_argument("--predictions", required=True, help='JSONL, one {"prediction": text, "truth": text} per line')
    p.add_argument("--json", action="store_true", help="print all metrics as one JSON object")
    p.set_defaults(cmd="metrics")

    p = sub.add_parser("evaluate", help="describe a held-out set with an interpreter, score and store (§4)")
    p.add_argument("--run", required=True, help="run folder, adapter folder, or base:PRESET (no fine-tuning)")
    p.add_argument("--batch-size", type=int, default=8, help="encodings per generate call")
    p.add_argument("--dataset", help="training dataset whose MNIST images mnist_eval leaves out "
                                     "(default: the one recorded with the adapter)")
    p.add_argument("--questions", action="store_true",
                   help="also ask one grounded count question per image and report the answers' accuracy")
    p.add_argument("--ask-directly", action="store_true",
                   help="with --questions: ask each question as the first turn, even to a reader (which is "
                        "otherwise asked after its own description, as the Chat page asks it)")
    _add_eval_options(p)
    p.set_defaults(cmd="evaluate")
    bl = sub.add_parser("baseline", help="majority and activation-probe baselines").add_subparsers(
        dest="baseline_cmd", required=True, metavar="KIND")
    p = bl.add_parser("majority", help="one fixed description: the training split's most frequent one")
    p.add_argument("--dataset", required=True, help="dataset name or folder (its train split)")
    p.add_argument("--mode", default="description", choices=("description", "per_shape"),
                   help="most frequent description, or the most frequent count per shape type")
    _add_eval_options(p)
    p.set_defaults(cmd="baseline majority")
    p = bl.add_parser("probe", help="train a small CNN on the binned activations to count shapes, then evaluate")
    p.add_argument("--dataset", required=True, help="dataset name or folder (train split; val for monitoring)")
    p.add_argument("--out", help="folder for the probe's weights (default: runs/<run id>)")
    add_config_args(p, ProbeConfig, skip=("layer",))  # the dataset's layer, always
    _add_eval_options(p)
    p.set_defaults(cmd="baseline probe")

    iv = sub.add_parser("intervene", help="switch filters of the interpreter's layer (conv1, conv2) off, scale or clamp them, and see what changes").add_subparsers(
        dest="intervene_cmd", required=True, metavar="ACTION")
    for action, text in (("image", "one image before and after (prediction, description, changed counts)"),
                         ("effects", "the effect map over held-out images (default: ablate each filter of the layer)")):
        p = iv.add_parser(action, help=text)
        p.add_argument("--interpreter", default="assets/interpreters/reader-smollm2",
                       help="interpreter folder or base:PRESET")
        p.add_argument("--ablate", type=int, action="append", metavar="F", help="switch filter F off")
        p.add_argument("--scale", action="append", metavar="F:X", help="multiply filter F's map by X (0…3)")
        p.add_argument("--clamp", action="append", metavar="F:BIN", help="set filter F to bin BIN where it fires")
        if action == "image":
            g = p.add_mutually_exclusive_group(required=True)
            g.add_argument("--image", help="an image file (PNG, JPEG, …)")
            g.add_argument("--mnist", type=int, help="an MNIST test index")
        else:
            p.add_argument("--name", required=True, help="saved as runs/NAME/effects.json")
            p.add_argument("--n", type=int, default=200, help="held-out synthetic images (default 200)")
            p.add_argument("--n-mnist", type=int, default=1000, help="MNIST test digits for the accuracy")
            p.add_argument("--batch-size", type=int, default=50, help="encodings per describe call")
        p.set_defaults(cmd=f"intervene {action}")

    res = sub.add_parser("results", help="the shipped evaluation results (assets/results/)").add_subparsers(
        dest="results_cmd", required=True, metavar="ACTION")
    p = res.add_parser("export", help="write stored runs' predictions and metrics for shipping")
    p.add_argument("runs", nargs="+", help="run ids in the store")
    p.add_argument("--out", help="file (default: assets/results/evaluations.jsonl.gz)")
    p.set_defaults(cmd="results export")
    p = res.add_parser("load", help="add the shipped results the store lacks (setup does this)")
    p.set_defaults(cmd="results load")

    cli_jobs.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.cmd](args, Paths.from_env())
    except (ValueError, OSError, EOFError, RuntimeError, KeyError) as exc:
        # A bad name or path is a ValueError from the one check it passes (`interp.names`, the configs).
        # str(KeyError) is its repr ("'name'"): print the message itself.
        print(f"error: {exc.args[0] if isinstance(exc, KeyError) and exc.args else exc}", file=sys.stderr)
        return 2
