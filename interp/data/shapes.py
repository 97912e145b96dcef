"""Synthetic MNIST-like shape images and their ground-truth counts (§3.1, D_synth).

Each image is 28×28 uint8, white strokes on black, holding a random total of 1–4 shapes
from S = SYNTH_SHAPES, each type 0–4 times, with random orientation, size and position.
Strokes are anti-aliased from a distance field (distance to a segment or to an ellipse
outline) with a flat core and a Gaussian edge, like MNIST's pen strokes; all content stays
inside the central 24×24 box (pixels 2..25), most of it inside the central 20×20.

Placement rule, so that the counts stay what a person would count: shapes are placed one
at a time, large footprints first (checkerboard, ellipse, corner, then lines). A shape's
footprint is its stroke pixels (intensity > 20 % of its own peak), plus the interior of an
ellipse and the whole patch of a checkerboard. A candidate is rejected when its footprint
comes within 1 px (Chebyshev; 2 px of a checkerboard) of an already placed footprint. So
shapes never cross, touch or nest, and a dark pixel (< 20 %) always separates them: a
vertical touching a horizontal would read as a corner, adjacent parallels as one thick
line, two adjacent checkerboards as one. Hence every shape is one 8-connected blob of
bright (> 128) pixels, and an image has as many blobs as its counts say.

Each shape gets a bounded number of tries: a candidate is aimed at free space (weighted by
the room there) and sized to that room, nudged by up to 3 px if it collides, then 3 and 6
more candidates are drawn, a little smaller; an image where a shape still does not fit is
drawn again from scratch with all shapes 20 % smaller, up to 6 times. A shape that never
fits is left out and the counts record only what was drawn (about 1 shape in 1,700 for the
default settings, all in 4-shape images); images that fall below `min_shapes` that way are
resampled.

Everything is vectorised over the batch: each try draws all pending shapes of one type as
`[m, 784]` distance fields, and collision tests with nudges work on 28 bit-rows per mask.
(Threads did not help: the work is many mid-sized numpy calls, held back by the GIL.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from interp.language import SYNTH_SHAPES, counts_to_vector, format_description

SIZE = 28
_LO, _HI = 4.0, 23.0  # geometry box in pixel-centre coordinates; strokes reach <= 2.6 px beyond
_PIX_LO, _PIX_HI = 3, 24  # pixel box for crisp checkerboard patches (inclusive)
_MIN_LINE = 9.0  # px: shorter lines read as dots
_MIN_ARM = 6.0  # px: corner arms
_CUTOFF = 0.08  # relative intensity below which a pixel stays black, as MNIST's background
_FOOTPRINT = 0.2  # relative intensity that counts as part of a stroke
_GAP = 1  # px (Chebyshev) kept free around every placed footprint
_CHECKER_GAP = 2  # px around checkerboards: two patches must not read as one
_NUDGE = 3  # px a colliding candidate may be moved
_MAX_ROOM = 6  # px: room around an anchor is measured up to this far
_ATTEMPTS = ((1, 1.0), (3, 0.85), (6, 0.7))  # per shape: candidates per image, size factor
_RESTARTS = 6  # an image where a shape did not fit is drawn again, all shapes 20 % smaller
_BLOCK = 4096  # images generated together
_CHUNK = 8192  # candidates rendered at once: 8192 × 784 float32 ≈ 25 MB per array
_PLACEMENT_ORDER = ("checkerboard", "ellipse", "corner", "diagonal", "anti-diagonal", "vertical", "horizontal")
_NUDGES = sorted(
    ((dy, dx) for dy in range(-_NUDGE, _NUDGE + 1) for dx in range(-_NUDGE, _NUDGE + 1)),
    key=lambda s: (max(abs(s[0]), abs(s[1])), abs(s[0]) + abs(s[1])),
)

_YY, _XX = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
_X, _Y = _XX.ravel()[None, :], _YY.ravel()[None, :]  # [1, 784] each
_XI, _YI = _X.astype(np.int16), _Y.astype(np.int16)
_BOX = np.zeros((SIZE, SIZE), dtype=bool)  # where footprints may lie: pixels 2..25
_BOX[_PIX_LO - 1 : _PIX_HI + 2, _PIX_LO - 1 : _PIX_HI + 2] = True
_BOX = _BOX.ravel()


@dataclass(frozen=True)
class ShapeBatch:
    """Synthetic images with the count of each shape type they show."""

    images: np.ndarray
    """uint8 `[n, 28, 28]`, 0 black to 255 white."""
    counts: np.ndarray
    """int64 `[n, 7]`, shapes drawn per type in SYNTH_SHAPES order."""

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.images.shape != (n, SIZE, SIZE) or self.images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 [n, 28, 28], got {self.images.dtype} {self.images.shape}")
        if self.counts.shape != (n, len(SYNTH_SHAPES)) or self.counts.dtype != np.int64:
            raise ValueError(f"counts must be int64 [n, 7], got {self.counts.dtype} {self.counts.shape}")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def descriptions(self) -> list[str]:
        """One description per image in L, shapes in canonical order."""
        return [format_description(dict(zip(SYNTH_SHAPES, row, strict=True))) for row in self.counts.tolist()]


# ---------------------------------------------------------------------------------------
# Rendering: a drawer samples m shapes of one type, each sized to fit `room` px (largest
# geometry half-extent) around `anchor` (x, y; NaN: anywhere in the box, room inf), and
# returns (intensity float32 [m, 784] in 0..1, footprint bool [m, 784]).

Drawer = Callable[..., tuple[np.ndarray, np.ndarray]]
_REACH = 2.0  # px a stroke footprint reaches beyond its geometry


def _col(v: np.ndarray) -> np.ndarray:
    return np.asarray(v, dtype=np.float32)[:, None]


def _stroke(d: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Pen profile over a distance field `[m, 784]`: flat core, Gaussian edge."""
    m = len(d)
    half = rng.uniform(0.45, 1.0, (m, 1)).astype(np.float32)  # core half-width, px
    sigma = rng.uniform(0.5, 0.7, (m, 1)).astype(np.float32)  # edge softness, px
    edge = np.maximum(d - half, 0.0)
    edge *= edge
    edge *= -1.0 / (2 * sigma * sigma)
    out = np.exp(edge, out=edge)
    out[out < _CUTOFF] = 0.0
    return out


