"""Where datasets and trained interpreters are found: their folders, the one source of truth.

A dataset is a folder with ``train.jsonl`` and ``manifest.json`` (`dataset build` writes it under
data/datasets/); a trained interpreter is a folder holding a LoRA adapter (``runs/<name>/adapter``
from `finetune`, ``assets/interpreters/<name>`` shipped in git). Folders rather than store rows: a run
trained by the CLI, copied back from a Ray cluster or shipped in git exists without any row, and a row
whose folder was deleted points at nothing. The store keeps what has no folder of its own:
evaluations, annotations, ratings, chats, jobs and threshold sets.
"""

from __future__ import annotations

from pathlib import Path

ADAPTER_CONFIG = "adapter_config.json"


def dataset_folders(datasets_dir: Path) -> list[Path]:
    """Dataset folders under ``datasets_dir`` (those with a ``train.jsonl``), by name."""
    root = Path(datasets_dir)
    return sorted(p for p in root.iterdir() if (p / "train.jsonl").exists()) if root.is_dir() else []


def run_adapters(runs_dir: Path) -> list[Path]:
    """The ``adapter`` folder of every finished fine-tuning run under ``runs_dir``, newest first."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    found = [p / "adapter" for p in root.iterdir() if (p / "adapter" / ADAPTER_CONFIG).exists()]
    return sorted(found, key=lambda a: ((a / ADAPTER_CONFIG).stat().st_mtime, a.parent.name), reverse=True)


def shipped_adapters(interpreters_dir: Path) -> list[Path]:
    """Adapter folders shipped under ``interpreters_dir`` (assets/interpreters), by name."""
    root = Path(interpreters_dir)
    return sorted(p for p in root.iterdir() if (p / ADAPTER_CONFIG).exists()) if root.is_dir() else []


def shipped_probes(probes_dir: Path) -> list[Path]:
    """Activation-probe folders shipped under ``probes_dir`` (assets/probes: ``model.safetensors`` + ``config.json``)."""
    root = Path(probes_dir)
    return sorted(p for p in root.iterdir() if (p / "model.safetensors").exists() and (p / "config.json").exists()) \
        if root.is_dir() else []


def effect_maps(runs_dir: Path) -> list[Path]:
    """Effect-map folders under ``runs_dir`` (those with an ``effects.json``), newest first."""
    root = Path(runs_dir)
    found = [p for p in root.iterdir() if (p / "effects.json").exists()] if root.is_dir() else []
    return sorted(found, key=lambda p: ((p / "effects.json").stat().st_mtime, p.name), reverse=True)
