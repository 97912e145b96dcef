"""FinetuneConfig validation: one check shared by the Jobs page, the CLI and the jobs' workers."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from interp.interpreters.presets import list_presets
from interp.interpreters.training import FinetuneConfig, resolve_dataset


def cfg(**kw) -> FinetuneConfig:
    return FinetuneConfig(**{"dataset": "d", "out": "o", **kw})


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"max_steps": 0}, r"max_steps must be -1 \(run all epochs\) or ≥ 1, got 0"),
        ({"max_steps": -2}, r"max_steps must be -1 .* got -2"),
        ({"max_steps": True}, r"max_steps must be a whole number"),
        ({"save_steps": 0}, r"save_steps must be ≥ 1, got 0"),
        ({"save_steps": -5}, r"save_steps must be ≥ 1"),
        ({"logging_steps": 0}, r"logging_steps must be ≥ 1"),
        ({"eval_steps": -1}, r"eval_steps must be ≥ 0"),
        ({"warmup_steps": -1}, r"warmup_steps must be ≥ 0"),
        ({"seed": -1}, r"seed must be ≥ 0"),
        ({"learning_rate": float("nan")}, r"learning_rate must be a finite number, got nan"),
        ({"learning_rate": float("inf")}, r"learning_rate must be a finite number, got inf"),
        ({"learning_rate": -1e-4}, r"learning_rate must be > 0"),
        ({"epochs": float("nan")}, r"epochs must be a finite number"),
        ({"lora_dropout": 1.0}, r"lora_dropout must be in \[0, 1\), got 1.0"),
        ({"lora_dropout": -0.1}, r"lora_dropout must be in \[0, 1\)"),
        ({"lora_dropout": float("nan")}, r"lora_dropout must be a finite number"),
        ({"reader_aux_weight": float("inf")}, r"reader_aux_weight must be a finite number"),
        ({"threads": 0}, r"threads must be ≥ 1 \(or left out\), got 0"),
        ({"max_train_samples": 0}, r"max_train_samples must be ≥ 1"),
        ({"lora_alpha": 0}, r"lora_alpha must be ≥ 1"),
        ({"batch_size": 2.5}, r"batch_size must be a whole number"),
        ({"lora_targets": ("q_proj", "")}, r"lora_targets must be module names"),
        ({"preset": "no-such-preset"}, r"unknown model 'no-such-preset': not a preset \(.*smollm2-135m"),
        ({"preset": "/no/such/folder"}, r"unknown model '/no/such/folder'"),
        ({"preset": ""}, r"preset must be a preset name"),
        ({"preset": "smollm2-135m\n"}, r"preset must be a preset name"),
    ],
)
def test_bad_values_raise_before_any_run_starts(kw: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cfg(**kw)


def test_good_values_pass(tmp_path: Path) -> None:
    for preset in list_presets():
        assert cfg(preset=preset.name).preset == preset.name
    assert cfg(preset="HuggingFaceTB/SmolLM2-135M").preset == "HuggingFaceTB/SmolLM2-135M"
    assert cfg(preset=str(tmp_path)).preset == str(tmp_path)  # an existing local model folder
    c = cfg(max_steps=-1, eval_steps=0, warmup_steps=0, threads=None, lora_dropout=0.0, learning_rate=2e-4)
    assert c.max_steps == -1 and c.threads is None
    assert cfg(max_steps=1, threads=1, max_train_samples=1).max_steps == 1


def test_a_saved_config_reads_back_as_saved_and_is_checked_again_before_it_runs(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    saved = json.loads(json.dumps(cfg(preset=str(model)).to_dict()))
    assert "check" not in saved
    shutil.rmtree(model)
    with pytest.raises(ValueError, match="unknown model"):
        FinetuneConfig(**saved)
    back = FinetuneConfig.from_dict(saved)  # a job's record must still list, view and stop
    assert back.preset == str(model) and json.loads(json.dumps(back.to_dict())) == saved
    with pytest.raises(ValueError, match="unknown model"):
        dataclasses.replace(back, out="runs/x")  # what interp.jobs.command does before a launch
    legacy = FinetuneConfig.from_dict({**saved, "preset": "smollm2-135m", "save_steps": 0})  # before the rule
    with pytest.raises(ValueError, match="save_steps must be ≥ 1"):
        legacy.validate()
    with pytest.raises(ValueError, match="save_steps must be ≥ 1"):
        dataclasses.replace(legacy, out="runs/x")


def test_a_dataset_url_cannot_name_a_folder_outside_remote(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"dataset URL's last part must be"):
        resolve_dataset("s3://bucket/..", tmp_path)
