"""User images → MNIST-style inputs, made the way MNIST was made.

LeCun et al.: grey-scale, white strokes on black, the stroke's bounding box fitted into 20×20
(aspect kept, anti-aliased), then placed in 28×28 so its centre of mass is at the centre.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 40_000_000
"""Larger images are refused before decoding (decompression bombs)."""
INK_LEVEL = 0.2
"""Pixels brighter than this share of the maximum count as stroke when finding the bounding box."""


class ImageError(ValueError):
    """An upload or drawing that cannot become an input; the message says why, for the user."""


def decode_image(data: bytes) -> Image.Image:
    """Bytes of a PNG/JPEG/BMP/WebP/GIF → a loaded PIL image (first frame), or ImageError."""
    if not data:
        raise ImageError("The file is empty.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.width * img.height > MAX_PIXELS:
                raise ImageError(f"The image is too large ({img.width}×{img.height} pixels); "
                                 f"the limit is {MAX_PIXELS // 1_000_000} megapixels.")
            img.seek(0)
            img.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"The image is too large to open safely ({exc}).") from exc
    except UnidentifiedImageError as exc:
        raise ImageError("This file is not an image that can be read (PNG, JPEG, BMP, WebP or GIF).") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"The image file is damaged or truncated ({exc}).") from exc
    return img


def to_grey(img: Image.Image) -> np.ndarray:
    """float [H, W] in 0..1, transparent areas taken as background, light backgrounds inverted."""
    img = ImageOps.exif_transpose(img)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
        grey = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)
        alpha = rgba[..., 3]
        if alpha.min() < 0.99:
            # A stroke drawn on a transparent canvas: ink is where alpha is, whatever its colour.
            ink_is_dark = np.average(grey, weights=alpha + 1e-6) < 0.5
            ink = (1 - grey) if ink_is_dark else grey
            return np.clip(ink * alpha, 0, 1)
    else:
        grey = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if np.median(border) > 0.5:
        grey, border = 1.0 - grey, 1.0 - border
    # Paper is rarely pure white (nor a screen pure black): its level becomes MNIST's black, 0.
    background = float(np.median(border))
    return np.clip((grey - background) / max(1.0 - background, 1e-6), 0.0, 1.0)


def to_mnist(grey: np.ndarray) -> np.ndarray:
    """float [H, W] white-on-black → uint8 [28, 28]: bounding box into 20×20, centre of mass centred."""
    grey = np.asarray(grey, dtype=np.float32)
    if grey.ndim != 2 or grey.size == 0:
        raise ImageError("Expected a 2-D grey image.")
    peak = float(grey.max())
    if peak <= 0.05:
        raise ImageError("The image is empty: draw or upload a digit or shape first.")
    rows, cols = np.nonzero(grey > INK_LEVEL * peak)
    crop = grey[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] / peak
    h, w = crop.shape
    scale = 20.0 / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    small = Image.fromarray((crop * 255).astype(np.uint8)).resize((nw, nh), Image.Resampling.LANCZOS)
    small_arr = np.asarray(small, dtype=np.float32)
    canvas = np.zeros((28, 28), np.float32)
    top, left = (28 - nh) // 2, (28 - nw) // 2
    canvas[top : top + nh, left : left + nw] = small_arr
    # Shift so the centre of mass lands on (14, 14), as MNIST's preprocessing did.
    total = canvas.sum()
    ys, xs = np.indices(canvas.shape)
    dy = int(round(13.5 - (ys * canvas).sum() / total))
    dx = int(round(13.5 - (xs * canvas).sum() / total))
    dy = int(np.clip(dy, -top, 28 - nh - top))
    dx = int(np.clip(dx, -left, 28 - nw - left))
    canvas = np.roll(canvas, (dy, dx), axis=(0, 1))
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


def prepare_upload(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Uploaded file bytes → (the original as uint8 grey [H, W] for display, the 28×28 input)."""
    img = decode_image(data)
    if img.width * img.height > 4_000_000:
        img.thumbnail((2000, 2000))  # keep preprocessing fast; the 20×20 target needs no more
    grey = to_grey(img)
    return (grey * 255).astype(np.uint8), to_mnist(grey)


def prepare_drawing(rgba: np.ndarray | None) -> np.ndarray:
    """A canvas's RGBA array [H, W, 4] → the 28×28 input; ImageError when nothing is drawn."""
    if rgba is None or np.asarray(rgba).size == 0:
        raise ImageError("The canvas is empty: draw a digit with the mouse or a finger.")
    arr = np.asarray(rgba)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ImageError(f"Unexpected canvas data of shape {arr.shape}.")
    img = Image.fromarray(arr.astype(np.uint8), "RGBA" if arr.shape[2] == 4 else "RGB")
    return to_mnist(to_grey(img))
