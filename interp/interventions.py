"""Interventions on a layer's activations: switch a filter off, scale it, or clamp it to a bin.

They act on the activations of a registered layer (`interp.target.layers`: conv1 [.., 8, 14, 14], the
default, or conv2 [.., 16, 7, 7]) after ReLU and max-pool, never on saved weights: as a pure function
on the tensor (`apply_interventions`) and as a scoped forward hook on the target's block of that layer
(`intervened`), so the rest of the CNN (conv2 after conv1, the classifier) sees the changed maps and its
digit prediction changes with them.

- ``ablate``: the filter's map is zero (every cell z).
- ``scale``: the map times a factor in [0, 3].
- ``clamp``: where the filter fires (bin above z) the activation is set to the middle of the chosen
  bin of its thresholds (v: half a bin width above t4); z clamps to 0, i.e. ablates. The pattern
  of where it fires stays; its strength is what changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from interp.encoding.encoders import DEFAULT_ENCODER, LETTERS
from interp.encoding.thresholds import ThresholdSet, threshold_table
from interp.language import SHAPES, parse_description
from interp.pipeline import Analysis, analyze_image
from interp.target.activations import hooked
from interp.target.cnn import TargetCNN, to_input
from interp.target.layers import DEFAULT_LAYER, Layer, get_layer, layer_of_channels

OPS = ("ablate", "scale", "clamp")
MAX_SCALE = 3.0


@dataclass(frozen=True)
class Intervention:
    """One change to one filter's map."""

    filter: int
    """Filter of the layer: 0..7 on conv1, 0..15 on conv2 (`check_filters` holds it to a layer)."""
    op: str = "ablate"
    """'ablate', 'scale' or 'clamp'."""
    value: float | str | None = None
    """scale: the factor (0…3); clamp: the bin letter (z, l, m, h, v); ablate: unused."""

    def __post_init__(self) -> None:
        if not isinstance(self.filter, int | np.integer) or int(self.filter) < 0:
            raise ValueError(f"filter must be an integer ≥ 0, got {self.filter!r}")
        if self.op not in OPS:
            raise ValueError(f"op must be one of {OPS}, got {self.op!r}")
        if self.op == "scale" and not (isinstance(self.value, int | float) and 0 <= float(self.value) <= MAX_SCALE):
            raise ValueError(f"scale takes a factor in [0, {MAX_SCALE:g}], got {self.value!r}")
        if self.op == "clamp" and (not isinstance(self.value, str) or self.value not in LETTERS):
            raise ValueError(f"clamp takes a bin letter, one of {', '.join(LETTERS)}; got {self.value!r}")

    @property
    def label(self) -> str:
        if self.op == "scale":
            return f"scale filter {self.filter} ×{float(self.value):g}"
        if self.op == "clamp":
            return f"clamp filter {self.filter} to {self.value}"
        return f"ablate filter {self.filter}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Intervention":
        return cls(int(d["filter"]), str(d.get("op", "ablate")), d.get("value"))


def check_filters(interventions: Sequence[Intervention], layer: str | Layer = DEFAULT_LAYER) -> None:
    """ValueError naming the layer when an intervention's filter is not one of ``layer``'s
    ("filter 9 is not a filter of conv1, which has 8 (0..7)")."""
    spec = get_layer(layer)
    for iv in interventions:
        if int(iv.filter) >= spec.channels:
            raise ValueError(f"filter {iv.filter} is not a filter of {spec.name}, which has {spec.channels} "
                             f"(0..{spec.channels - 1})")


def bin_value(thresholds: ThresholdSet | np.ndarray, filter: int, letter: str,
              layer: str | Layer | None = None) -> float:
    """A representative activation of bin ``letter`` of ``filter`` of ``layer`` (None: a set's own layer, a raw
    table's conv1): the middle of its interval (v: t4 plus half the h bin's width; z: 0)."""
    if layer is None:
        layer = thresholds.layer if isinstance(thresholds, ThresholdSet) else DEFAULT_LAYER
    t = threshold_table(thresholds, layer)[filter]
    k = LETTERS.index(letter)
    if k == 0:
        return 0.0
    if k == 4:
        return float(t[3] + max(t[3] - t[2], 1e-3) / 2)
    return float((t[k - 1] + t[k]) / 2)


