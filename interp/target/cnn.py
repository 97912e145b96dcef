"""The target CNN of §3.1, its training on MNIST and its checkpoint (safetensors + JSON)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from interp.data.mnist import Mnist, MnistSplit

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


class TargetCNN(nn.Module):
    """§3.1: conv1 1→8 (9×9, stride 1, pad 4) + ReLU + 2×2 max-pool, conv2 8→16 likewise, linear → 10.

    Input: float [batch, 1, 28, 28] in 0..1 (see ``to_input``); conv1 block output [batch, 8, 14, 14].
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(1, 8, 9, stride=1, padding=4), nn.ReLU(), nn.MaxPool2d(2))
        self.conv2 = nn.Sequential(nn.Conv2d(8, 16, 9, stride=1, padding=4), nn.ReLU(), nn.MaxPool2d(2))
        self.fc = nn.Linear(16 * 7 * 7, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[batch, 1, 28, 28] → logits [batch, 10]."""
        return self.fc(self.conv2(self.conv1(x)).flatten(1))


def to_input(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 [batch, 28, 28] or [28, 28] (0..255) → float [batch, 1, 28, 28] in 0..1."""
    x = torch.as_tensor(np.asarray(images))
    if x.ndim == 2:
        x = x[None]
    if x.shape[-2:] != (28, 28):
        raise ValueError(f"expected 28×28 images, got {tuple(x.shape)}")
    return (x.float() / 255.0).reshape(-1, 1, 28, 28)


@dataclass(frozen=True)
class TargetConfig:
    """How the target CNN is trained (the architecture is fixed by §3.1)."""

    epochs: int = 20
    """Passes over the training split."""
    batch_size: int = 64
    """Images per optimiser step."""
    lr: float = 3e-3
    """Peak learning rate of the one-cycle schedule (AdamW)."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    max_shift: float = 2.0
    """Augmentation: random translation up to this many pixels (0 disables)."""
    max_rotation: float = 10.0
    """Augmentation: random rotation up to this many degrees."""
    seed: int = 0
    """Seeds weights, batching and augmentation."""
    threads: int = 2
    """torch CPU threads."""

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be ≥ 1")
        if not (self.lr > 0 and self.weight_decay >= 0 and self.max_shift >= 0 and self.max_rotation >= 0):
            raise ValueError("lr must be > 0; weight_decay, max_shift, max_rotation ≥ 0")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TargetConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _augment(x: torch.Tensor, cfg: TargetConfig, gen: torch.Generator) -> torch.Tensor:
    """Random small rotations and shifts, as handwriting varies; one affine warp per batch."""
    b = x.shape[0]
    angle = (torch.rand(b, generator=gen) * 2 - 1) * math.radians(cfg.max_rotation)
    shift = (torch.rand(b, 2, generator=gen) * 2 - 1) * cfg.max_shift * 2 / 28
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")


@torch.no_grad()
def predict_proba(model: TargetCNN, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """Class probabilities float [n, 10] for uint8 images [n, 28, 28]."""
    model.eval()
    out = [F.softmax(model(to_input(images[i : i + batch_size])), dim=1) for i in range(0, len(images), batch_size)]
    return torch.cat(out).numpy()


def evaluate_target(model: TargetCNN, split: MnistSplit) -> float:
    """Accuracy on a split."""
    return float((predict_proba(model, split.images).argmax(1) == split.labels).mean())


def train_target(data: Mnist, cfg: TargetConfig, progress: bool = True) -> tuple[TargetCNN, dict]:
    """Train on ``data.train``; returns the model and a summary with test accuracy."""
    from tqdm.auto import tqdm

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model = TargetCNN()
    x_all, y_all = to_input(data.train.images), torch.as_tensor(data.train.labels)
    steps_per_epoch = math.ceil(len(y_all) / cfg.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch)
    bar = tqdm(range(cfg.epochs), desc="target CNN", disable=not progress, unit="epoch")
    for _ in bar:
        model.train()
        order = torch.randperm(len(y_all), generator=gen)
        total = 0.0
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            x = x_all[idx]
            if cfg.max_shift or cfg.max_rotation:
                x = _augment(x, cfg, gen)
            loss = F.cross_entropy(model(x), y_all[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        bar.set_postfix(loss=f"{total / len(y_all):.4f}")
    acc = evaluate_target(model, data.test)
    summary = {"accuracy": acc, "n": len(data.test), "source": data.source, "split": "test",
               "n_train": len(data.train), "config": cfg.to_dict()}
    return model, summary


def save_target(model: TargetCNN, directory: Path, summary: dict) -> None:
    """Weights as safetensors (never pickle) and the training summary/config as JSON."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(directory / WEIGHTS_FILE))
    (directory / CONFIG_FILE).write_text(json.dumps(summary, indent=2) + "\n")


def load_target(directory: Path) -> TargetCNN:
    """The checkpoint saved by ``save_target``, in eval mode."""
    from safetensors.torch import load_file

    path = Path(directory) / WEIGHTS_FILE
    if not path.exists():
        raise FileNotFoundError(f"no target checkpoint at {path}; run `python -m interp target train`")
    model = TargetCNN()
    model.load_state_dict(load_file(str(path)))
    return model.eval()


def load_target_summary(directory: Path) -> dict:
    """The JSON written beside the weights (accuracy, source, config); {} if absent."""
    path = Path(directory) / CONFIG_FILE
    return json.loads(path.read_text()) if path.exists() else {}