def _segment_distance(ax, ay, bx, by) -> np.ndarray:
    """Distance from every pixel centre to segments a–b, arguments `[m, 1]` -> `[m, 784]`."""
    dx, dy = bx - ax, by - ay
    inv = 1.0 / np.maximum(dx * dx + dy * dy, 1e-6)
    px, py = _X - ax, _Y - ay
    t = px * (dx * inv) + py * (dy * inv)
    np.clip(t, 0.0, 1.0, out=t)
    px -= t * dx
    py -= t * dy
    return np.hypot(px, py, out=px)


def _fit(extent: np.ndarray, room: np.ndarray) -> np.ndarray:
    """Factor (<= 1) that shrinks a geometry half-extent `[m]` to fit `room`."""
    return np.minimum(1.0, np.maximum(room - _REACH, 0.0) / np.maximum(extent, 1e-6))


def _centre(rng, half_w, half_h, anchor):
    """Centre keeping half-extents `[m]` inside the geometry box, at `anchor` where it fits."""
    out = []
    for h, a in ((half_w, anchor[:, 0]), (half_h, anchor[:, 1])):
        lo, hi = _LO + h, np.maximum(_HI - h, _LO + h)
        out.append(np.where(np.isnan(a), rng.uniform(lo, hi), np.clip(a, lo, hi)))
    return out[0], out[1]


def _line_drawer(deg_lo: float, deg_hi: float) -> Drawer:
    """Straight strokes at an angle in [deg_lo, deg_hi] from horizontal, y pointing down."""

    def draw(rng, size, anchor, room):
        m = len(size)
        theta = np.deg2rad(rng.uniform(deg_lo, deg_hi, m))
        c, s = np.cos(theta), np.sin(theta)
        major = np.maximum(np.abs(c), np.abs(s))
        longest = np.clip(20.0 * size, _MIN_LINE, (_HI - _LO) / major)
        length = rng.uniform(_MIN_LINE, longest)
        length = np.maximum(length * _fit(major * length / 2, room), _MIN_LINE)
        cx, cy = _centre(rng, np.abs(c) * length / 2, np.abs(s) * length / 2, anchor)
        hx, hy = c * length / 2, s * length / 2
        d = _segment_distance(_col(cx - hx), _col(cy - hy), _col(cx + hx), _col(cy + hy))
        inten = _stroke(d, rng)
        return inten, inten > _FOOTPRINT

    return draw


