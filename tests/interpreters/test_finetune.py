"""The real fine-tuning entry point on tiny random Mistral / Mixtral models, on CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from interp.interpreters.finetune import PadCollator, finetune, tokenize_example
from interp.interpreters.training import FinetuneConfig
from tests.conftest import COMPLETION, PROMPT, tiny_setup


def _dataset(directory: Path, n: int = 8) -> Path:
    directory.mkdir(parents=True)
    row = json.dumps({"prompt": PROMPT, "completion": COMPLETION})
    (directory / "train.jsonl").write_text((row + "\n") * n)
    (directory / "val.jsonl").write_text((row + "\n") * 2)
    (directory / "manifest.json").write_text(json.dumps({"hash": "abc123"}))
    return directory


@pytest.fixture
def tiny(tmp_path: Path, request) -> dict:
    return tiny_setup(tmp_path, getattr(request, "param", "mistral"), _dataset(tmp_path / "ds"))


def _cfg(tiny: dict, **kw) -> FinetuneConfig:
    base = dict(dataset=str(tiny["data"]), out=str(tiny["tmp"] / "run"), preset=str(tiny["model"]),
                max_steps=12, learning_rate=5e-2, batch_size=4, grad_accum=1, logging_steps=2, eval_steps=6,
                save_steps=6, warmup_steps=0, device="cpu", bf16=False, lora_r=4, lora_alpha=8, lora_dropout=0.0)
    return FinetuneConfig(**{**base, **kw})


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("tiny", ["mistral", "mixtral"], indirect=True)
def test_finetune_learns_and_saves_a_reloadable_adapter(tiny: dict, paths) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base_before = AutoModelForCausalLM.from_pretrained(tiny["model"]).state_dict()
    result = finetune(_cfg(tiny), paths.models_dir, paths.datasets_dir, progress=False)
    run = tiny["tmp"] / "run"

    losses = [m["loss"] for m in _metrics(run) if "loss" in m]
    assert losses[-1] < losses[0] - 0.1, losses  # a random tiny model moves slowly, but it moves
    assert any("eval_loss" in m for m in _metrics(run))
    assert (result.adapter_dir / "adapter_model.safetensors").exists()
    saved = json.loads((run / "run_config.json").read_text())
    assert saved["dataset_hash"] == "abc123" and saved["finetune"]["max_steps"] == 12
    assert json.loads((run / "status.json").read_text())["status"] == "succeeded"

    trained = dict(result.model.named_parameters())
    lora_b = [p for n, p in trained.items() if "lora_B" in n]
    assert lora_b and all(p.abs().sum() > 0 for p in lora_b)  # LoRA B starts at zero: it moved
    for name, before in base_before.items():
        after = result.model.get_base_model().state_dict()
        key = next((k for k in after if k.replace("base_layer.", "") == name), name)
        torch.testing.assert_close(after[key], before, msg=f"base weight {name} changed")

    ids = torch.tensor([tokenize_example(tiny["tok"], PROMPT, COMPLETION, 128, "all")["input_ids"]])
    result.model.eval()
    expected = result.model(input_ids=ids).logits
    reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny["model"]), result.adapter_dir)
    torch.testing.assert_close(reloaded.eval()(input_ids=ids).logits, expected)


def test_killed_run_resumes_from_its_checkpoint(tiny: dict, paths) -> None:
    from transformers import TrainerCallback

    class Crash(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 8:
                raise KeyboardInterrupt("simulated kill")

    with pytest.raises(KeyboardInterrupt):
        finetune(_cfg(tiny), paths.models_dir, paths.datasets_dir, progress=False, callbacks=[Crash()])
    run = tiny["tmp"] / "run"
    assert json.loads((run / "status.json").read_text())["status"] == "failed"
    assert (run / "checkpoints" / "checkpoint-6").exists()

    result = finetune(_cfg(tiny), paths.models_dir, paths.datasets_dir, progress=False)
    assert result.steps == 12
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "succeeded"
    steps_after_resume = [m["step"] for m in _metrics(run)][-3:]
    assert steps_after_resume[-1] == 12


def test_completion_only_loss_masks_the_prompt(tiny: dict) -> None:
    full = tokenize_example(tiny["tok"], PROMPT, COMPLETION, 128, "all")
    masked = tokenize_example(tiny["tok"], PROMPT, COMPLETION, 128, "completion")
    assert full["input_ids"] == masked["input_ids"] == full["labels"]
    n_prompt = len(tiny["tok"](PROMPT, add_special_tokens=False)["input_ids"]) + 1  # + bos
    assert masked["labels"][:n_prompt] == [-100] * n_prompt
    assert masked["labels"][n_prompt:] == full["input_ids"][n_prompt:]
    assert masked["labels"][-1] == tiny["tok"].eos_token_id


def test_padding_modes() -> None:
    batch = [{"input_ids": [5, 6, 7], "labels": [5, 6, 7]}, {"input_ids": [8], "labels": [-100]}]
    dyn = PadCollator(pad_id=0)(batch)
    assert dyn["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert dyn["labels"].tolist() == [[5, 6, 7], [-100, -100, -100]]
    assert dyn["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    fixed = PadCollator(pad_id=0, max_length=6)(batch)
    assert fixed["input_ids"].shape == (2, 6)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="loss_on"):
        FinetuneConfig(dataset="d", out="o", loss_on="prompt")
    with pytest.raises(ValueError, match="padding"):
        FinetuneConfig(dataset="d", out="o", padding="left")
    assert FinetuneConfig.from_dict(FinetuneConfig(dataset="d", out="o").to_dict()).max_length == 1280


def test_resume_skips_a_checkpoint_cut_off_mid_save(tmp_path: Path) -> None:
    from interp.interpreters.training import last_complete_checkpoint

    assert last_complete_checkpoint(tmp_path / "none") is None
    for step, whole in ((4, True), (8, True), (12, False)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if whole:
            (folder / "trainer_state.json").write_text("{}")
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-8")
