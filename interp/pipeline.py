"""The one place an image becomes activations, bins, an encoding and a description.

    image ─target CNN─> conv1 activations [8, 14, 14] ─thresholds─> bins ─encoder─> c(a) ─interpreter─> text
                                                                                     └─language─> counts

`analyze_image` (one image, with the target's prediction: the app's pages), `encode_images` (a batch:
datasets, evaluation sets), `describe_image` (one image to a parsed description: Labeling, the CLI),
`thresholds_for` (which thresholds an interpreter reads with) and `interpreter_layer` (which layer's maps
it reads: conv1, or conv2 [16, 7, 7]) are what every caller uses; the stages themselves live in
interp.target, interp.encoding, interp.interpreters and interp.language.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from interp.encoding.encoders import DEFAULT_ENCODER, LETTERS, bin_activations, encode_activations, get_encoder
from interp.encoding.thresholds import ThresholdSet, threshold_table
from interp.language import parse_description
from interp.target.activations import capture, hooked, single_thread
from interp.target.cnn import TargetCNN, to_input
from interp.target.layers import DEFAULT_LAYER, Layer, get_layer


@dataclass(frozen=True)
class Analysis:
    """What the target and the encoder make of one image."""

    probabilities: np.ndarray
    """float [10]: the target's softmax over the digits 0..9."""
    prediction: int
    """argmax of ``probabilities``."""
    activations: np.ndarray
    """float32 [C, S, S] of ``layer`` after ReLU and 2×2 max-pool: [8, 14, 14] for conv1, [16, 7, 7] for conv2."""
    bins: np.ndarray
    """int8 [C, S, S]: levels 0..4 (z, l, m, h, v) under the thresholds used."""
    encoding: str
    """c(a): the text the encoder writes for ``bins``."""
    encoder: str
    """Name of the registered encoder that wrote ``encoding``."""
    n_chars: int
    """len(encoding)."""
    layer: str = DEFAULT_LAYER
    """The registered layer (`interp.target.layers`) whose maps these are."""

    @property
    def letters(self) -> np.ndarray:
        """str [C, S, S]: each cell's level letter (z/l/m/h/v), for grids and hover text."""
        return np.array(list(LETTERS))[self.bins]




@torch.no_grad()
def analyze_image(
    model: TargetCNN, image: np.ndarray, thresholds: ThresholdSet | np.ndarray, encoder: str = DEFAULT_ENCODER,
    layer: str | Layer = DEFAULT_LAYER,
) -> Analysis:
    """uint8 image [28, 28] → its `Analysis` of ``layer``'s maps (one forward pass; the hook is removed after).

    Raises ValueError for an image that is not 28×28, thresholds that are not a valid [C, 4]
    table of that layer (a conv1 set for conv2: both named), an unknown encoder or layer.
    """
    image = np.asarray(image)
    if image.shape != (28, 28):
        raise ValueError(f"expected a 28×28 image, got shape {list(image.shape)}")
    enc = get_encoder(encoder)  # fail before the forward pass on a bad name
    spec = get_layer(layer)
    model.eval()
    with single_thread(), hooked(getattr(model, spec.module)) as outputs:
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
        layer=spec.name,
    )


def encode_image(model: TargetCNN, image: np.ndarray, thresholds: ThresholdSet | np.ndarray,
                 encoder: str = DEFAULT_ENCODER, layer: str | Layer = DEFAULT_LAYER) -> str:
    """c(a) of one uint8 [28, 28] image's ``layer`` maps (`analyze_image`'s encoding)."""
    return analyze_image(model, image, thresholds, encoder, layer).encoding


def encode_images(model: TargetCNN, images: np.ndarray, thresholds: ThresholdSet | np.ndarray,
                  encoder: str = DEFAULT_ENCODER, layer: str | Layer = DEFAULT_LAYER) -> list[str]:
    """uint8 images [n, 28, 28] → one c(a) each of ``layer``'s maps, batched through the target (datasets,
    evaluation sets). Thresholds of another layer are refused (naming both) before the forward pass."""
    spec = get_layer(layer)
    get_encoder(encoder)
    threshold_table(thresholds, spec)  # fail before capturing thousands of images
    return encode_activations(capture(model, images, spec), thresholds, encoder)


def interpreter_layer(reader: Any) -> str:
    """The layer whose maps an interpreter, probe or app choice reads: its ``layer``, else conv1 (everything
    made before layers existed reads conv1)."""
    return get_layer(getattr(reader, "layer", None) or DEFAULT_LAYER).name


def thresholds_for(own: ThresholdSet | Mapping | None,
                   fallback: ThresholdSet | Callable[[], ThresholdSet],
                   layer: str | Layer = DEFAULT_LAYER) -> ThresholdSet:
    """The thresholds an interpreter of ``layer`` reads with: its own (those its training data used; a dict is
    read too), else ``fallback`` (the app's active set, the store's default; a callable is called only then).

    A set of another layer is a ValueError naming both: it would be refused at binning anyway, later.
    """
    spec = get_layer(layer)
    if isinstance(own, ThresholdSet):
        tset = own
    elif isinstance(own, Mapping):
        tset = ThresholdSet.from_dict(dict(own))
    else:
        tset = fallback() if callable(fallback) else fallback
    if tset.layer != spec.name:
        raise ValueError(f"this interpreter reads {spec.name} {list(spec.shape)}; threshold set {tset.name!r} "
                         f"was made for {tset.layer}: give it a {spec.name} threshold set")
    return tset


@dataclass(frozen=True)
class Description:
    """What an interpreter said about one image, and how it reads."""

    encoding: str
    """c(a) the interpreter was given."""
    thresholds: str
    """Name of the threshold set that binned the activations."""
    text: str
    """The interpreter's raw output."""
    counts: dict[str, int]
    """Count per shape type read from ``text`` (`parse_description`: zeros where it names none)."""
    well_formed: bool
    """``text`` is exactly the structured language's canonical form."""


def describe_image(interpreter: Any, model: TargetCNN, image: np.ndarray, thresholds: ThresholdSet) -> Description:
    """One uint8 [28, 28] image → the interpreter's parsed description, encoded with its own encoder and
    layer (`interpreter_layer`; ``thresholds`` must be of that layer)."""
    encoding = encode_image(model, image, thresholds, interpreter.encoder, interpreter_layer(interpreter))
    text = interpreter.describe([encoding])[0]
    parsed = parse_description(text)
    return Description(encoding, thresholds.name, text, parsed.counts, parsed.well_formed)


def probe_reading(probe: Any, model: TargetCNN, image: np.ndarray,
                  default: ThresholdSet | Callable[[], ThresholdSet]) -> dict[str, int]:
    """The shape counts an activation probe (`interp.interpreters.probe.ProbeInterpreter`) reads in one image,
    of its own layer, binned with its own thresholds (else ``default``): the reference the Chat page checks
    answers against."""
    layer = interpreter_layer(probe)
    encoding = encode_image(model, image, thresholds_for(probe.thresholds, default, layer), probe.encoder, layer)
    return parse_description(probe.describe([encoding])[0]).counts


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
