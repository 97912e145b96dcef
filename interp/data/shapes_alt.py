"""A second renderer of the seven shape types of §3.1, written apart from `interp.data.shapes`.

An interpreter trained on `generate_shapes` images may have learnt that renderer's habits as well as
the shapes; the held-out set ``syn_alt`` (`interp.evaluation.evaluate`) asks the same question about
images drawn another way. What differs, on purpose:

- drawn with ``PIL.ImageDraw`` on a 4× canvas and box-filtered down to 28×28 (anti-aliasing by the
  share of a pixel a stroke covers, where the original has a flat core and a Gaussian edge);
- strokes 1.4–3.0 px wide with round caps and round joins; lines 8–18 px long;
- each type's nominal angle plus a rotation jitter: diagonals ±12° around ±45°, verticals and
  horizontals ±7°, corners ±8° (arms 90° ± 6° apart, 5.5–11 px each, one of four openings);
- checkerboards rotated too (±6°; the original's are axis-aligned), cells 2.6–3.6 px, 3–5 a side;
- ellipses as rotated outline polygons, semi-axes 3.5–8 px;
- placement uniform in the box (pixels 2..25), shapes in random order: a candidate whose footprint
  (coverage > 15 % of the shape's peak) comes within 1 px of a placed footprint (2 px of a
  checkerboard: two boards closer read as one) is drawn anew, up to 40 times; an image where a
  shape still does not fit is drawn again with every shape 15 % smaller (up to 8 times); a shape
  that never fits is left out and the counts record only what was drawn (about 1 shape in 300).

``overlap`` (0..1) is the share of shapes placed without that test, so they may cross or touch
another. It is 0 by default and for ``syn_alt``: a vertical across a horizontal reads as a crossing
(a shape of L), so the counts would no longer say what a person sees.

Counts follow §3.1 as in the original: a total uniform in 1..4, each shape's type uniform among the
types. Image ``i`` has its own generator, seeded with ``(seed, i)``: it is the same whatever ``n``,
and `render_alt` rebuilds any image alone (the Compare page's sample viewer).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from interp.data.shapes import ShapeBatch
from interp.language import SYNTH_SHAPES

SIZE = 28
SCALE = 4  # supersampling of the drawing canvas
BOX = (2.0, 26.0)  # where geometry and strokes may lie, px (pixel i spans [i, i + 1))
FOOTPRINT = 0.15  # coverage that counts as part of a shape, relative to full coverage
TRIES = 40  # candidates per shape
RESTARTS = 8  # redraws of an image where a shape did not fit, each 15 % smaller
SHRINK = 0.85


@dataclass(frozen=True)
class Figure:
    """One shape's geometry around the origin, in px: polylines stroked ``width`` wide, polygons filled."""

    strokes: tuple[np.ndarray, ...] = ()
    """Polylines, each float [k, 2] (x, y)."""
    fills: tuple[np.ndarray, ...] = ()
    """Polygons, each float [k, 2] (x, y)."""
    width: float = 0.0
    """Stroke width, px."""

    def bounds(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of everything drawn, strokes' half-width included."""
        pts = np.concatenate([*self.strokes, *self.fills])
        r = self.width / 2
        return pts[:, 0].min() - r, pts[:, 1].min() - r, pts[:, 0].max() + r, pts[:, 1].max() + r


Sketch = Callable[[np.random.Generator, float], Figure]


def _rotate(points: np.ndarray, degrees: float) -> np.ndarray:
    """float [k, 2] rotated about the origin (y down, so positive degrees turn clockwise on screen)."""
    t = np.deg2rad(degrees)
    c, s = np.cos(t), np.sin(t)
    return points @ np.array([[c, s], [-s, c]])


def _width(rng: np.random.Generator) -> float:
    return float(rng.uniform(1.4, 3.0))


def _line(nominal: float, jitter: float) -> Sketch:
    """A straight stroke at ``nominal`` ± ``jitter`` degrees from horizontal (y down: +45° is ↘)."""

    def sketch(rng: np.random.Generator, scale: float) -> Figure:
        half = max(rng.uniform(8.0, 18.0) * scale, 7.0) / 2
        end = _rotate(np.array([[-half, 0.0], [half, 0.0]]), nominal + rng.uniform(-jitter, jitter))
        return Figure(strokes=(end,), width=_width(rng))

    return sketch


def _corner(rng: np.random.Generator, scale: float) -> Figure:
    """Two arms from one vertex, about 90° apart, roughly along the axes (L, Γ, ⅃ or ꓶ)."""
    first = rng.integers(0, 4) * 90.0 + rng.uniform(-8, 8)
    second = first + 90.0 + rng.uniform(-6, 6)
    arms = np.maximum(rng.uniform(5.5, 11.0, 2) * scale, 5.0)
    tips = [arms[k] * np.array([np.cos(np.deg2rad(a)), np.sin(np.deg2rad(a))]) for k, a in enumerate((first, second))]
    return Figure(strokes=(np.array([tips[0], [0.0, 0.0], tips[1]]),), width=_width(rng))


def _ellipse(rng: np.random.Generator, scale: float) -> Figure:
    """A closed outline, semi-axes a ≥ b, turned by any angle; b keeps a visible hole inside the stroke."""
    width = _width(rng)
    a = max(rng.uniform(3.5, 8.0) * scale, 3.5)
    b = max(a * rng.uniform(0.55, 1.0), width / 2 + 1.8)
    t = np.linspace(0.0, 2 * np.pi, 49)
    outline = _rotate(np.stack([a * np.cos(t), b * np.sin(t)], 1), rng.uniform(0, 180))
    return Figure(strokes=(outline,), width=width)


def _checkerboard(rng: np.random.Generator, scale: float) -> Figure:
    """Alternate cells of an nx × ny grid filled, the grid turned by a few degrees."""
    cell = max(rng.uniform(2.6, 3.6) * min(scale, 1.0), 2.4)
    nx, ny = (int(v) for v in rng.integers(3, 6, 2))
    while max(nx, ny) * cell > 16.0 * scale and max(nx, ny) > 3:  # smaller boards when room is short
        nx, ny = min(nx, max(nx, ny) - 1), min(ny, max(nx, ny) - 1)
    parity = int(rng.integers(0, 2)) if (nx * ny) % 2 == 0 else 0  # odd boards: filled corners
    angle = rng.uniform(-6, 6)
    x0, y0 = -nx * cell / 2, -ny * cell / 2
    square = np.array([[0.0, 0.0], [cell, 0.0], [cell, cell], [0.0, cell]])
    cells = tuple(_rotate(square + [x0 + i * cell, y0 + j * cell], angle)
                  for j in range(ny) for i in range(nx) if (i + j + parity) % 2 == 0)
    return Figure(fills=cells)


SKETCHES: dict[str, Sketch] = {
    "diagonal": _line(45.0, 12.0),
    "anti-diagonal": _line(-45.0, 12.0),
    "vertical": _line(90.0, 7.0),
    "horizontal": _line(0.0, 7.0),
    "checkerboard": _checkerboard,
    "ellipse": _ellipse,
    "corner": _corner,
}


def coverage(figure: Figure, dx: float, dy: float) -> np.ndarray:
    """float32 [28, 28] in 0..1: the share of each pixel the figure, moved by (dx, dy), covers."""
    layer = Image.new("L", (SIZE * SCALE, SIZE * SCALE), 0)
    pen = ImageDraw.Draw(layer)
    width = max(1, round(figure.width * SCALE))
    for line in figure.strokes:
        pts = [((x + dx) * SCALE, (y + dy) * SCALE) for x, y in line]
        pen.line(pts, fill=255, width=width, joint="curve")
        for x, y in (pts[0], pts[-1]):  # round caps: PIL's lines end square
            pen.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=255)
    for poly in figure.fills:
        pen.polygon([((x + dx) * SCALE, (y + dy) * SCALE) for x, y in poly], fill=255)
    return np.asarray(layer.resize((SIZE, SIZE), Image.Resampling.BOX), dtype=np.float32) / 255.0


