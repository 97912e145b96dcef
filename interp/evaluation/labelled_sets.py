"""Labelled sets people bring: their own images with shape counts, evaluated like the held-out sets.

Two formats (`load_labelled_set`):

- ``FILE.npz`` with ``images`` uint8 [n, 28, 28] (white on black, as MNIST) and either ``counts``
  int [n, 8] in `interp.language.SHAPES` order (diagonal, anti-diagonal, vertical, horizontal,
  checkerboard, ellipse, corner, crossing) or ``descriptions``: n strings in the canonical form of L
  ("Image with 2 shapes: 1 corner, 1 ellipse"), e.g. ``np.savez(path, images=x, descriptions=np.array(texts))``.
- a folder with ``labels.csv`` (header ``file,description``) and the images it names (PNG, JPEG, BMP,
  WebP or GIF, paths relative to the folder). A 28×28 grey image is used pixel for pixel (so white on
  black); any other image is prepared like an upload (`interp.data.images.prepare_upload`: light
  paper inverted, the strokes' box fitted into 20×20, centre of mass centred).

Everything is checked before anything is used: one `LabelledSetError` names the file and lists every
problem found (bad array, row, line or image; the first `MAX_LISTED`, then how many more).

In the store a labelled set is named ``file:<stem>`` (`labelled_set_name`); ``file:NAME`` also names
``data/labelled/NAME.npz`` or the folder ``data/labelled/NAME/`` (`resolve_labelled_set`), where the
Compare page saves uploads (`save_labelled_upload`).
"""

from __future__ import annotations

import csv
import io
import os
import re
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from interp.data.images import ImageError, decode_image, prepare_upload, to_grey
from interp.interpreters.dataset import LabelledImages
from interp.language import PLURALS, SHAPES, parse_description
from interp.names import is_safe_name, safe_name

PREFIX = "file:"
LABELS_CSV = "labels.csv"
MAX_LISTED = 20
"""Problems listed one a line in a `LabelledSetError`; the rest are counted."""
EXAMPLE = "Image with 2 shapes: 1 corner, 1 ellipse"
_ITEM_RE = re.compile(r"\b[0-9]+\s+([A-Za-z][A-Za-z_-]*)")
_NAMES = {*SHAPES, *PLURALS.values(), "shape", "shapes"}


class LabelledSetError(ValueError):
    """A labelled set that cannot be used; the message names the file and every problem."""

    def __init__(self, path: Path, problems: list[str]):
        shown = problems[:MAX_LISTED]
        more = len(problems) - len(shown)
        lines = [f"{path} is not a usable labelled set ({len(problems)} problem{'s' * (len(problems) != 1)}):",
                 *(f"  {p}" for p in shown), *([f"  and {more} more"] if more else [])]
        super().__init__("\n".join(lines))
        self.problems = problems


def labelled_set_name(path: str | Path) -> str:
    """The eval set name a labelled set is stored under: ``file:<stem>`` (a folder: its name)."""
    text = str(path)
    if text.startswith(PREFIX):
        return text
    p = Path(text)
    return PREFIX + (p.stem if p.suffix.lower() == ".npz" else p.name)


def resolve_labelled_set(name: str, labelled_dir: Path) -> Path | None:
    """``file:NAME`` → ``labelled_dir``/NAME.npz or /NAME/; else ``name`` as a path. None where nothing is."""
    if name.startswith(PREFIX):
        stem = safe_name("labelled set name", name[len(PREFIX):])
        candidates = [labelled_dir / f"{stem}.npz", labelled_dir / stem]
    else:
        candidates = [Path(name)]
    return next((p for p in candidates if p.is_file() or (p / LABELS_CSV).is_file()), None)


def list_labelled_sets(labelled_dir: Path) -> list[str]:
    """``file:NAME`` for every .npz and every folder with a labels.csv in ``labelled_dir``, sorted."""
    if not labelled_dir.is_dir():
        return []
    found = [p for p in labelled_dir.iterdir()
             if (p.suffix == ".npz" and p.is_file()) or (p / LABELS_CSV).is_file()]
    return sorted(labelled_set_name(p) for p in found if is_safe_name(labelled_set_name(p)[len(PREFIX):]))