def apply_interventions(acts: torch.Tensor, interventions: Sequence[Intervention],
                        thresholds: ThresholdSet | np.ndarray | None = None) -> torch.Tensor:
    """A changed copy of activations [.., C, S, S] of a registered layer (torch); ``thresholds`` (of that layer)
    are needed for clamps."""
    layer = layer_of_channels(int(acts.shape[-3])) if acts.ndim >= 3 else None
    if layer is None:
        raise ValueError(f"activations must be one registered layer's maps [.., C, S, S], got {list(acts.shape)}")
    check_filters(interventions, layer)
    out = acts.clone()
    for iv in interventions:
        f = int(iv.filter)
        if iv.op == "ablate":
            out[..., f, :, :] = 0
        elif iv.op == "scale":
            out[..., f, :, :] *= float(iv.value)
        else:
            if thresholds is None:
                raise ValueError("clamping to a bin needs the threshold set")
            t1 = float(threshold_table(thresholds, layer)[f, 0])
            fires = out[..., f, :, :] > t1
            out[..., f, :, :] = torch.where(fires, torch.full_like(out[..., f, :, :],
                                                                   bin_value(thresholds, f, iv.value, layer)), 0.0)
    return out


@contextmanager
def intervened(model: TargetCNN, interventions: Sequence[Intervention],
               thresholds: ThresholdSet | np.ndarray | None = None,
               layer: str | Layer = DEFAULT_LAYER) -> Iterator[TargetCNN]:
    """Inside the block, ``model``'s block of ``layer`` outputs the intervened maps; the hook is removed in
    ``finally``. A filter the layer lacks is refused here, before any forward pass."""
    spec = get_layer(layer)
    check_filters(interventions, spec)
    handle = getattr(model, spec.module).register_forward_hook(
        lambda _m, _i, out: apply_interventions(out, interventions, thresholds))
    try:
        yield model
    finally:
        handle.remove()


@torch.no_grad()
def run_intervened(model: TargetCNN, images: np.ndarray, interventions: Sequence[Intervention],
                   thresholds: ThresholdSet | np.ndarray | None = None,
                   batch_size: int = 1024, layer: str | Layer = DEFAULT_LAYER) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images [n, 28, 28] → (intervened activations of ``layer`` float32 [n, C, S, S], digit
    probabilities [n, 10])."""
    spec = get_layer(layer)
    model.eval()
    images = np.asarray(images)
    images = images[None] if images.ndim == 2 else images
    probs = []
    # The recording hook is registered after the intervention's, so it records the changed maps.
    with intervened(model, interventions, thresholds, spec), hooked(getattr(model, spec.module)) as outputs:
        for i in range(0, len(images), batch_size):
            probs.append(torch.softmax(model(to_input(images[i : i + batch_size])), -1).numpy())
    if not probs:
        return np.zeros((0, *spec.shape), np.float32), np.zeros((0, 10), np.float32)
    return (np.concatenate([o.numpy() for o in outputs]).astype(np.float32),
            np.concatenate(probs).astype(np.float32))


@dataclass(frozen=True)
class InterventionResult:
    """One image before and after: the target's analysis and the interpreter's reading of each."""

    interventions: tuple[Intervention, ...]
    before: Analysis
    after: Analysis
    description_before: str | None
    description_after: str | None
    counts_before: dict[str, int]
    counts_after: dict[str, int]

    @property
    def changed(self) -> dict[str, tuple[int, int]]:
        """Shape type → (count before, count after), for the types whose count changed."""
        return {s: (self.counts_before.get(s, 0), self.counts_after.get(s, 0)) for s in SHAPES
                if self.counts_before.get(s, 0) != self.counts_after.get(s, 0)}

    @property
    def changed_cells(self) -> int:
        """Cells of the layer's bins (of 8×14×14 on conv1, 16×7×7 on conv2) whose letter changed."""
        return int((self.before.bins != self.after.bins).sum())


def intervene_image(model: TargetCNN, image: np.ndarray, interventions: Sequence[Intervention],
                    thresholds: ThresholdSet, encoder: str = DEFAULT_ENCODER,
                    describe: Callable[[list[str]], list[str]] | None = None,
                    cache: dict[str, str] | None = None) -> InterventionResult:
    """One uint8 [28, 28] image through the target twice, as it is and with ``interventions`` on the layer of
    ``thresholds`` (conv1 or conv2: the interpreter's), each encoded with ``thresholds``/``encoder`` and, with
    ``describe`` (an interpreter's `describe`), read in one batch.

    ``cache`` (encoding → description, kept by the caller for one interpreter) skips what was read before:
    the page re-describes only the intervened image as the sliders move, and an unchanged encoding not at all.
    """
    layer = thresholds.layer
    check_filters(interventions, layer)  # before any forward pass
    before = analyze_image(model, image, thresholds, encoder, layer)
    with intervened(model, interventions, thresholds, layer):
        after = analyze_image(model, image, thresholds, encoder, layer)
    texts: list[str | None] = [None, None]
    if describe is not None:
        cache = {} if cache is None else cache
        todo = [e for e in dict.fromkeys([before.encoding, after.encoding]) if e not in cache]
        if todo:
            cache.update(zip(todo, describe(todo), strict=True))
        texts = [cache[before.encoding], cache[after.encoding]]
    counts = [parse_description(t).counts if t is not None else {} for t in texts]
    return InterventionResult(tuple(interventions), before, after, texts[0], texts[1], counts[0], counts[1])
