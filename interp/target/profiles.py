"""One measured sentence per conv1 filter: which shape type it prefers, its orientation, its favourite patches.

§3.1 found the concepts of conv1 by looking at weights and deep-dream images; this module measures them:

- `shape_responses`: each filter's response to generated images holding exactly one shape of each type.
- `orientation_tuning`: its response to a thin line through the centre at each angle.
- `top_patches`: the MNIST input windows that excite it most.
- `describe_filters`: the three folded into a `FilterProfile` with a one-line description.

A filter's response to an image is its strongest pooled cell, above that cell's level on a black image
(`blank_response`): the biases make every filter fire a little on nothing, and the map mean would mostly
measure the black background around one small shape.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from interp.data.shapes import generate_shapes
from interp.language import PLURALS, SYNTH_SHAPES
from interp.target.activations import blank_response, capture_conv1, single_thread
from interp.target.cnn import TargetCNN
from interp.target.filters import N_FILTERS, receptive_field

CLOSE = 0.8
"""A second shape type is named when its response is at least this share of the best one's."""
WEAK = 1.3
"""Below this ratio (best shape / mean of the others) a filter is called weakly selective."""
UNTUNED = 0.15
"""Below this orientation selectivity no preferred angle is named."""
PATCH = 10
"""Side of a top patch: the 2×2 pool block widened by 4 px each side (the 9×9 kernel's reach)."""


@dataclass(frozen=True)
class ProfileConfig:
    """How `describe_filters` measures the filters."""

    n_per_shape: int = 50
    """Generated images per shape type, each holding exactly one shape of that type."""
    seed: int = 0
    """Seeds the generated shapes (type i uses seed + i)."""
    angles: tuple[float, ...] = tuple(float(a) for a in range(0, 180, 15))
    """Line angles in degrees from horizontal, image rows pointing down as in `interp.data.shapes`:
    0 horizontal, 45 the "diagonal" (↘), 90 vertical, 135 the "anti-diagonal" (↗); each in [0, 180)."""
    top_k: int = 6
    """MNIST patches kept per filter (from different images)."""

    def __post_init__(self) -> None:
        if self.n_per_shape < 1 or self.top_k < 1 or self.seed < 0:
            raise ValueError(f"n_per_shape and top_k must be >= 1 and seed >= 0, got {self.to_dict()}")
        angles = tuple(float(a) for a in self.angles)
        if len(angles) < 3 or len(set(angles)) != len(angles) or not all(0 <= a < 180 for a in angles):
            raise ValueError(f"angles must be >= 3 distinct degrees in [0, 180), got {self.angles}")
        object.__setattr__(self, "angles", angles)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ProfileConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if k == "angles" else v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class Patch:
    """One input window that excites a filter strongly."""

    index: int
    """Index of the image in the array given to `top_patches`."""
    row: int
    """Pooled row (0..13) of the strongest cell."""
    col: int
    """Pooled column (0..13) of the strongest cell."""
    value: float
    """The filter's activation at that cell."""
    pixels: np.ndarray
    """uint8 [10, 10]: the cell's receptive field, zero where it reaches past the image (conv1's padding)."""


@dataclass(frozen=True)
class FilterProfile:
    """What one filter responds to: the sentence and the numbers behind it."""

    filter: int
    """Index 0..7 of the conv1 filter."""
    sentence: str
    """The one-line description (`describe`)."""
    shape_responses: np.ndarray
    """float [7], SYNTH_SHAPES order: mean response to images with one shape of that type."""
    ratio: float
    """Best shape's response / mean response to the other six (inf when those are 0)."""
    angles: tuple[float, ...]
    """The line angles measured, degrees (`ProfileConfig.angles`)."""
    tuning: np.ndarray
    """float [len(angles)]: response to a centred line at each angle."""
    preferred_angle: float
    """Degrees in [0, 180), from the orientation vector mean."""
    selectivity: float
    """Orientation selectivity in [0, 1]: 1 - circular variance of the tuning curve."""
    patches: tuple[Patch, ...]
    """The top MNIST windows, strongest first."""

    @property
    def best_shape(self) -> str:
        return SYNTH_SHAPES[int(self.shape_responses.argmax())]


def _peak_response(model: TargetCNN, images: np.ndarray) -> np.ndarray:
    """uint8 [n, 28, 28] → float [n, 8]: each filter's strongest pooled cell above its black-image level, >= 0."""
    peaks = capture_conv1(model, images).reshape(len(images), N_FILTERS, -1).max(-1)
    return np.maximum(peaks - blank_response(model)[None], 0.0)


def single_shape_images(name: str, n: int, seed: int) -> np.ndarray:
    """uint8 [n, 28, 28], each holding exactly one `name` drawn by the D_synth generator."""
    return generate_shapes(n, seed, types=(name,), min_shapes=1, max_shapes=1).images


def shape_responses(model: TargetCNN, cfg: ProfileConfig) -> np.ndarray:
    """float [8, 7]: each filter's mean response to `cfg.n_per_shape` one-shape images of each type."""
    out = np.zeros((N_FILTERS, len(SYNTH_SHAPES)))
    for t, name in enumerate(SYNTH_SHAPES):
        out[:, t] = _peak_response(model, single_shape_images(name, cfg.n_per_shape, cfg.seed + t)).mean(0)
    return out