def description_problem(text: object) -> str | None:
    """Why ``text`` is not a canonical description in L, or None when it is one."""
    if not isinstance(text, str) or not text.strip():
        return "empty description"
    parsed = parse_description(text)
    if parsed.well_formed and parsed.text == text.strip():
        return None
    unknown = [w for w in _ITEM_RE.findall(text) if w.lower() not in _NAMES]
    if unknown:
        return f"unknown shape {unknown[0]!r} in {text!r}; shapes are {', '.join(SHAPES)}"
    if parsed.total is not None and not parsed.total_matches:
        return f"{text!r} states {parsed.total} shapes but its counts add up to {sum(parsed.counts.values())}"
    return f"{text!r} is not a description in L (canonical form, e.g. {EXAMPLE!r})"


def _counts_from_descriptions(texts: list, where, problems: list[str]) -> np.ndarray:
    counts = np.zeros((len(texts), len(SHAPES)), np.int64)
    for i, text in enumerate(texts):
        problem = description_problem(text)
        if problem:
            problems.append(f"{where(i)}: {problem}")
        else:
            counts[i] = parse_description(text).vector
    return counts


def _read_npz(path: Path, problems: list[str]) -> dict[str, np.ndarray] | None:
    """The arrays of an .npz by name, or None (and a problem) when it cannot be read without pickle."""
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        problems.append(f"not a readable .npz file ({exc})")
        return None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        problems.append("a single .npy array, not an .npz archive of named arrays (np.savez)")
        return None
    with npz:
        arrays = {}
        for key in npz.files:
            try:
                arrays[key] = npz[key]
            except ValueError:  # an object array is pickled, and pickles are never loaded
                problems.append(f"{key!r} is stored as Python objects; save strings as np.array(list_of_str)")
    return arrays


def _load_npz(path: Path, problems: list[str]) -> tuple[np.ndarray, np.ndarray]:
    arrays = _read_npz(path, problems)
    if arrays is None or problems:
        return np.zeros((0, 28, 28), np.uint8), np.zeros((0, len(SHAPES)), np.int64)
    images, counts, texts = arrays.get("images"), arrays.get("counts"), arrays.get("descriptions")
    if images is None:
        problems.append(f"no 'images' array (the file holds {sorted(arrays) or 'nothing'})")
        images = np.zeros((0, 28, 28), np.uint8)
    elif images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        problems.append(f"images must be uint8 [n, 28, 28], got {images.dtype} {list(images.shape)}")
    n = len(images) if images.ndim else 0
    if (counts is None) == (texts is None):
        problems.append("give exactly one of 'counts' (int [n, 8]) and 'descriptions' (n strings)")
        return images, np.zeros((n, len(SHAPES)), np.int64)
    if counts is not None:
        if not np.issubdtype(counts.dtype, np.integer) or counts.ndim != 2 or counts.shape[1] != len(SHAPES):
            hint = " (7 columns: add a zero 'crossing' column)" if counts.ndim == 2 and counts.shape[1] == 7 else ""
            problems.append(f"counts must be integers [n, 8] in the order {', '.join(SHAPES)}; "
                            f"got {counts.dtype} {list(counts.shape)}{hint}")
            return images, np.zeros((n, len(SHAPES)), np.int64)
        for i, j in zip(*np.nonzero(counts < 0), strict=True):
            problems.append(f"row {i}: negative count {counts[i, j]} for {SHAPES[j]!r}")
    else:
        if texts.ndim != 1 or texts.dtype.kind not in "US":
            problems.append(f"descriptions must be n strings, got {texts.dtype} {list(texts.shape)}")
            return images, np.zeros((n, len(SHAPES)), np.int64)
        strings = [t.decode("utf-8", "replace") if isinstance(t, bytes) else str(t) for t in texts.tolist()]
        counts = _counts_from_descriptions(strings, lambda i: f"row {i}", problems)
    if len(counts) != n:
        problems.append(f"{n} images but {len(counts)} rows of labels")
    return images, counts.astype(np.int64)