def _grow(mask: np.ndarray) -> np.ndarray:
    """bool [28, 28] grown by one pixel in the 8 directions."""
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    rows = out.copy()
    out[:, 1:] |= rows[:, :-1]
    out[:, :-1] |= rows[:, 1:]
    return out


def _place(rng: np.random.Generator, figure: Figure) -> tuple[float, float] | None:
    """A shift that puts the figure inside BOX, uniform over the room it has; None if it is too large."""
    x0, y0, x1, y1 = figure.bounds()
    lo, hi = BOX
    if x1 - x0 > hi - lo or y1 - y0 > hi - lo:
        return None
    return float(rng.uniform(lo - x0, hi - x1)), float(rng.uniform(lo - y0, hi - y1))


def _draw_image(rng: np.random.Generator, wanted: Sequence[int], overlap: float) -> tuple[np.ndarray, np.ndarray]:
    """One image showing the types ``wanted`` (indices into SYNTH_SHAPES): (float [28, 28] 0..255, counts [7])."""
    best: tuple[np.ndarray, np.ndarray] | None = None
    for attempt in range(RESTARTS):
        scale = SHRINK**attempt
        canvas = np.zeros((SIZE, SIZE), np.float32)
        taken = np.zeros((SIZE, SIZE), bool)
        drawn = np.zeros(len(SYNTH_SHAPES), np.int64)
        for t in rng.permutation(np.asarray(wanted, dtype=np.int64)):
            free = rng.random() < overlap
            for _ in range(TRIES):
                figure = SKETCHES[SYNTH_SHAPES[t]](rng, scale)
                shift = _place(rng, figure)
                if shift is None:
                    continue
                cover = coverage(figure, *shift)
                foot = cover > FOOTPRINT
                if free or not (_grow(foot) & taken).any():
                    canvas = np.maximum(canvas, cover * rng.uniform(200, 255))
                    taken |= _grow(foot) if SYNTH_SHAPES[t] == "checkerboard" else foot
                    drawn[t] += 1
                    break
        if best is None or drawn.sum() > best[1].sum():
            best = canvas, drawn
        if drawn.sum() == len(wanted):
            break
    return best