def line_image(angle: float, length: float = 20.0, half_width: float = 0.6) -> np.ndarray:
    """uint8 [28, 28]: a white line through the image centre at `angle` degrees (rows down), pen-like edges."""
    yy, xx = np.mgrid[0:28, 0:28].astype(float) - 13.5
    c, s = np.cos(np.deg2rad(angle)), np.sin(np.deg2rad(angle))
    along, across = xx * c + yy * s, np.abs(yy * c - xx * s)
    d = np.hypot(np.maximum(np.abs(along) - length / 2, 0.0), across)  # distance to the segment
    return np.rint(255 * np.exp(-np.maximum(d - half_width, 0.0) ** 2 / (2 * 0.6**2))).astype(np.uint8)


def orientation_tuning(model: TargetCNN, angles) -> np.ndarray:
    """float [8, len(angles)]: each filter's response to a centred line at each angle."""
    return _peak_response(model, np.stack([line_image(a) for a in angles])).T


def preferred_orientation(tuning: np.ndarray, angles) -> tuple[np.ndarray, np.ndarray]:
    """Tuning curves [8, A] → preferred angle [8] (degrees in [0, 180)) and selectivity [8] in [0, 1].

    Orientation is 180°-periodic, so angles are doubled: the vector mean of r·e^{2iθ} points at the
    preferred angle and its length over Σr is 1 - circular variance (1: one angle only, 0: no preference).
    """
    z = tuning @ np.exp(2j * np.deg2rad(np.asarray(angles, dtype=float)))
    total = tuning.sum(1)
    preferred = np.rad2deg(np.angle(z)) / 2 % 180
    return preferred, np.where(total > 0, np.abs(z) / np.where(total > 0, total, 1), 0.0)


def _window(image: np.ndarray, row: int, col: int) -> np.ndarray:
    """The receptive field of pooled cell (row, col) as uint8 [10, 10], zero-filled past the border."""
    rows, cols = receptive_field(row, col)
    out = np.zeros((PATCH, PATCH), np.uint8)
    r0, c0 = rows.start - (2 * row - 4), cols.start - (2 * col - 4)
    out[r0 : r0 + rows.stop - rows.start, c0 : c0 + cols.stop - cols.start] = image[rows, cols]
    return out


def top_patches(model: TargetCNN, images: np.ndarray, k: int) -> list[list[Patch]]:
    """Per filter (8 lists), the k images [n, 28, 28] that excite it most, each at its strongest cell."""
    acts = capture_conv1(model, images).reshape(len(images), N_FILTERS, -1)  # [n, 8, 196]
    cell, peak = acts.argmax(-1), acts.max(-1)  # [n, 8]
    out = []
    for f in range(N_FILTERS):
        best = np.argsort(-peak[:, f], kind="stable")[:k]
        rc = [divmod(int(cell[i, f]), 14) for i in best]
        out.append([Patch(int(i), r, c, float(peak[i, f]), _window(images[i], r, c))
                    for i, (r, c) in zip(best, rc, strict=True)])
    return out


def describe(f: int, responses: np.ndarray, preferred: float, selectivity: float) -> tuple[str, float]:
    """The sentence for filter f from its shape responses [7] and orientation; also the ratio it states."""
    order = np.argsort(-responses, kind="stable")
    best, second = float(responses[order[0]]), float(responses[order[1]])
    if best <= 1e-6:
        return f"Filter {f} does not respond to any shape type (never above its level on a black image).", 0.0
    others = float(np.delete(responses, order[0]).mean())
    ratio = best / others if others > 1e-9 else float("inf")
    name = PLURALS[SYNTH_SHAPES[order[0]]]
    times = f"{ratio:.2f}× its mean response to the other shapes" if ratio < float("inf") else "far above the others"
    head = f"Filter {f} is weakly selective: it responds most to" if ratio < WEAK else f"Filter {f} responds most to"
    text = f"{head} {name} ({times})"
    if second >= CLOSE * best:
        text += f" and nearly as much to {PLURALS[SYNTH_SHAPES[order[1]]]} ({second / best:.0%})"
    if selectivity >= UNTUNED:
        text += f", tuned to {preferred:.0f}° (selectivity {selectivity:.2f})."
    else:
        text += f", with no clear preferred orientation (selectivity {selectivity:.2f})."
    return text, ratio


def describe_filters(model: TargetCNN, cfg: ProfileConfig, mnist_images: np.ndarray) -> list[FilterProfile]:
    """Eight `FilterProfile`s: shape responses, orientation tuning and top patches of `mnist_images` [n, 28, 28]."""
    with single_thread():  # small batches: one thread is faster on a busy machine (see single_thread)
        shapes = shape_responses(model, cfg)
        tuning = orientation_tuning(model, cfg.angles)
        patches = top_patches(model, np.asarray(mnist_images), cfg.top_k)
    preferred, selectivity = preferred_orientation(tuning, cfg.angles)
    profiles = []
    for f in range(N_FILTERS):
        sentence, ratio = describe(f, shapes[f], float(preferred[f]), float(selectivity[f]))
        profiles.append(FilterProfile(f, sentence, shapes[f], ratio, cfg.angles, tuning[f], float(preferred[f]),
                                      float(selectivity[f]), tuple(patches[f])))
    return profiles