def _draw_corner(rng, size, anchor, room):
    """Two arms meeting at ~90° at a vertex, opening in one of 4 directions (L, Γ, ⅃, ꓶ)."""
    m = len(size)
    base = rng.integers(0, 4, m) * 90.0 + rng.uniform(-10, 10, m)
    phi1, phi2 = np.deg2rad(base), np.deg2rad(base + 90.0 + rng.uniform(-8, 8, m))
    longest = np.maximum(15.0 * size, _MIN_ARM)
    arms = rng.uniform(_MIN_ARM, longest, (2, m))
    xs = np.vstack([np.zeros((1, m)), arms * np.stack([np.cos(phi1), np.cos(phi2)])])
    ys = np.vstack([np.zeros((1, m)), arms * np.stack([np.sin(phi1), np.sin(phi2)])])
    f = _fit(np.maximum(np.ptp(xs, axis=0), np.ptp(ys, axis=0)) / 2, room)
    f = np.maximum(f, _MIN_ARM / arms.min(0))
    xs, ys = xs * f, ys * f
    cx, cy = _centre(rng, np.ptp(xs, axis=0) / 2, np.ptp(ys, axis=0) / 2, anchor)
    vx = cx - (xs.min(0) + xs.max(0)) / 2  # vertex, from the bounding-box centre
    vy = cy - (ys.min(0) + ys.max(0)) / 2
    d = np.minimum(
        _segment_distance(_col(vx), _col(vy), _col(vx + xs[1]), _col(vy + ys[1])),
        _segment_distance(_col(vx), _col(vy), _col(vx + xs[2]), _col(vy + ys[2])),
    )
    inten = _stroke(d, rng)
    return inten, inten > _FOOTPRINT


def _draw_ellipse(rng, size, anchor, room):
    """A closed elliptic outline with random axes (3–8 px) and rotation."""
    m = len(size)
    a = rng.uniform(3.0, np.maximum(8.0 * size, 3.0))
    b = a * rng.uniform(0.5, 1.0, m)
    phi = rng.uniform(0, np.pi, m)
    c, s = np.cos(phi), np.sin(phi)
    f = _fit(np.maximum(np.hypot(a * c, b * s), np.hypot(a * s, b * c)), room)
    a, b = np.maximum(a * f, 3.0), np.maximum(b * f, 2.8)  # smaller has no visible hole
    cx, cy = _centre(rng, np.hypot(a * c, b * s), np.hypot(a * s, b * c), anchor)
    dx, dy = _X - _col(cx), _Y - _col(cy)
    u = dx * _col(c) + dy * _col(s)
    v = dy * _col(c) - dx * _col(s)
    ia, ib = _col(1 / a), _col(1 / b)
    g = np.sqrt((u * ia) ** 2 + (v * ib) ** 2)
    grad = np.sqrt((u * ia * ia) ** 2 + (v * ib * ib) ** 2)
    # First-order distance to the outline |g - 1| / |∇g| (exact for circles).
    d = np.abs(g - 1) * g / np.maximum(grad, 1e-6)
    d[grad < 1e-6] = 3.0  # the exact centre
    inten = _stroke(d, rng)
    return inten, (inten > _FOOTPRINT) | (g < 1)


