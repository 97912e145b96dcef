"""A non-LLM baseline: a small CNN that reads the binned maps of one layer and counts each shape type.

It reads exactly what the interpreter LLM reads: the encoded text is decoded back to bins
[8, 14, 14] for conv1, [16, 7, 7] for conv2 (levels z..v = 0..4, `get_encoder(name).decode`), given as
one-hot channels (4 per filter, z implied by all zeros) or as one channel per filter scaled to 0..1.
A probe reads the layer it was trained on (``ProbeConfig.layer``; a probe saved before layers is conv1)
and refuses another's encodings. For every shape
type of L it predicts a count class 0..``max_count`` (cross-entropy per shape type; counts above
``max_count`` are clipped, the synthetic generator never draws more than 4 of a type).

If the probe reaches a high accuracy the activations carry the counts and an interpreter that
does worse loses them in reading or writing; if it does not, the encoding itself is the limit.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn

from interp.catalog import shipped_probes
from interp.encoding.encoders import get_encoder
from interp.encoding.thresholds import ThresholdSet
from interp.interpreters.dataset import manifest_layer
from interp.jsonl import read_jsonl, read_manifest
from interp.language import SHAPES, counts_from_vector, format_description
from interp.target.layers import DEFAULT_LAYER, Layer, get_layer, layer_of_shape

INPUTS = ("onehot", "scaled")
N_LEVELS = 5
N_FILTERS, SIDE = 8, 14
"""conv1's filters and map side (the default layer; `interp.interpreters.reader` reads conv1 with them). A probe's
own come from its ``ProbeConfig.layer``."""


@dataclass(frozen=True)
class ProbeConfig:
    """How the activation probe is built and trained; saved beside its weights."""

    inputs: str = "onehot"
    """'onehot': 4 channels per filter (levels l, m, h, v; z is all zeros); 'scaled': one channel per filter, level/4."""
    channels: int = 16
    """Channels of the first conv layers (the last has twice as many)."""
    hidden: int = 128
    """Width of the fully connected layer."""
    max_count: int = 4
    """Largest count class per shape type (§3.1: each type 0–4 times); larger counts are clipped."""
    epochs: int = 20
    """Passes over the training split."""
    batch_size: int = 128
    """Samples per step."""
    learning_rate: float = 5e-3
    """AdamW peak learning rate (one-cycle: 10 % warm-up, cosine decay)."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    seed: int = 0
    """Seeds initialisation and batch order."""
    threads: int | None = 1
    """torch CPU threads (None: torch's default). 1 by default: beside a fine-tuning job on 2 cores, a second
    thread made these small convs 4× slower (measured), not faster."""
    layer: str = DEFAULT_LAYER
    """The layer whose bins it reads: conv1 [8, 14, 14] or conv2 [16, 7, 7] (`baseline probe`: its dataset's)."""

    def __post_init__(self) -> None:
        if self.inputs not in INPUTS:
            raise ValueError(f"inputs must be one of {INPUTS}, got {self.inputs!r}")
        get_layer(self.layer)  # ValueError listing the registered layers
        if min(self.channels, self.hidden, self.max_count, self.epochs, self.batch_size) < 1:
            raise ValueError("channels, hidden, max_count, epochs and batch_size must be ≥ 1")
        if not self.learning_rate > 0 or self.weight_decay < 0:
            raise ValueError("learning_rate must be > 0 and weight_decay ≥ 0")

    @property
    def spec(self) -> Layer:
        """The registered `Layer` it reads."""
        return get_layer(self.layer)

    @property
    def in_channels(self) -> int:
        filters = self.spec.channels
        return filters * (N_LEVELS - 1) if self.inputs == "onehot" else filters

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ProbeConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


