"""User images → MNIST-style inputs, made the way MNIST was made.

LeCun et al.: grey-scale, white strokes on black, the stroke's bounding box fitted into 20×20
(aspect kept, anti-aliased), then placed in 28×28 so its centre of mass is at the centre.
"""

from __future__ import annotations

import base64
import io
import warnings
import zlib

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 40_000_000
"""Larger images are refused before decoding (decompression bombs)."""
INK_LEVEL = 0.2
"""Pixels brighter than this share of the maximum count as stroke when finding the bounding box."""
FORMATS: dict[str, tuple[str, ...]] = {
    "PNG": ("png",), "JPEG": ("jpg", "jpeg"), "BMP": ("bmp",), "WEBP": ("webp",), "GIF": ("gif",),
}
"""The only formats decoded (Pillow's name → file extensions). Pillow knows many more, some of which
call out to other programs (EPS runs Ghostscript): a file is never tried as one of those."""
UPLOAD_EXTENSIONS: tuple[str, ...] = tuple(ext for exts in FORMATS.values() for ext in exts)
"""What an upload widget accepts: the extensions of `FORMATS`."""
FORMAT_NAMES = "PNG, JPEG, BMP, WebP or GIF"
"""`FORMATS` for people."""


class ImageError(ValueError):
    """An upload or drawing that cannot become an input; the message says why, for the user."""


def _size(n_bytes: int) -> str:
    """A byte count as people read it (MB as Streamlit counts them: 2**20 bytes)."""
    return f"{n_bytes / 2**20:.1f} MB" if n_bytes >= 2**20 else f"{n_bytes / 2**10:.0f} KB"


