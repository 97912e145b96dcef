"""One image through the whole exploration pipeline: prediction, conv1 activations, bins, encoding.

This is what the app's pages call for the current image (drawn, uploaded, MNIST or generated):
one forward pass of the target gives both the class probabilities and, through the scoped conv1
hook, the activations A = T(x)[Conv1] (§3.2) that the encoder c turns into text.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from interp.encoding.encoders import DEFAULT_ENCODER, LETTERS, bin_activations, get_encoder
from interp.encoding.thresholds import ThresholdSet
from interp.target.activations import hooked
from interp.target.cnn import TargetCNN, to_input


@dataclass(frozen=True)
class Analysis:
    """What the target and the encoder make of one image."""

    probabilities: np.ndarray
    """float [10]: the target's softmax over the digits 0..9."""
    prediction: int
    """argmax of ``probabilities``."""
    activations: np.ndarray
    """float32 [8, 14, 14]: conv1 after ReLU and 2×2 max-pool."""
    bins: np.ndarray
    """int8 [8, 14, 14]: levels 0..4 (z, l, m, h, v) under the thresholds used."""
    encoding: str
    """c(a): the text the encoder writes for ``bins``."""
    encoder: str
    """Name of the registered encoder that wrote ``encoding``."""
    n_chars: int
    """len(encoding)."""

    @property
    def letters(self) -> np.ndarray:
        """str [8, 14, 14]: each cell's level letter (z/l/m/h/v), for grids and hover text."""
        return np.array(list(LETTERS))[self.bins]


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


@torch.no_grad()
def analyze_image(
    model: TargetCNN, image: np.ndarray, thresholds: ThresholdSet | np.ndarray, encoder: str = DEFAULT_ENCODER
) -> Analysis:
    """uint8 image [28, 28] → its `Analysis` (one forward pass; the conv1 hook is removed after).

    Raises ValueError for an image that is not 28×28, thresholds that are not a valid [8, 4]
    table, or an unknown encoder.
    """
    image = np.asarray(image)
    if image.shape != (28, 28):
        raise ValueError(f"expected a 28×28 image, got shape {list(image.shape)}")
    enc = get_encoder(encoder)  # fail before the forward pass on a bad name
    model.eval()
    with single_thread(), hooked(model.conv1) as outputs:
        logits = model(to_input(image.astype(np.uint8, copy=False)))
    probs = F.softmax(logits, dim=1)[0].numpy().astype(np.float64)
    acts = outputs[0][0].numpy().astype(np.float32, copy=False)
    bins = bin_activations(acts, thresholds)
    text = enc.encode(bins)
    return Analysis(
        probabilities=probs,
        prediction=int(probs.argmax()),
        activations=acts,
        bins=bins,
        encoding=text,
        encoder=encoder,
        n_chars=len(text),
    )


def count_tokens(text: str, tokenizer: Any | None) -> int | None:
    """Tokens ``tokenizer`` (a Hugging Face tokenizer) makes of ``text``, without special tokens.

    None when no tokenizer is available (the model is not fetched).
    """
    if tokenizer is None:
        return None
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def next_example(labels: np.ndarray, digit: int, after: int = -1) -> int:
    """Index of the next image of class ``digit`` after index ``after``, wrapping around.

    ``labels`` int [n]. Raises ValueError if no image has that label.
    """
    labels = np.asarray(labels)
    hits = np.flatnonzero(labels == digit)
    if hits.size == 0:
        raise ValueError(f"no image with label {digit}")
    later = hits[hits > after]
    return int(later[0] if later.size else hits[0])


def to_npy_bytes(array: np.ndarray) -> bytes:
    """An array as the bytes of a ``.npy`` file (``np.load`` reads it back), for downloads."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    return buf.getvalue()