class ProbeNet(nn.Module):
    """bins as channels [b, C, S, S] of ``cfg.layer`` → logits [b, 8 shape types, max_count + 1]."""

    def __init__(self, cfg: ProbeConfig) -> None:
        super().__init__()
        c, n_classes = cfg.channels, cfg.max_count + 1
        self.n_classes = n_classes
        self.layer = cfg.spec
        # conv1's 14 × 14 is pooled to 7 × 7 first; conv2's maps are 7 × 7 already, so that pool is skipped (an
        # Identity keeps the module indices, hence the saved weights' names, the same for every layer).
        first_pool = self.layer.side > 7
        side = self.layer.side // 2 if first_pool else self.layer.side
        # A 1×1 conv mixes the level channels of a cell first: cheap, and the 3×3 convs stay small (CPU).
        self.features = nn.Sequential(
            nn.Conv2d(cfg.in_channels, c, 1), nn.ReLU(),
            nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2) if first_pool else nn.Identity(),  # 7 × 7
            nn.Conv2d(c, 2 * c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),                                  # 3 × 3
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * c * (side // 2) ** 2, cfg.hidden), nn.ReLU(),
                                  nn.Linear(cfg.hidden, len(SHAPES) * n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).view(len(x), len(SHAPES), self.n_classes)


def probe_inputs(bins: np.ndarray, inputs: str) -> torch.Tensor:
    """int bins [b, C, S, S] (0..4) of a registered layer ([b, 8, 14, 14] for conv1) → float32 as the probe
    reads them: [b, 4C, S, S] one-hot, or [b, C, S, S] scaled."""
    b = torch.as_tensor(np.asarray(bins), dtype=torch.long)
    side = layer_of_shape(b.shape, "bins", ndims=(4,)).side
    if inputs == "scaled":
        return b.float() / (N_LEVELS - 1)
    onehot = nn.functional.one_hot(b, N_LEVELS)[..., 1:]            # [b, C, S, S, 4]; z → all zeros
    return onehot.permute(0, 1, 4, 2, 3).reshape(len(b), -1, side, side).float()


def bins_from_encodings(encodings: Sequence[str], encoder: str, layer: str | Layer | None = None) -> np.ndarray:
    """Encoded texts → int8 bins [n, C, S, S] of the layer they are written for (the encoder's exact inverse
    reads it off the text: [n, 8, 14, 14] for conv1). No texts give [0, C, S, S] of ``layer`` (conv1 when None);
    texts of two layers in one batch are a ValueError."""

    enc = get_encoder(encoder)
    if not encodings:
        return np.zeros((0, *get_layer(layer or DEFAULT_LAYER).shape), dtype=np.int8)
    decoded = [enc.decode(t) for t in encodings]
    shapes = {b.shape for b in decoded}
    if len(shapes) > 1:
        found = " and ".join(layer_of_shape(s, ndims=(3,)).describe() for s in sorted(shapes))
        raise ValueError(f"the encodings are of more than one layer ({found}): one layer at a time")
    return np.stack(decoded).astype(np.int8)


def dataset_bins(dataset_dir: Path, split: str, encoder: str, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(bins int8 [n, C, S, S] of the dataset's layer ([n, 8, 14, 14] for conv1), counts int64 [n, 8]) of a
    dataset split, decoded with ``encoder``; empty arrays when the split file is missing."""
    path = Path(dataset_dir) / f"{split}.jsonl"
    rows = read_jsonl(path, limit) if path.exists() else []
    layer = manifest_layer(read_manifest(dataset_dir))
    return bins_from_encodings([r["encoding"] for r in rows], encoder, layer), counts_matrix(rows)


def check_layer(bins: np.ndarray, layer: str | Layer) -> None:
    """ValueError naming both layers when bins [n, C, S, S] are not ``layer``'s: a probe reads one layer."""
    want, got = get_layer(layer), layer_of_shape(np.shape(bins), "bins", ndims=(4,))
    if got.name != want.name:
        raise ValueError(f"this probe reads {want.name} {list(want.shape)}; the encoding is "
                         f"{got.name} {list(got.shape)}")


def counts_matrix(rows: Sequence[dict]) -> np.ndarray:
    """int64 [n, 8]: each row's ``counts`` dict in SHAPES order."""
    return np.array([[int(r["counts"].get(s, 0)) for s in SHAPES] for r in rows], dtype=np.int64).reshape(-1, len(SHAPES))


@dataclass
class ProbeResult:
    """A trained probe and how training went."""

    model: ProbeNet
    history: list[dict]
    """One entry per epoch: epoch, loss (mean train cross-entropy), and val_exact / val_shape_acc when validated."""
    seconds: float


@torch.no_grad()
def predict_counts(model: ProbeNet, bins: np.ndarray, inputs: str, batch_size: int = 512) -> np.ndarray:
    """int64 [n, 8]: the most likely count of each shape type from bins [n, C, S, S] of the probe's layer."""
    check_layer(bins, model.layer)
    model.eval()
    out = [model(probe_inputs(bins[i : i + batch_size], inputs)).argmax(-1) for i in range(0, len(bins), batch_size)]
    return torch.cat(out).numpy().astype(np.int64) if out else np.zeros((0, len(SHAPES)), np.int64)


def _validate(model: ProbeNet, bins: np.ndarray, counts: np.ndarray, cfg: ProbeConfig) -> dict:
    pred = predict_counts(model, bins, cfg.inputs)
    truth = np.minimum(counts, cfg.max_count)
    return {"val_exact": float((pred == truth).all(1).mean()), "val_shape_acc": float((pred == truth).mean())}


def train_probe(bins: np.ndarray, counts: np.ndarray, cfg: ProbeConfig,
                val: tuple[np.ndarray, np.ndarray] | None = None, progress: bool = True) -> ProbeResult:
    """Fit a ProbeNet on bins [n, C, S, S] of ``cfg.layer`` ([n, 8, 14, 14] for conv1) and counts int [n, 8]
    (seeded; CPU-sized)."""
    from tqdm.auto import tqdm

    if len(bins) != len(counts) or len(bins) == 0:
        raise ValueError(f"need as many (≥ 1) bins as counts, got {len(bins)} and {len(counts)}")
    got = layer_of_shape(np.shape(bins), "bins", ndims=(4,))
    if got.name != cfg.layer:
        raise ValueError(f"the bins are {got.name}'s {list(got.shape)}, but the probe config reads {cfg.layer}: "
                         f"train it with layer={got.name!r}")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    x = probe_inputs(bins, cfg.inputs)
    y = torch.as_tensor(np.minimum(np.asarray(counts), cfg.max_count), dtype=torch.long)
    model = ProbeNet(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * -(-len(x) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.learning_rate, total_steps=steps, pct_start=0.1)
    loss_fn = nn.CrossEntropyLoss()
    history = []
    for epoch in tqdm(range(1, cfg.epochs + 1), desc="probe", unit="epoch", disable=not progress):
        model.train()
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(0, len(x), cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            logits = model(x[idx])
            loss = loss_fn(logits.reshape(-1, model.n_classes), y[idx].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        entry = {"epoch": epoch, "loss": total / len(x)}
        if val is not None and len(val[0]):
            entry.update(_validate(model, *val, cfg))
        history.append(entry)
    model.eval()
    return ProbeResult(model, history, time.perf_counter() - start)


def save_probe(model: ProbeNet, cfg: ProbeConfig, directory: Path, summary: dict | None = None) -> None:
    """``model.safetensors`` + ``config.json`` ({config, summary})."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(directory / "model.safetensors"))
    (directory / "config.json").write_text(json.dumps({"config": cfg.to_dict(), "summary": summary or {}},
                                                      indent=2, default=float) + "\n")


PROBE_WEIGHTS = "model.safetensors"


def load_probe(directory: Path) -> tuple[ProbeNet, ProbeConfig, dict]:
    """(model in eval mode, its config, the summary saved with it)."""
    from safetensors.torch import load_file

    directory = Path(directory)
    meta = json.loads((directory / "config.json").read_text())
    cfg = ProbeConfig.from_dict(meta["config"])
    model = ProbeNet(cfg)
    model.load_state_dict(load_file(str(directory / "model.safetensors")))
    return model.eval(), cfg, meta.get("summary", {})


def shipped_probe(probes_dir: Path, layer: str = DEFAULT_LAYER) -> Path | None:
    """The first shipped probe folder (by name, `interp.catalog.shipped_probes`) that reads ``layer`` (its saved
    config's; conv1 for one saved before layers); None if there is none."""
    for folder in shipped_probes(probes_dir):
        if ProbeConfig.from_dict(json.loads((folder / "config.json").read_text())["config"]).layer == layer:
            return folder
    return None


@dataclass
class ProbeInterpreter:
    """The probe behind the Interpreter interface: decode → predict counts → canonical description in L."""

    model: ProbeNet
    config: ProbeConfig
    encoder: str = "paper"
    thresholds: object = None
    name: str = "probe"

    @property
    def layer(self) -> str:
        """The layer whose encodings it reads (its config's): evaluation and the pages encode with it."""
        return self.config.layer

    def describe(self, encodings: Sequence[str], max_new_tokens: int = 48) -> list[str]:
        bins = bins_from_encodings(encodings, self.encoder, self.layer)
        counts = predict_counts(self.model, bins, self.config.inputs)
        return [format_description(counts_from_vector(c)) for c in counts]

    @classmethod
    def load(cls, directory: Path) -> "ProbeInterpreter":
        """A probe saved by `baseline probe`, reading with the encoder and thresholds it was trained on."""
        model, cfg, summary = load_probe(directory)
        tset = summary.get("threshold_set")
        return cls(model, cfg, encoder=summary.get("encoder", "paper"),
                   thresholds=ThresholdSet.from_dict(tset) if tset else None, name=f"probe:{directory}")

    def stream(self, prompt: str, max_new_tokens: int = 128, temperature: float = 0.0,
               stop_event=None) -> Iterator[str]:
        yield "The activation probe only counts shapes; it cannot answer questions."