def render_alt(seed: int, indices: Sequence[int], *, types: Sequence[str] | None = None, min_shapes: int = 1,
               max_shapes: int = 4, overlap: float = 0.0) -> ShapeBatch:
    """Images ``indices`` of the batch `generate_alt_shapes` draws from ``seed`` (each from its own generator)."""
    names = tuple(SYNTH_SHAPES if types is None else types)
    if not names or len(set(names)) != len(names) or any(t not in SYNTH_SHAPES for t in names):
        raise ValueError(f"types must be distinct names from {SYNTH_SHAPES}, got {names}")
    if not 1 <= min_shapes <= max_shapes:
        raise ValueError("need 1 <= min_shapes <= max_shapes")
    if not 0.0 <= overlap <= 1.0:
        raise ValueError(f"overlap is a share of shapes, 0..1, got {overlap}")
    if int(seed) < 0 or any(int(i) < 0 for i in indices):
        raise ValueError("seed and indices must be ≥ 0")
    type_idx = np.array([SYNTH_SHAPES.index(t) for t in names])
    images = np.zeros((len(indices), SIZE, SIZE), np.uint8)
    counts = np.zeros((len(indices), len(SYNTH_SHAPES)), np.int64)
    for row, i in enumerate(indices):
        rng = np.random.default_rng([int(seed), int(i)])
        wanted = rng.choice(type_idx, size=int(rng.integers(min_shapes, max_shapes + 1)))
        canvas, counts[row] = _draw_image(rng, wanted, overlap)
        images[row] = np.rint(canvas).clip(0, 255).astype(np.uint8)
    return ShapeBatch(images=images, counts=counts)


def generate_alt_shapes(n: int, seed: int, **kwargs) -> ShapeBatch:
    """``n`` images with 1–4 shapes each (§3.1's distribution), drawn by this renderer; keywords as `render_alt`.

    The same arguments give the same batch, and image i does not depend on ``n``.
    """
    if n < 0:
        raise ValueError("n must be ≥ 0")
    return render_alt(seed, range(n), **kwargs)