def read_image(data: bytes) -> np.ndarray:
    """An image file → uint8 [28, 28]: a 28×28 grey one as it is, others prepared like an upload."""
    img = decode_image(data)
    if img.size == (28, 28):
        if img.mode == "L":
            return np.asarray(img, dtype=np.uint8).copy()
        return np.rint(to_grey(img) * 255).astype(np.uint8)
    return prepare_upload(data)[1]


def _load_folder(folder: Path, problems: list[str]) -> tuple[np.ndarray, np.ndarray]:
    csv_path = folder / LABELS_CSV
    images: list[np.ndarray] = []
    counts: list[np.ndarray] = []
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{LABELS_CSV} cannot be read ({exc})")
        return np.zeros((0, 28, 28), np.uint8), np.zeros((0, len(SHAPES)), np.int64)
    reader = csv.DictReader(io.StringIO(text))
    if not {"file", "description"} <= set(reader.fieldnames or []):
        problems.append(f"{LABELS_CSV} needs the header 'file,description', got {reader.fieldnames}")
        return np.zeros((0, 28, 28), np.uint8), np.zeros((0, len(SHAPES)), np.int64)
    root = folder.resolve()
    for row in reader:
        where = f"{LABELS_CSV} line {reader.line_num}"
        name, description = (row.get("file") or "").strip(), row.get("description") or ""
        image = None
        target = (folder / name).resolve()
        if not name:
            problems.append(f"{where}: no file named")
        elif not target.is_relative_to(root):
            problems.append(f"{where}: {name!r} is outside the folder")
        elif not target.is_file():
            problems.append(f"{where}: file {name!r} not found")
        else:
            try:
                image = read_image(target.read_bytes())
            except (ImageError, OSError) as exc:
                problems.append(f"{where}: {name}: {exc}")
        problem = description_problem(description)
        if problem:
            problems.append(f"{where}: {problem}")
        elif image is not None:
            images.append(image)
            counts.append(parse_description(description).vector)
    if not images and not problems:
        problems.append(f"{LABELS_CSV} lists no images")
    return np.array(images, np.uint8).reshape(-1, 28, 28), np.array(counts, np.int64).reshape(-1, len(SHAPES))


def load_labelled_set(path: str | Path) -> LabelledImages:
    """A labelled set (an .npz or a folder with labels.csv) → LabelledImages (index = row number), or
    one `LabelledSetError` listing every problem."""
    path = Path(path)
    problems: list[str] = []
    if path.is_dir():
        if not (path / LABELS_CSV).is_file():
            raise LabelledSetError(path, [f"the folder has no {LABELS_CSV} (columns: file,description)"])
        images, counts = _load_folder(path, problems)
    elif path.is_file():
        images, counts = _load_npz(path, problems)
    else:
        raise LabelledSetError(path, ["no such file or folder"])
    if not problems and len(images) == 0:
        problems.append("no images")
    if problems:
        raise LabelledSetError(path, problems)
    n = len(images)
    return LabelledImages(images, counts, [labelled_set_name(path)] * n, np.arange(n))


def save_labelled_upload(data: bytes, filename: str, labelled_dir: Path) -> tuple[str, int]:
    """An uploaded .npz checked with `load_labelled_set`, then saved as ``labelled_dir``/<stem>.npz:
    (its eval set name, images). Nothing is written when it fails (LabelledSetError, or ValueError for the name)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(filename).stem).strip("-.") or "upload"
    stem = safe_name("labelled set name", stem[:64])
    labelled_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".npz", dir=labelled_dir, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        try:
            n = len(load_labelled_set(tmp).images)
        except LabelledSetError as exc:
            raise LabelledSetError(Path(filename), exc.problems) from None
        os.replace(tmp, labelled_dir / f"{stem}.npz")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return PREFIX + stem, n
