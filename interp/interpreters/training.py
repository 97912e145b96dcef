"""What fine-tuning both interpreter kinds share: the config, the run folder, Trainer arguments, status.

One code path for CPU and GPU: the device, resolved once, switches on 4-bit NF4 quantisation,
paged AdamW and gradient checkpointing (CUDA) or plain AdamW with bf16 autocast (CPU).
A run folder holds everything: ``run_config.json``, ``metrics.jsonl`` (one line per log event,
read by the app through DuckDB), ``checkpoints/`` (resume after a kill) and ``adapter/``
(safetensors). Nothing here holds the store open. The text interpreter's data and loop are in
`interp.interpreters.finetune`, the reader's in `interp.interpreters.reader_training`.
"""


from __future__ import annotations

import json
import math
import os
import time
from dataclasses import InitVar, asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from interp import storage
from interp.interpreters.models import fetch_model, load_model, load_tokenizer, resolve_device
from interp.interpreters.presets import get_preset
from interp.interpreters.reader import SUMMARIES as READER_SUMMARIES
from interp.jsonl import read_manifest
from interp.names import safe_name

LOSS_ON = ("all", "completion")
PADDING = ("dynamic", "max_length")
INTERPRETERS = ("text", "reader")


@dataclass(frozen=True)
class FinetuneConfig:
    """One fine-tuning run; saved beside its results as ``run_config.json``."""

    dataset: str
    """Dataset folder with train.jsonl / val.jsonl (from `dataset build`), or a registered dataset id/name."""
    out: str
    """Run folder (created; an existing run there is resumed)."""
    interpreter: str = "text"
    """'text': the paper's interpreter reading the encoded text; 'reader': the bins enter the LLM as soft tokens through a trained connector."""
    preset: str = "smollm2-135m"
    """Model preset name, Hugging Face id, or local model folder."""
    max_steps: int = -1
    """Stop after this many optimiser steps (-1: run all epochs)."""
    epochs: float = 1.0
    """Passes over the training split (when max_steps is -1)."""
    learning_rate: float | None = None
    """Peak learning rate (default: the preset's, the paper: 2e-3 Mistral, 2.5e-5 Mixtral; the reader: 1e-3)."""
    batch_size: int | None = None
    """Sequences per device step (default: the preset's, the paper: 4 Mistral, 2 Mixtral; the reader: 16)."""
    grad_accum: int | None = None
    """Gradient accumulation steps (default: the preset's)."""
    lora_r: int = 16
    """LoRA rank."""
    lora_alpha: int = 32
    """LoRA scaling numerator."""
    lora_dropout: float = 0.05
    """Dropout on the LoRA branch."""
    lora_targets: tuple[str, ...] = ()
    """Modules that get LoRA adapters (default: the preset's, §3.3: q/k/v; the reader adds o_proj)."""
    loss_on: str = "all"
    """'all': loss over prompt, activations and description as the paper (§3.3); 'completion': description only (a deviation)."""
    padding: str = "dynamic"
    """'dynamic': pad each batch to its longest sequence; 'max_length': pad every sequence to max_length as the paper."""
    max_length: int = 1280
    """Sequences are truncated (and, with padding=max_length, padded) to this many tokens (paper: 1,280)."""
    eval_steps: int = 50
    """Validation loss every N steps (0: never)."""
    save_steps: int = 50
    """Checkpoint every N steps (resume point after a kill)."""
    logging_steps: int = 5
    """Training loss logged every N steps."""
    max_train_samples: int | None = None
    """Use only the first N training samples."""
    max_eval_samples: int | None = 64
    """Validation samples per evaluation (validation costs CPU time too)."""
    warmup_steps: int = 10
    """Linear warm-up steps."""
    seed: int = 0
    """Seeds LoRA init and data order."""
    device: str = "auto"
    """'auto' (cuda if available), 'cuda' or 'cpu'."""
    bf16: bool | None = None
    """bf16 compute; default: on for CUDA, and on CPU only where it has native bf16 (avx512_bf16/AMX), else fp32."""
    quantize_4bit: bool | None = None
    """QLoRA 4-bit NF4 + double quantisation; default: the preset's choice on CUDA (Mistral/Mixtral), never on CPU."""
    threads: int | None = None
    """torch CPU threads (default: all cores)."""
    reader_warmup_epochs: float = 4.0
    """Reader only: epochs of the connector's count warm-up before the joint stage (0: none)."""
    reader_aux_weight: float = 0.5
    """Reader only: weight of the connector's count loss beside the LM loss in the joint stage."""
    reader_qa_share: float = 0.5
    """Reader only: share of training images that also get a grounded question (interp.interpreters.questions)."""
    reader_summary: str = "named"
    """Reader only: the soft tokens after the patches (`ReaderConfig.summary`): "named" (the shipped reader's),
    "digits", "shapes" or "shapes+groups"."""
    lr_scheduler: str | None = None
    """Learning-rate schedule after warm-up, 'linear' or 'cosine' (default: linear for text, cosine for the reader)."""
    sync_to: str | None = None
    """Storage location (path or fsspec URL) mirroring the run folder: metrics and status as they are written, checkpoints, the adapter at the end; a run restarted elsewhere resumes from the checkpoints there."""
    check: InitVar[bool] = True
    """Validate on construction (`validate`). `from_dict` turns it off: a saved job must still list when its model folder is gone or it predates a rule; it is validated again before it runs (`dataclasses.replace` in `interp.jobs.command`, the worker's CLI)."""

    def __post_init__(self, check: bool = True) -> None:
        object.__setattr__(self, "lora_targets", tuple(self.lora_targets))  # JSON gives a list back
        if check:
            self.validate()

    def validate(self) -> None:
        """ValueError naming the first field that a run could not use; the page, the CLI and jobs all build this."""
        self._check_numbers()
        check_preset_name(self.preset)
        if self.loss_on not in LOSS_ON:
            raise ValueError(f"loss_on must be one of {LOSS_ON}, got {self.loss_on!r}")
        if self.padding not in PADDING:
            raise ValueError(f"padding must be one of {PADDING}, got {self.padding!r}")
        if self.interpreter not in INTERPRETERS:
            raise ValueError(f"interpreter must be one of {INTERPRETERS}, got {self.interpreter!r}")
        if self.lr_scheduler not in (None, "linear", "cosine"):
            raise ValueError(f"lr_scheduler must be linear or cosine, got {self.lr_scheduler!r}")
        if self.reader_warmup_epochs < 0 or self.reader_aux_weight < 0 or not 0 <= self.reader_qa_share <= 1:
            raise ValueError("reader_warmup_epochs and reader_aux_weight must be ≥ 0, reader_qa_share in [0, 1]")
        if self.reader_summary not in READER_SUMMARIES:
            raise ValueError(f"reader_summary must be one of {', '.join(READER_SUMMARIES)}, got {self.reader_summary!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.max_length < 16 or self.lora_r < 1 or self.epochs <= 0:
            raise ValueError("max_length ≥ 16, lora_r ≥ 1 and epochs > 0 are required")
        for name in ("learning_rate", "batch_size", "grad_accum"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be > 0")

    def _check_numbers(self) -> None:
        """Every number a run reads: finite, whole where it counts something, in its range."""
        for name in ("epochs", "learning_rate", "lora_dropout", "reader_warmup_epochs", "reader_aux_weight",
                     "reader_qa_share"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        for name in ("max_steps", "lora_r", "lora_alpha", "max_length", "eval_steps", "save_steps", "logging_steps",
                     "warmup_steps", "seed", "batch_size", "grad_accum", "threads", "max_train_samples",
                     "max_eval_samples"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"{name} must be a whole number, got {value!r}")
        if self.max_steps != -1 and self.max_steps < 1:
            raise ValueError(f"max_steps must be -1 (run all epochs) or ≥ 1, got {self.max_steps}")
        for name in ("save_steps", "logging_steps", "lora_alpha"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        for name in ("eval_steps", "warmup_steps", "seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be ≥ 0, got {getattr(self, name)}")
        for name in ("threads", "max_train_samples", "max_eval_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be ≥ 1 (or left out), got {value}")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if not all(isinstance(m, str) and m.strip() for m in self.lora_targets):
            raise ValueError(f"lora_targets must be module names, got {list(self.lora_targets)}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FinetuneConfig":
        """A saved config back as it was saved (unknown keys ignored, not validated: see ``check``)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names}, check=False)


def check_preset_name(preset: object) -> None:
    """ValueError unless ``preset`` resolves as `get_preset` does: a registered preset, a Hugging Face
    id ('org/name') or an existing model folder."""
    if not isinstance(preset, str) or not preset.strip() or preset != preset.strip():
        raise ValueError(f"preset must be a preset name, a Hugging Face id or a model folder, got {preset!r}")
    try:
        get_preset(preset)
    except (KeyError, ValueError) as exc:
        raise ValueError(exc.args[0] if exc.args else str(exc)) from None


def cpu_has_bf16() -> bool:
    """Native bf16 on this CPU? Without it, bf16 autocast is emulated and ~30× slower than fp32 (measured)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_dataset(dataset: str, datasets_dir: Path) -> Path:
    """A dataset folder from a path, a name/id under ``datasets_dir``, or a storage URL (copied once)."""

    if storage.is_url(dataset):
        local = datasets_dir / "remote" / safe_name("a dataset URL's last part", dataset.rstrip("/").rsplit("/", 1)[-1])
        if not (local / "train.jsonl").exists():
            storage.get(dataset, local)
        return resolve_dataset(str(local), datasets_dir)
    for candidate in (Path(dataset), datasets_dir / dataset):
        if (candidate / "train.jsonl").exists():
            return candidate
    raise FileNotFoundError(f"dataset '{dataset}' not found (looked for train.jsonl in {dataset} and "
                            f"{datasets_dir / dataset}); build one with `python -m interp dataset build`")


# --- logging callback --------------------------------------------------------------------------

def metrics_callback(path: Path, total_steps_hint: int, sync_to: str | None = None):
    from transformers import TrainerCallback

    class JsonlMetrics(TrainerCallback):
        """Appends every log event as one JSON line (line-buffered, so readers see whole lines)."""

        def on_train_begin(self, args, state, control, **kw):
            # A resumed run starts its clock and token count at the checkpoint.
            self.t0, self.step0 = time.time(), state.global_step
            self.tokens0 = getattr(state, "num_input_tokens_seen", 0) or 0

        def on_log(self, args, state, control, logs=None, **kw):
            elapsed = time.time() - self.t0
            done = state.global_step - self.step0
            rate = done / elapsed if elapsed > 0 and done > 0 else None
            remaining = (state.max_steps or total_steps_hint) - state.global_step
            row = {"step": state.global_step, "epoch": state.epoch, "time": time.time(),
                   "elapsed_s": elapsed, "eta_s": remaining / rate if rate else None, **(logs or {})}
            tokens = getattr(state, "num_input_tokens_seen", None)
            if tokens and elapsed > 0:
                row["tokens_seen"] = tokens
                row["tokens_per_s"] = (tokens - self.tokens0) / elapsed
            with open(path, "a", buffering=1) as fh:
                fh.write(json.dumps(row) + "\n")
            if sync_to:
                storage.put(path, storage.join(sync_to, path.name))

        def on_save(self, args, state, control, **kw):
            if sync_to:
                name = f"checkpoint-{state.global_step}"
                storage.put(Path(args.output_dir) / name, storage.join(sync_to, "checkpoints", name))

    return JsonlMetrics()


# --- the run -----------------------------------------------------------------------------------

@dataclass
class FinetuneResult:
    """What a finished run leaves: the adapter folder, its step count, and the trained PEFT model."""

    adapter_dir: Path
    steps: int
    model: Any


@dataclass
class TrainingSetup:
    """What both interpreter kinds share before training: resolved settings, data folder, LoRA-wrapped model."""

    out: Path
    device: str
    quantize: bool
    bf16: bool
    lr: float
    batch: int
    accum: int
    scheduler: str
    data_dir: Path
    manifest: dict
    preset: Any
    tokenizer: Any
    model: Any


def prepare_training(cfg: FinetuneConfig, models_dir: Path, datasets_dir: Path) -> TrainingSetup:
    """Resolve device/precision/hyper-parameters once, fetch data and model, wrap the model with LoRA."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    device = resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    preset = get_preset(cfg.preset)
    # QLoRA by the preset's default (7B-class models) on CUDA; never on CPU.
    quantize = (device.startswith("cuda") and preset.quantize_4bit) if cfg.quantize_4bit is None else cfg.quantize_4bit
    if quantize and not device.startswith("cuda"):
        raise ValueError("4-bit quantisation needs CUDA; use --no-quantize-4bit on CPU")
    bf16 = cpu_has_bf16() if (cfg.bf16 is None and device == "cpu") else (cfg.bf16 is not False)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.sync_to and not (out / "checkpoints").exists() and storage.exists(storage.join(cfg.sync_to, "checkpoints")):
        storage.get(storage.join(cfg.sync_to, "checkpoints"), out / "checkpoints")  # resume on a fresh machine
        if storage.exists(storage.join(cfg.sync_to, "metrics.jsonl")):
            storage.get(storage.join(cfg.sync_to, "metrics.jsonl"), out / "metrics.jsonl")
    data_dir = resolve_dataset(cfg.dataset, datasets_dir)
    manifest = read_manifest(data_dir)

    fetch_model(cfg.preset, models_dir)  # at once when present; a fresh GPU box fetches its own copy
    tokenizer = load_tokenizer(cfg.preset, models_dir)
    model = load_model(cfg.preset, models_dir, device=device, quantize_4bit=quantize)
    if quantize:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    d = kind_defaults(cfg.interpreter, preset)
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=list(cfg.lora_targets or d["lora_targets"]), task_type="CAUSAL_LM")
    torch.manual_seed(cfg.seed)
    model = get_peft_model(model, lora)
    return TrainingSetup(out, device, quantize, bf16, cfg.learning_rate or d["learning_rate"],
                         cfg.batch_size or d["batch_size"], cfg.grad_accum or preset.gradient_accumulation_steps,
                         cfg.lr_scheduler or d["lr_scheduler"], data_dir, manifest, preset, tokenizer, model)


READER_DEFAULTS = {"learning_rate": 1e-3, "batch_size": 16, "lr_scheduler": "cosine",
                   "lora_targets": ("q_proj", "k_proj", "v_proj", "o_proj")}
"""The reader's defaults (measured on SmolLM2, README "The activation reader"): its sequences are ~100 tokens,
so a batch of 16 costs what 4 text samples do, and the fresh connector wants a higher rate than LoRA alone."""


def kind_defaults(interpreter: str, preset: Any) -> dict:
    """Hyper-parameters a run of ``interpreter`` kind uses where the config leaves them unset (page and CLI alike)."""
    if interpreter == "reader":
        return dict(READER_DEFAULTS)
    return {"learning_rate": preset.learning_rate, "batch_size": preset.batch_size, "lr_scheduler": "linear",
            "lora_targets": tuple(preset.lora_target_modules)}


def training_arguments(cfg: FinetuneConfig, setup: TrainingSetup, has_val: bool, progress: bool,
                       **overrides: Any) -> Any:
    """TrainingArguments both kinds use: checkpoints under the run folder, device-driven precision and optimiser."""
    from transformers import TrainingArguments

    kwargs = dict(
        output_dir=str(setup.out / "checkpoints"),
        per_device_train_batch_size=setup.batch,
        per_device_eval_batch_size=setup.batch,
        gradient_accumulation_steps=setup.accum,
        learning_rate=setup.lr,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        warmup_steps=cfg.warmup_steps,
        lr_scheduler_type=setup.scheduler,
        logging_steps=cfg.logging_steps,
        eval_strategy="steps" if has_val else "no",
        eval_steps=cfg.eval_steps or None,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=2,
        bf16=setup.bf16,
        use_cpu=setup.device == "cpu",
        optim="paged_adamw_32bit" if setup.quantize else "adamw_torch",
        gradient_checkpointing=setup.quantize,
        report_to="none",
        seed=cfg.seed,
        disable_tqdm=not progress,
        remove_unused_columns=False,
        include_num_input_tokens_seen="non_padding",
        dataloader_num_workers=0,
    )
    kwargs.update(overrides)
    return TrainingArguments(**kwargs)


def run_config_dict(cfg: FinetuneConfig, setup: TrainingSetup, total_steps: int, n_train: int, n_val: int,
                    **extra: Any) -> dict:
    return {"finetune": cfg.to_dict(), "interpreter": cfg.interpreter, "device": setup.device,
            "quantize_4bit": setup.quantize, "bf16": setup.bf16, "learning_rate": setup.lr,
            "batch_size": setup.batch, "grad_accum": setup.accum, "lr_scheduler": setup.scheduler,
            "total_steps": total_steps,
            "preset": asdict(setup.preset), "dataset_dir": str(setup.data_dir),
            "dataset_hash": setup.manifest.get("hash"), "dataset_manifest": setup.manifest,
            "n_train": n_train, "n_val": n_val,
            "trainable_params": sum(p.numel() for p in setup.model.parameters() if p.requires_grad), **extra}


def train_with_status(trainer: Any, cfg: FinetuneConfig, out: Path) -> None:
    """Run (or resume) ``trainer`` with status.json kept current; a failure is recorded, then raised."""
    last = last_complete_checkpoint(out / "checkpoints")
    _write_status(out, "running", cfg.sync_to, resumed_from=last)
    try:
        trainer.train(resume_from_checkpoint=last)
    except BaseException as exc:
        _write_status(out, "failed", cfg.sync_to, error=f"{type(exc).__name__}: {exc}")
        raise


def finish_run(out: Path, cfg: FinetuneConfig, adapter: Path, run_config: dict, steps: int) -> None:
    (adapter / "run_config.json").write_text(json.dumps(run_config, indent=2, default=str) + "\n")
    sync_files(out, cfg.sync_to, "adapter", "metrics.jsonl")
    _write_status(out, "succeeded", cfg.sync_to, adapter=str(adapter), steps=steps)


def last_complete_checkpoint(folder: Path) -> str | None:
    """The newest checkpoint that was saved whole (trainer_state.json is written last): a kill during
    a save leaves a partial folder, which resuming must skip."""
    if not folder.exists():
        return None
    done = [p for p in folder.glob("checkpoint-*") if (p / "trainer_state.json").exists() and p.name[11:].isdigit()]
    return str(max(done, key=lambda p: int(p.name[11:]))) if done else None


def sync_files(out: Path, sync_to: str | None, *names: str) -> None:
    for name in names if sync_to else ():
        if (out / name).exists():
            storage.put(out / name, storage.join(sync_to, name))


def _write_status(out: Path, status: str, sync_to: str | None = None, **extra: Any) -> None:
    """A small status file the jobs layer reads; written atomically."""
    tmp = out / "status.json.tmp"
    tmp.write_text(json.dumps({"status": status, "time": time.time(), "pid": os.getpid(), **extra}, default=str))
    tmp.replace(out / "status.json")
    sync_files(out, sync_to, "status.json")
