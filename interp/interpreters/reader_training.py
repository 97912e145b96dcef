"""Train the activation reader: a count warm-up of the connector, then connector + LoRA with Trainer.

Same entry point as the text interpreter (`finetune --interpreter reader`), same dataset folders
(the rows' encodings are decoded back to bins with the manifest's encoder), same run folder:
``run_config.json``, ``metrics.jsonl``, ``checkpoints/`` (resume), and ``adapter/`` holding the
LoRA adapter, ``reader.safetensors`` (connector) and ``reader_config.json``.

Each training row is a short conversation about one image: the description (``### Output:``) and/or
a grounded question (`interp.interpreters.questions`), in the exact text the Chat page sends, loss on the answers.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from interp.interpreters.dataset import manifest_layer
from interp.interpreters.probe import dataset_bins
from interp.interpreters.prompt import ANSWER_SIGNIFIER, QUESTION_SIGNIFIER
from interp.interpreters.questions import sample_questions
from interp.interpreters.reader import (
    READER_TASK,
    Connector,
    ReaderConfig,
    ReaderModel,
    count_loss,
    prefix_token_ids,
    shape_name_ids,
)
from interp.interpreters.training import (
    FinetuneResult,
    finish_run,
    metrics_callback,
    prepare_training,
    run_config_dict,
    train_with_status,
    training_arguments,
)
from interp.language import OUTPUT_SIGNIFIER, counts_from_vector, format_description

WARMUP_FILE = "connector_warmup.safetensors"


# --- rows → training examples -----------------------------------------------------------------

def conversation(counts: np.ndarray, rng: np.random.Generator, qa_share: float) -> list[tuple[str, str]]:
    """(context, answer) segments after the soft tokens: a description and/or a question, as the chat sends them."""
    c = counts_from_vector(counts)
    turns = [(f"{OUTPUT_SIGNIFIER}", format_description(c))]
    if rng.random() < qa_share:
        q = sample_questions(c, rng)[0]
        qa = (f"{QUESTION_SIGNIFIER} {q.text}\n{ANSWER_SIGNIFIER}", q.answer)
        turns = [qa] if rng.random() < 0.4 else ([*turns, qa] if rng.random() < 0.7 else [qa, *turns])
    # The context starts with the newline that ends the input line; answers start with a space.
    return [(("\n" if i == 0 else "") + ctx, f" {ans}\n") for i, (ctx, ans) in enumerate(turns)]


def tokenize_conversation(tokenizer: Any, prefix_ids: list[int], n_soft: int, segments: list[tuple[str, str]],
                          max_length: int) -> dict:
    """input_ids = prefix + n_soft placeholders + (context, answer)*; labels only on the answers."""
    ids = list(prefix_ids) + [0] * n_soft
    labels = [-100] * len(ids)
    for context, answer in segments:
        c = tokenizer(context, add_special_tokens=False)["input_ids"]
        a = tokenizer(answer, add_special_tokens=False)["input_ids"]
        ids += c + a
        labels += [-100] * len(c) + a
    return {"input_ids": ids[:max_length], "labels": labels[:max_length]}


def build_examples(tokenizer: Any, bins: np.ndarray, counts: np.ndarray, n_soft: int, qa_share: float, seed: int,
                   max_length: int = 512, task: str = READER_TASK) -> list[dict]:
    """One example per image (seeded per row, so a resumed run sees the same data)."""
    prefix = prefix_token_ids(tokenizer, task)
    out = []
    for i in range(len(bins)):
        rng = np.random.default_rng([seed, i])
        ex = tokenize_conversation(tokenizer, prefix, n_soft, conversation(counts[i], rng, qa_share), max_length)
        out.append({**ex, "bins": bins[i], "counts": counts[i]})
    return out


class ReaderCollator:
    """Right-pads token rows; stacks bins and counts."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, batch: list[dict]) -> dict[str, torch.Tensor]:
        width = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, b in enumerate(batch):
            n = len(b["input_ids"])
            ids[i, :n], labels[i, :n], mask[i, :n] = torch.tensor(b["input_ids"]), torch.tensor(b["labels"]), 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask,
                "bins": torch.as_tensor(np.stack([b["bins"] for b in batch]), dtype=torch.long),
                "counts": torch.as_tensor(np.stack([b["counts"] for b in batch]), dtype=torch.long)}