def _draw_checkerboard(rng, size, anchor, room):
    """Alternating filled cells: cells 2–4 px, 3×3 to 4×4 of them.

    Fewer than 3 cells a side reads as a few loose squares, not as a checkerboard.
    """
    m = len(size)
    span = np.minimum(7 + 9 * size, 2 * room)  # px the patch may span
    cell = np.clip(rng.integers(2, 5, m), 2, np.maximum(span // 3, 2)).astype(np.int64)
    nmax = np.clip(span // cell, 3, 4).astype(np.int64)
    nx, ny = rng.integers(3, nmax + 1), rng.integers(3, nmax + 1)
    w, h = cell * nx, cell * ny
    x0, y0 = rng.integers(_PIX_LO, _PIX_HI - w + 2), rng.integers(_PIX_LO, _PIX_HI - h + 2)
    aimed = ~np.isnan(anchor[:, 0])
    ax, ay = np.nan_to_num(anchor[:, 0]), np.nan_to_num(anchor[:, 1])
    x0 = np.where(aimed, np.clip(np.rint(ax - (w - 1) / 2), _PIX_LO, _PIX_HI + 1 - w), x0)
    y0 = np.where(aimed, np.clip(np.rint(ay - (h - 1) / 2), _PIX_LO, _PIX_HI + 1 - h), y0)
    # Filled corners for odd sizes (an X of 5 cells, not a diamond of 4).
    parity = np.where((nx * ny) % 2 == 1, 0, rng.integers(0, 2, m))
    col = lambda v: np.asarray(v, dtype=np.int16)[:, None]  # noqa: E731
    i = (_XI - col(x0)) // col(cell)
    j = (_YI - col(y0)) // col(cell)
    inside = (i >= 0) & (i < col(nx)) & (j >= 0) & (j < col(ny))
    filled = inside & ((i + j + col(parity)) % 2 == 0)
    return filled.astype(np.float32), inside


_DRAWERS: dict[str, Drawer] = {
    "diagonal": _line_drawer(30, 60),  # ↘: y grows with x (image rows point down)
    "anti-diagonal": _line_drawer(-60, -30),  # ↗
    "vertical": _line_drawer(80, 100),
    "horizontal": _line_drawer(-10, 10),
    "checkerboard": _draw_checkerboard,
    "ellipse": _draw_ellipse,
    "corner": _draw_corner,
}


def _dilate(mask: np.ndarray, r: int) -> np.ndarray:
    """Square (Chebyshev) dilation of bool `[m, 784]` masks by r px."""
    img = mask.reshape(-1, SIZE, SIZE)
    out = img.copy()
    for s in range(1, r + 1):
        out[:, s:, :] |= img[:, :-s, :]
        out[:, :-s, :] |= img[:, s:, :]
    rows = out.copy()
    for s in range(1, r + 1):
        out[:, :, s:] |= rows[:, :, :-s]
        out[:, :, :-s] |= rows[:, :, s:]
    return out.reshape(mask.shape)


def _shift(a: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Images `[m, 784]` moved by (dy, dx) px, zero fill."""
    img = a.reshape(-1, SIZE, SIZE)
    out = np.zeros_like(img)
    ys, yd = slice(max(-dy, 0), SIZE - max(dy, 0)), slice(max(dy, 0), SIZE - max(-dy, 0))
    xs, xd = slice(max(-dx, 0), SIZE - max(dx, 0)), slice(max(dx, 0), SIZE - max(-dx, 0))
    out[:, yd, xd] = img[:, ys, xs]
    return out.reshape(a.shape)


def _room_map(near: np.ndarray) -> np.ndarray:
    """Chebyshev distance `[m, 784]` from each pixel to what is taken or outside the box,
    capped at _MAX_ROOM."""
    taken = near | ~_BOX
    dist = np.zeros(taken.shape, dtype=np.float32)
    for _ in range(_MAX_ROOM):
        dist += ~taken
        taken = _dilate(taken, 1)
    return dist


def _spots(dist: np.ndarray, empty: np.ndarray, k: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """k places per image to aim a shape at: anchors `[m*k, 2]` (x, y) and room `[m*k]`.

    Anchors are drawn with weight distance², so new shapes go where there is space; room is
    the distance there minus one (unbounded at the cap). Empty images give NaN anchors and
    infinite room: uniform placement.
    """
    m = len(dist)
    anchor = np.full((m * k, 2), np.nan)
    room = np.full(m * k, np.inf)
    busy = np.flatnonzero(~empty)
    if len(busy) == 0:
        return anchor, room
    d = dist[busy]
    cdf = np.cumsum(d * d, axis=1)
    u = rng.random((len(busy), k), dtype=np.float32) * cdf[:, -1:]
    pick = np.minimum((cdf[:, None, :] <= u[:, :, None]).sum(-1), SIZE * SIZE - 1)  # [b, k]
    rows = (busy[:, None] * k + np.arange(k)).ravel()
    anchor[rows, 0], anchor[rows, 1] = (pick % SIZE).ravel(), (pick // SIZE).ravel()
    free = np.take_along_axis(d, pick, 1).ravel()
    room[rows] = np.where(free >= _MAX_ROOM, np.inf, free - 1.0)
    return anchor, room


def _row_bits(mask: np.ndarray) -> np.ndarray:
    """Bool `[m, 784]` masks as uint64 `[m, 28]` rows; column c is bit c + _NUDGE."""
    packed = np.packbits(mask.reshape(-1, SIZE, SIZE), axis=-1, bitorder="little")  # [m, 28, 4]
    bits = np.zeros((len(packed), SIZE, 8), dtype=np.uint8)
    bits[..., :4] = packed
    return bits.view("<u8")[..., 0] << np.uint64(_NUDGE)


def _nudges(foot: np.ndarray, blocked: np.ndarray, k: int) -> np.ndarray:
    """Index into _NUDGES of the smallest shift that frees each candidate, -1 if none.

    `foot`, `blocked`: bool `[m*k, 784]`. Only candidates of images where none of the k
    fits unshifted are tried shifted, all shifts at once on bit rows (28 words per mask).
    """
    nudge = np.where((foot & blocked).any(1), -1, 0)
    retry = np.flatnonzero(np.repeat((nudge.reshape(-1, k) < 0).all(1), k))
    if len(retry) == 0:
        return nudge
    p = _NUDGE
    outside = ~np.uint64(((1 << SIZE) - 1) << p)  # columns off the image count as taken
    walls = np.full((len(retry), SIZE + 2 * p), ~np.uint64(0))  # rows off the image too
    walls[:, p : p + SIZE] = _row_bits(blocked[retry]) | outside
    rows = _row_bits(foot[retry])
    shifted = np.stack([rows << np.uint64(p + dx) >> np.uint64(p) for dx in range(-p, p + 1)], 1)
    free = np.stack(  # [r, dy, dx]
        [~(shifted & walls[:, None, p + dy : p + dy + SIZE]).any(-1) for dy in range(-p, p + 1)], 1
    )
    ordered = free[:, [dy + p for dy, _ in _NUDGES], [dx + p for _, dx in _NUDGES]]  # [r, len(_NUDGES)]
    nudge[retry] = np.where(ordered.any(1), ordered.argmax(1), -1)
    return nudge


def _try_type(name, idx, k, scale, rng, canvas, near, dist) -> np.ndarray:
    """Draw k candidates of type `name` for each image in `idx`; paint the first that fits."""
    ok_any = np.zeros(len(idx), dtype=bool)
    per_chunk = max(_CHUNK // k, 1)
    for start in range(0, len(idx), per_chunk):
        img = idx[start : start + per_chunk]
        cand = np.repeat(img, k)
        anchor, room = _spots(dist[img], ~near[img].any(1), k, rng)
        inten, foot = _DRAWERS[name](rng, scale[cand], anchor, room)
        peak = rng.uniform(200, 255, (len(cand), 1)).astype(np.float32)
        nudge = _nudges(foot, near[cand] | ~_BOX, k)
        fits = (nudge >= 0).reshape(len(img), k)
        has = fits.any(1)
        rows = (np.arange(len(img)) * k + fits.argmax(1))[has]
        win = img[has]
        for n in np.unique(nudge[rows]):
            sub = rows[nudge[rows] == n]
            inten[sub], foot[sub] = _shift(inten[sub], *_NUDGES[n]), _shift(foot[sub], *_NUDGES[n])
        canvas[win] = np.maximum(canvas[win], inten[rows] * peak[rows])
        near[win] |= _dilate(foot[rows], _CHECKER_GAP if name == "checkerboard" else _GAP)
        ok_any[start : start + per_chunk] = has
    return ok_any


def _place_once(counts: np.ndarray, scale: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """One try at every image; shapes that do not fit are left out of image and counts."""
    n = len(counts)
    canvas = np.zeros((n, SIZE * SIZE), dtype=np.float32)
    near = np.zeros((n, SIZE * SIZE), dtype=bool)  # placed footprints, dilated by their gap
    dist = np.zeros((n, SIZE * SIZE), dtype=np.float32)
    drawn = np.zeros_like(counts)
    order = [SYNTH_SHAPES.index(k) for k in _PLACEMENT_ORDER]
    # slots[i, j]: type index of the j-th shape image i places, -1 when none.
    per_image = [np.repeat(order, counts[i, order]) for i in range(n)]
    depth = max((len(p) for p in per_image), default=0)
    slots = np.full((n, depth), -1, dtype=np.int64)
    for i, p in enumerate(per_image):
        slots[i, : len(p)] = p
    for j in range(depth):
        pending = np.flatnonzero(slots[:, j] >= 0)
        if j:
            dist[pending] = _room_map(near[pending])
        for k, shrink in _ATTEMPTS:
            if len(pending) == 0:
                break
            placed = np.zeros(len(pending), dtype=bool)
            for t in np.unique(slots[pending, j]):
                sel = np.flatnonzero(slots[pending, j] == t)
                placed[sel] = _try_type(SYNTH_SHAPES[t], pending[sel], k, scale * shrink, rng, canvas, near, dist)
                drawn[pending[sel[placed[sel]]], t] += 1
            pending = pending[~placed]
    canvas[:, ~_BOX] = 0.0  # faint tails of nudged strokes; footprints are inside already
    images = np.rint(canvas).clip(0, 255).astype(np.uint8).reshape(n, SIZE, SIZE)
    return images, drawn


def _place(counts: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """Render compositions `[n, 7]` -> (images uint8 [n, 28, 28], drawn counts int64 [n, 7])."""
    images = np.zeros((len(counts), SIZE, SIZE), dtype=np.uint8)
    drawn = np.zeros_like(counts)
    todo = np.arange(len(counts))
    # Smaller shapes when more must fit.
    scale = np.array([1.0, 1.0, 0.75, 0.62, 0.55])[np.clip(counts.sum(1), 0, 4)]
    for _ in range(_RESTARTS):
        images[todo], drawn[todo] = _place_once(counts[todo], scale[todo], rng)
        todo = todo[(drawn[todo] != counts[todo]).any(1)]
        if len(todo) == 0:
            break
        scale[todo] *= 0.8
    return images, drawn


def _sample_counts(n, rng, type_idx, min_shapes, max_shapes, max_per_type) -> np.ndarray:
    """Compositions `[n, 7]`: total uniform in min..max, types uniform with replacement."""
    counts = np.zeros((n, len(SYNTH_SHAPES)), dtype=np.int64)
    todo = np.arange(n)
    while len(todo):
        total = rng.integers(min_shapes, max_shapes + 1, len(todo))
        picks = rng.choice(type_idx, size=(len(todo), max(max_shapes, 1)))
        rows = np.zeros((len(todo), len(SYNTH_SHAPES)), dtype=np.int64)
        for slot in range(max_shapes):
            use = total > slot
            np.add.at(rows, (np.flatnonzero(use), picks[use, slot]), 1)
        counts[todo] = rows
        todo = todo[(rows > max_per_type).any(1)]  # resample compositions over the cap
    return counts


def generate_shapes(
    n: int,
    seed: int,
    *,
    types: Sequence[str] | None = None,
    min_shapes: int = 1,
    max_shapes: int = 4,
    max_per_type: int = 4,
) -> ShapeBatch:
    """`n` synthetic images, each with min..max shapes of `types` (default all of S).

    §3.1: "a random total of 1–4 shapes, with each shape type potentially appearing
    0–4 times": the total is uniform in min..max, then each shape's type uniform among
    `types`, redrawn where a type would exceed `max_per_type`. The same arguments give
    the same batch.
    """
    names = tuple(SYNTH_SHAPES if types is None else types)
    unknown = [t for t in names if t not in SYNTH_SHAPES]
    if unknown or not names or len(set(names)) != len(names):
        raise ValueError(f"types must be distinct names from {SYNTH_SHAPES}, got {names}")
    if n < 0 or not 0 <= min_shapes <= max_shapes or max_per_type < 1:
        raise ValueError("need n >= 0, 0 <= min_shapes <= max_shapes and max_per_type >= 1")
    max_shapes = min(max_shapes, max_per_type * len(names))
    if min_shapes > max_shapes:
        raise ValueError(f"min_shapes={min_shapes} is more than {len(names)} types x {max_per_type}")
    rng = np.random.default_rng(seed)
    type_idx = np.array([SYNTH_SHAPES.index(t) for t in names])
    images = np.zeros((n, SIZE, SIZE), dtype=np.uint8)
    counts = np.zeros((n, len(SYNTH_SHAPES)), dtype=np.int64)
    for start in range(0, n, _BLOCK):  # bounded memory: ~30 MB of work arrays per block
        todo = np.arange(start, min(start + _BLOCK, n))
        for _ in range(20):  # resample the rare images that lost shapes below min_shapes
            wanted = _sample_counts(len(todo), rng, type_idx, min_shapes, max_shapes, max_per_type)
            images[todo], counts[todo] = _place(wanted, rng)
            todo = todo[counts[todo].sum(1) < min_shapes]
            if len(todo) == 0:
                break
    return ShapeBatch(images=images, counts=counts)


def render_counts(counts: Mapping[str, int], seed: int) -> np.ndarray:
    """One image uint8 `[28, 28]` showing exactly `counts` (names from SYNTH_SHAPES).

    Raises ValueError for names outside S (e.g. "crossing"), negative counts, or shapes
    that do not fit after repeated tries (5 ellipses, 8 lines or 7 mixed shapes already fail).
    """
    row = counts_to_vector(counts, SYNTH_SHAPES)[None, :]
    rng = np.random.default_rng(seed)
    for _ in range(20):
        image, drawn = _place(row, rng)
        if (drawn == row).all():
            return image[0]
    raise ValueError(f"could not fit {dict(counts)} into one 28x28 image")
