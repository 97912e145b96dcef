"""§3.3: fine-tune the interpreter (LoRA / QLoRA) with transformers' Trainer and peft.

`finetune` is the entry point for both kinds; this module trains the paper's text interpreter
(prompt + encoded activations + description as tokens), `reader_training` the activation reader,
both on the shared setup in `interp.interpreters.training`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from interp.interpreters.reader_training import finetune_reader
from interp.interpreters.training import (
    FinetuneConfig,
    FinetuneResult,
    finish_run,
    metrics_callback,
    prepare_training,
    run_config_dict,
    sync_files,
    train_with_status,
    training_arguments,
)
from interp.jsonl import read_jsonl
from interp.run_lock import run_writer

# --- data ------------------------------------------------------------------------------------

def tokenize_example(tokenizer: Any, prompt: str, completion: str, max_length: int, loss_on: str) -> dict:
    """input_ids = prompt + completion + eos; labels mask the prompt when loss_on == 'completion'."""
    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    c_ids = tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    ids = (bos + p_ids + c_ids)[:max_length]
    n_prompt = len(bos) + len(p_ids)
    labels = list(ids) if loss_on == "all" else [-100] * min(n_prompt, len(ids)) + ids[n_prompt:]
    return {"input_ids": ids, "labels": labels}


class PadCollator:
    """Right-pads a batch to its longest sequence, or to ``max_length`` (the paper's padding)."""

    def __init__(self, pad_id: int, max_length: int | None = None) -> None:
        self.pad_id = pad_id
        self.max_length = max_length

    def __call__(self, batch: list[dict]) -> dict[str, torch.Tensor]:
        width = self.max_length or max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, b in enumerate(batch):
            n = len(b["input_ids"])
            ids[i, :n] = torch.tensor(b["input_ids"])
            labels[i, :n] = torch.tensor(b["labels"])
            mask[i, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def finetune(cfg: FinetuneConfig, models_dir: Path, datasets_dir: Path, progress: bool = True,
             callbacks: list | None = None) -> FinetuneResult:
    """Train LoRA adapters (and, for the reader, its connector) into ``cfg.out``; resumes from the newest checkpoint.

    Holds the run folder's writer lock throughout: a second trainer on the same folder raises `RunFolderBusy`.
    """
    with run_writer(cfg.out):
        train = finetune_reader if cfg.interpreter == "reader" else finetune_text
        return train(cfg, models_dir, datasets_dir, progress, callbacks)


def finetune_text(cfg: FinetuneConfig, models_dir: Path, datasets_dir: Path, progress: bool = True,
                  callbacks: list | None = None) -> FinetuneResult:
    """The paper's text interpreter: prompt + encoding + description as tokens, trained with Trainer."""
    from transformers import Trainer

    setup = prepare_training(cfg, models_dir, datasets_dir)
    out, tokenizer, model = setup.out, setup.tokenizer, setup.model

    def encode(rows: list[dict]) -> list[dict]:
        return [tokenize_example(tokenizer, r["prompt"], r["completion"], cfg.max_length, cfg.loss_on) for r in rows]

    train = encode(read_jsonl(setup.data_dir / "train.jsonl", cfg.max_train_samples))
    val_path = setup.data_dir / "val.jsonl"
    val = encode(read_jsonl(val_path, cfg.max_eval_samples)) if val_path.exists() and cfg.eval_steps else None

    steps_per_epoch = math.ceil(len(train) / (setup.batch * setup.accum))
    total_steps = cfg.max_steps if cfg.max_steps > 0 else math.ceil(steps_per_epoch * cfg.epochs)
    run_config = run_config_dict(cfg, setup, total_steps, len(train), len(val or []))
    (out / "run_config.json").write_text(json.dumps(run_config, indent=2, default=str) + "\n")
    sync_files(out, cfg.sync_to, "run_config.json")

    args = training_arguments(cfg, setup, bool(val), progress)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    collator = PadCollator(pad_id, cfg.max_length if cfg.padding == "max_length" else None)
    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=val, data_collator=collator,
                      callbacks=[metrics_callback(out / "metrics.jsonl", total_steps, cfg.sync_to),
                                 *(callbacks or [])])
    train_with_status(trainer, cfg, out)
    adapter = out / "adapter"
    model.save_pretrained(str(adapter), safe_serialization=True)
    tokenizer.save_pretrained(str(adapter))
    finish_run(out, cfg, adapter, run_config, trainer.state.global_step)
    return FinetuneResult(adapter, trainer.state.global_step, model)
