"""The target CNN's layers whose activations the pipeline reads: one registry, keyed by name.

    conv1: 1→8, 9×9, ReLU, 2×2 max-pool  → [8, 14, 14]  (the paper's layer, §3.2)
    conv2: 8→16, 9×9, ReLU, 2×2 max-pool → [16, 7, 7]

Every stage that used to assume conv1's 8 × 14 × 14 (thresholds, binning, encoders, pages) asks this
module instead. It is numpy-free and torch-free on purpose: the encoding modules are numpy-only leaves,
and they import it. The capture itself (a scoped forward hook on ``Layer.module``) is
`interp.target.activations.capture`, beside the hook and `capture_conv1`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_LAYER = "conv1"
"""The paper's layer: what every caller gets without asking."""


@dataclass(frozen=True)
class Layer:
    """One capturable block of the target CNN (after ReLU and max-pool)."""

    name: str
    """Registry key, shown in the UI and saved with threshold sets ("conv1")."""
    channels: int
    """Filters, i.e. activation maps, of the block (8 for conv1)."""
    side: int
    """Height = width of each map after pooling (14 for conv1)."""
    module: str
    """Attribute of `TargetCNN` whose output is the block's activations (the hook goes there)."""

    def __post_init__(self) -> None:
        if not self.name or self.channels < 1 or self.side < 1:
            raise ValueError(f"a layer needs a name, channels >= 1 and side >= 1, got {self}")

    @property
    def cells(self) -> int:
        """Cells per map (side²)."""
        return self.side * self.side

    @property
    def shape(self) -> tuple[int, int, int]:
        """One sample's maps: (channels, side, side)."""
        return (self.channels, self.side, self.side)

    def describe(self, batch: str = "") -> str:
        """``"[8, 14, 14] (conv1)"``, or with ``batch="b"``: ``"[b, 8, 14, 14] (conv1)"``."""
        dims = ", ".join([batch] * bool(batch) + [str(d) for d in self.shape])
        return f"[{dims}] ({self.name})"


LAYERS: dict[str, Layer] = {
    layer.name: layer
    for layer in (
        Layer("conv1", channels=8, side=14, module="conv1"),
        Layer("conv2", channels=16, side=7, module="conv2"),
    )
}
"""Registered layers in network order, conv1 first. Channel counts are distinct, so a map or a
threshold table names its layer by its shape alone (`layer_of_shape`, `layer_of_channels`)."""
assert len({layer.channels for layer in LAYERS.values()}) == len(LAYERS)


def list_layers() -> list[str]:
    """Registered layer names, conv1 first."""
    return list(LAYERS)


def get_layer(layer: str | Layer) -> Layer:
    """The registered `Layer` called ``layer`` (a `Layer` is returned as it is); ValueError listing the names."""
    if isinstance(layer, Layer):
        return layer
    try:
        return LAYERS[layer]
    except (KeyError, TypeError):
        raise ValueError(f"unknown layer {layer!r}; registered: {', '.join(LAYERS)}") from None


def shapes_text(batch: str = "") -> str:
    """Every registered layer's map shape, for messages: ``"[8, 14, 14] (conv1) or [16, 7, 7] (conv2)"``."""
    return " or ".join(layer.describe(batch) for layer in LAYERS.values())


def layer_of_shape(shape: Sequence[int], what: str = "activations", batch: str = "b",
                   ndims: tuple[int, ...] = (3, 4)) -> Layer:
    """The layer whose maps end ``shape``: [b, C, S, S] or [C, S, S] (``ndims`` says which of the two may
    come); ValueError listing the shapes that fit otherwise, e.g. ``activations must be [b, 8, 14, 14]
    (conv1) or [b, 16, 7, 7] (conv2) or one sample of them, got [8, 14]``."""
    dims = tuple(int(d) for d in shape)
    if len(dims) in ndims:
        for layer in LAYERS.values():
            if dims[-3:] == layer.shape:
                return layer
    fits = shapes_text(batch if 4 in ndims else "")
    if 3 in ndims and 4 in ndims:
        fits += " or one sample of them"
    raise ValueError(f"{what} must be {fits}, got {list(dims)}")


def layer_of_channels(channels: int) -> Layer | None:
    """The layer with ``channels`` filters, or None."""
    return next((layer for layer in LAYERS.values() if layer.channels == channels), None)
