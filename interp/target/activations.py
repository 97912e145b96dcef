"""Capture the target's activations of a registered layer (after ReLU and max-pool) with a scoped hook.

conv1 [8, 14, 14] is the paper's layer and the default; `interp.target.layers` lists the others (conv2 [16, 7, 7]).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from interp.target.cnn import TargetCNN, to_input
from interp.target.layers import DEFAULT_LAYER, Layer, get_layer


@contextmanager
def hooked(module: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Record ``module``'s outputs while the block runs; the hook is removed in ``finally``."""
    outputs: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda _m, _i, out: outputs.append(out.detach()))
    try:
        yield outputs
    finally:
        handle.remove()


@torch.no_grad()
def capture(model: TargetCNN, images: np.ndarray, layer: str | Layer = DEFAULT_LAYER,
            batch_size: int = 1024) -> np.ndarray:
    """uint8 images [batch, 28, 28] → float32 activations [batch, C, S, S] (≥ 0) of ``layer``.

    conv1 gives [batch, 8, 14, 14], conv2 [batch, 16, 7, 7]. We run the model's own forward with a
    hook on the layer's block, so that the captured tensor is exactly what the target computes
    (§3.2: A_j = T(x_j)[Conv1]); the hook is removed in ``finally``.
    """
    spec = get_layer(layer)
    model.eval()
    images = np.asarray(images)
    if images.ndim == 2:
        images = images[None]
    with hooked(getattr(model, spec.module)) as outputs:
        for i in range(0, len(images), batch_size):
            model(to_input(images[i : i + batch_size]))
    chunks = [o.numpy() for o in outputs]
    if not chunks:
        return np.zeros((0, *spec.shape), dtype=np.float32)
    return np.concatenate(chunks).astype(np.float32, copy=False)


def capture_conv1(model: TargetCNN, images: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """uint8 images [batch, 28, 28] → conv1 activations float32 [batch, 8, 14, 14] (≥ 0): `capture` on conv1."""
    return capture(model, images, "conv1", batch_size)


def image_activations(model: TargetCNN, image: np.ndarray, layer: str | Layer = DEFAULT_LAYER) -> np.ndarray:
    """One uint8 [28, 28] image → float32 [C, S, S] of ``layer`` ([8, 14, 14] for conv1)."""
    return capture(model, np.asarray(image)[None], layer)[0]


def blank_response(model: TargetCNN, layer: str | Layer = DEFAULT_LAYER) -> np.ndarray:
    """Each filter's largest activation on an all-black image, float [C] (biases make it > 0 on conv1)."""
    spec = get_layer(layer)
    return image_activations(model, np.zeros((28, 28), np.uint8), spec).reshape(spec.channels, -1).max(1)


_THREADS = threading.Lock()


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one intra-op thread inside the block; the previous setting is restored after.

    One 28×28 image is far too small to split across threads, and when the other cores are busy
    (a training job, another session) every parallel region waits for a free core: on the 2-core
    project machine a forward pass took ~48 ms with 2 threads and ~0.8 ms with 1.
    """
    with _THREADS:
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(before)