# --- stage 1: the connector alone, as a count probe ---------------------------------------------

def warm_up_connector(connector: Connector, bins: np.ndarray, counts: np.ndarray, epochs: float, lr: float = 3e-3,
                      batch_size: int = 128, seed: int = 0, val: tuple[np.ndarray, np.ndarray] | None = None,
                      log: Any = None) -> list[dict]:
    """Train trunk + count head on the counts (AdamW, one-cycle); returns one history entry per epoch.

    It pays: the joint stage then starts from a trunk that already counts (0.69 vs 0.21 exact
    after a similar CPU time in the feasibility runs), instead of from noise.
    """
    gen = torch.Generator().manual_seed(seed)
    x, y = torch.as_tensor(bins, dtype=torch.long), torch.as_tensor(counts, dtype=torch.long)
    params = [p for n, p in connector.named_parameters() if n.startswith(("trunk", "count_"))]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    steps = max(1, math.ceil(epochs * len(x) / batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    history, step, start = [], 0, time.time()
    device = connector.positions.device
    while step < steps:
        order = torch.randperm(len(x), generator=gen)
        total, seen = 0.0, 0
        connector.train()
        for i in range(0, len(x), batch_size):
            if step >= steps:
                break
            idx = order[i : i + batch_size]
            _, _, logits = connector.features(x[idx].to(device))
            loss = count_loss(logits, connector.cfg.targets(y[idx]), connector.cfg.max_count)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            total, seen = total + loss.item() * len(idx), seen + len(idx)
        entry = {"stage": "warmup", "warmup_epoch": len(history) + 1, "warmup_loss": total / max(seen, 1),
                 "elapsed_s": time.time() - start}
        if val is not None and len(val[0]):
            entry["warmup_val_exact"] = connector_exact(connector, *val)
        history.append(entry)
        if log:
            log(entry)
    connector.eval()
    return history


@torch.no_grad()
def connector_exact(connector: Connector, bins: np.ndarray, counts: np.ndarray) -> float:
    """Share of images whose every shape count the connector's count head gets right."""
    connector.eval()
    n = counts.shape[1]
    preds = [connector.features(torch.as_tensor(bins[i : i + 512], dtype=torch.long))[2][:, :n].argmax(-1).cpu()
             for i in range(0, len(bins), 512)]
    pred = torch.cat(preds).numpy()
    return float((pred == np.minimum(counts, connector.cfg.max_count)).all(1).mean())


# --- stage 2: Trainer ----------------------------------------------------------------------------

def reader_trainer_class():
    """A Trainer whose checkpoints hold only what trains (LoRA + connector), not the frozen LLM."""
    from transformers import Trainer

    class ReaderTrainer(Trainer):
        def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
            out = Path(output_dir or self.args.output_dir)
            self.model.save(out)
            torch.save(self.args, out / "training_args.bin")

        def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
            (model or self.model).load_trainable(Path(resume_from_checkpoint))

    return ReaderTrainer


def build_reader_model(llm: Any, tokenizer: Any, reader_cfg: ReaderConfig, aux_weight: float) -> ReaderModel:
    device = llm.get_input_embeddings().weight.device
    connector = Connector(reader_cfg).to(device)
    if reader_cfg.llm_embeddings:
        connector.set_llm_embeddings(llm.get_input_embeddings().weight, tokenizer)
    model = ReaderModel(llm, connector, prefix_token_ids(tokenizer, reader_cfg.task), aux_weight,
                        prefix_text=reader_cfg.task)
    if getattr(llm, "hf_device_map", None) is not None:  # placed by device_map: Trainer must not move it
        model.hf_device_map = llm.hf_device_map
    return model


def finetune_reader(cfg: Any, models_dir: Path, datasets_dir: Path, progress: bool = True,
                    callbacks: list | None = None) -> Any:
    """`finetune --interpreter reader`: warm up the connector (once; kept for a resume), then train
    connector + LoRA together with Trainer; the adapter folder holds both."""
    from safetensors.torch import load_file, save_file

    setup = prepare_training(cfg, models_dir, datasets_dir)
    out, tokenizer = setup.out, setup.tokenizer
    hidden = setup.model.get_input_embeddings().weight.shape[1]
    layer = manifest_layer(setup.manifest)
    names = tuple(map(len, shape_name_ids(tokenizer))) if cfg.reader_summary == "named" else ()
    reader_cfg = ReaderConfig(hidden_size=hidden, summary=cfg.reader_summary, layer=layer, name_lengths=names)
    model = build_reader_model(setup.model, tokenizer, reader_cfg, cfg.reader_aux_weight)

    encoder = setup.manifest.get("encoder", "paper")  # the rows' encodings decode back to bins exactly
    bins, counts = dataset_bins(setup.data_dir, "train", encoder, cfg.max_train_samples)
    vbins, vcounts = dataset_bins(setup.data_dir, "val", encoder, cfg.max_eval_samples)
    if not len(bins):
        raise ValueError(f"{setup.data_dir} has no training rows")
    metrics_path = out / "metrics.jsonl"

    def log(row: dict) -> None:
        with open(metrics_path, "a", buffering=1) as fh:
            fh.write(json.dumps({"step": 0, "time": time.time(), **row}) + "\n")

    warm = out / WARMUP_FILE
    if warm.exists():  # a resumed run keeps the connector it warmed up
        model.connector.load_state_dict(load_file(str(warm)))
    elif cfg.reader_warmup_epochs > 0:
        warm_up_connector(model.connector, bins, counts, cfg.reader_warmup_epochs, seed=cfg.seed,
                          val=(vbins, vcounts), log=log)
        save_file({k: v.contiguous().cpu() for k, v in model.connector.state_dict().items()}, str(warm))

    n_soft = reader_cfg.n_tokens
    train = build_examples(tokenizer, bins, counts, n_soft, cfg.reader_qa_share, cfg.seed, cfg.max_length,
                           reader_cfg.task)
    val = build_examples(tokenizer, vbins, vcounts, n_soft, cfg.reader_qa_share, cfg.seed + 1, cfg.max_length,
                         reader_cfg.task) \
        if len(vbins) and cfg.eval_steps else None
    steps_per_epoch = math.ceil(len(train) / (setup.batch * setup.accum))
    total_steps = cfg.max_steps if cfg.max_steps > 0 else math.ceil(steps_per_epoch * cfg.epochs)
    run_config = run_config_dict(cfg, setup, total_steps, len(train), len(val or []), reader=reader_cfg.to_dict(),
                                 trainable_params=sum(p.numel() for p in model.parameters() if p.requires_grad))
    (out / "run_config.json").write_text(json.dumps(run_config, indent=2, default=str) + "\n")

    # Random batches, not length-grouped: grouping cut padding (and ~20% of a step's CPU) but batches of one
    # row type trained a worse reader (reader-c in the README).
    args = training_arguments(cfg, setup, bool(val), progress, gradient_checkpointing=False,
                              prediction_loss_only=True)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    trainer = reader_trainer_class()(
        model=model, args=args, train_dataset=train, eval_dataset=val, data_collator=ReaderCollator(pad_id),
        callbacks=[metrics_callback(metrics_path, total_steps, cfg.sync_to), *(callbacks or [])])
    train_with_status(trainer, cfg, out)
    adapter = out / "adapter"
    model.save(adapter)
    tokenizer.save_pretrained(str(adapter))
    finish_run(out, cfg, adapter, run_config, trainer.state.global_step)
    return FinetuneResult(adapter, trainer.state.global_step, model)