def decode_image(data: bytes, max_bytes: int | None = None) -> Image.Image:
    """Bytes of a PNG/JPEG/BMP/WebP/GIF → a loaded PIL image (first frame), or ImageError.

    Only `FORMATS` are tried, whatever the file's name says. ``max_bytes`` refuses larger files
    (the app passes its upload limit, so the page can say why a file was refused).
    """
    if not data:
        raise ImageError("The file is empty.")
    if max_bytes is not None and len(data) > max_bytes:
        raise ImageError(f"The file is {_size(len(data))}; the limit is {_size(max_bytes)}.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=list(FORMATS))
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
        raise ImageError(f"This file is not an image that can be read ({FORMAT_NAMES}).") from exc
    except Exception as exc:  # noqa: BLE001 - a damaged file can make a decoder raise almost anything
        raise ImageError(f"The image file is damaged or truncated ({exc or type(exc).__name__}).") from exc
    if img.width < 1 or img.height < 1:
        raise ImageError("The image has no pixels.")
    return img


def _lightness(img: Image.Image) -> np.ndarray:
    """float32 [H, W] in 0..1: how light each pixel is, whatever the mode (alpha ignored).

    16-bit and 32-bit integer and float images (I;16, I, F) are stretched from their darkest to
    their lightest value: Pillow's own conversion to 8 bits clips at 255, which turns a 16-bit
    page white and its ink with it.
    """
    if img.mode in ("I", "F") or img.mode.startswith("I;"):
        arr = np.asarray(img, dtype=np.float64)
        finite = np.isfinite(arr)
        if not finite.any():
            return np.zeros(arr.shape, np.float32)
        lo, hi = float(arr[finite].min()), float(arr[finite].max())
        arr = np.where(finite, arr, lo)
        return ((arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)).astype(np.float32)
    try:
        grey = img.convert("L")
    except ValueError:
        # LAB and premultiplied La have no converter to L; their first band is the lightness.
        grey = img.getchannel(0)
    return np.asarray(grey, dtype=np.float32) / 255.0


ALPHA_BAND = {"RGBA": "A", "LA": "A", "PA": "A", "RGBa": "a", "La": "a"}


def _alpha(img: Image.Image) -> np.ndarray | None:
    """float32 [H, W] opacity in 0..1, or None for an image without transparency."""
    band = ALPHA_BAND.get(img.mode)  # not LAB's "A" band: that is the a* colour axis
    if band:
        return np.asarray(img.getchannel(band), dtype=np.float32) / 255.0
    if "transparency" in img.info and img.mode in ("P", "L", "RGB", "1"):
        return np.asarray(img.convert("RGBA").getchannel("A"), dtype=np.float32) / 255.0
    return None


def to_grey(img: Image.Image) -> np.ndarray:
    """float32 [H, W] in 0..1, white on black, from an image of any Pillow mode (1, L, P, RGB(A),
    LA, CMYK, YCbCr, LAB, HSV, I;16, I, F...): transparent areas taken as background, light
    backgrounds inverted, the background level made 0. ImageError if the mode cannot be read."""
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - a broken EXIF orientation is no reason to refuse the pixels
        pass
    try:
        grey, alpha = _lightness(img), _alpha(img)
    except (ValueError, TypeError, OSError) as exc:
        raise ImageError(f"Images of colour mode {img.mode} cannot be read ({exc}).") from exc
    if alpha is not None and alpha.min() < 0.99:
        # A stroke drawn on a transparent canvas: ink is where alpha is, whatever its colour.
        ink_is_dark = np.average(grey, weights=alpha + 1e-6) < 0.5
        ink = (1 - grey) if ink_is_dark else grey
        return np.clip(ink * alpha, 0, 1).astype(np.float32)
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if np.median(border) > 0.5:
        grey, border = 1.0 - grey, 1.0 - border
    # Paper is rarely pure white (nor a screen pure black): its level becomes MNIST's black, 0.
    background = float(np.median(border))
    return np.clip((grey - background) / max(1.0 - background, 1e-6), 0.0, 1.0).astype(np.float32)


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


def prepare_upload(data: bytes, max_bytes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Uploaded file bytes → (the prepared image as uint8 grey [H, W], white on black, for display;
    the 28×28 input). Any file that cannot become an input raises ImageError, saying why."""
    img = decode_image(data, max_bytes)
    if img.width * img.height > 4_000_000:
        img.thumbnail((2000, 2000))  # keep preprocessing fast; the 20×20 target needs no more
    grey = to_grey(img)
    return np.rint(grey * 255).astype(np.uint8), to_mnist(grey)


def prepare_drawing(rgba: np.ndarray | None) -> np.ndarray:
    """A canvas's RGBA array [H, W, 4] → the 28×28 input; ImageError when nothing is drawn."""
    if rgba is None or np.asarray(rgba).size == 0:
        raise ImageError("The canvas is empty: draw a digit with the mouse or a finger.")
    arr = np.asarray(rgba)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ImageError(f"Unexpected canvas data of shape {arr.shape}.")
    img = Image.fromarray(arr.astype(np.uint8), "RGBA" if arr.shape[2] == 4 else "RGB")
    return to_mnist(to_grey(img))


def image_to_token(image: np.ndarray) -> str:
    """A uint8 [28, 28] image as a short URL-safe text (zlib + base64), so a link or a reload can carry it."""
    pixels = np.asarray(image, dtype=np.uint8)
    if pixels.shape != (28, 28):
        raise ImageError(f"an image token holds a 28×28 image, got shape {list(pixels.shape)}")
    return base64.urlsafe_b64encode(zlib.compress(pixels.tobytes(), 9)).decode("ascii")


def image_from_token(token: str) -> np.ndarray:
    """The image `image_to_token` wrote; ImageError for any other text (a mangled or hand-edited link)."""
    try:
        raw = zlib.decompress(base64.urlsafe_b64decode(token.encode("ascii")), bufsize=784)
    except (ValueError, UnicodeEncodeError, zlib.error) as exc:
        raise ImageError(f"the image in the link cannot be read ({exc})") from None
    if len(raw) != 784:
        raise ImageError(f"the image in the link holds {len(raw)} pixels, not 28×28")
    return np.frombuffer(raw, dtype=np.uint8).reshape(28, 28).copy()
