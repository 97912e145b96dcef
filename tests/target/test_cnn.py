"""The target CNN: §3.1 architecture, checkpoint round-trip, the shipped accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from interp.data.mnist import Mnist, MnistSplit
from interp.target.cnn import TargetCNN, TargetConfig, evaluate_target, load_target, save_target, to_input, train_target


def test_architecture_matches_the_paper() -> None:
    m = TargetCNN()
    c1, c2 = m.conv1[0], m.conv2[0]
    assert (c1.in_channels, c1.out_channels, c1.kernel_size, c1.stride, c1.padding) == (1, 8, (9, 9), (1, 1), (4, 4))
    assert (c2.in_channels, c2.out_channels, c2.kernel_size, c2.stride, c2.padding) == (8, 16, (9, 9), (1, 1), (4, 4))
    assert isinstance(m.conv1[1], torch.nn.ReLU) and isinstance(m.conv1[2], torch.nn.MaxPool2d)
    assert m.fc.in_features == 16 * 7 * 7 and m.fc.out_features == 10
    x = to_input(np.zeros((5, 28, 28), np.uint8))
    assert m.conv1(x).shape == (5, 8, 14, 14)
    assert m(x).shape == (5, 10)


def test_to_input_scales_uint8() -> None:
    x = to_input(np.full((28, 28), 255, np.uint8))
    assert x.shape == (1, 1, 28, 28) and float(x.max()) == 1.0


def test_training_learns_and_checkpoint_round_trips(tmp_path: Path) -> None:
    # Two separable "classes" learned in one short run.
    rng = np.random.default_rng(0)
    imgs = np.zeros((200, 28, 28), np.uint8)
    labels = rng.integers(0, 2, 200)
    imgs[labels == 0, 4:24, 13:15] = 255  # vertical bar
    imgs[labels == 1, 13:15, 4:24] = 255  # horizontal bar
    split = MnistSplit(imgs, labels.astype(np.int64))
    model, summary = train_target(Mnist(split, split, "fake"), TargetConfig(epochs=3, batch_size=32), progress=False)
    assert summary["accuracy"] > 0.9 and summary["source"] == "fake"
    save_target(model, tmp_path, summary)
    assert json.loads((tmp_path / "config.json").read_text())["config"]["epochs"] == 3
    loaded = load_target(tmp_path)
    x = to_input(imgs[:8])
    torch.testing.assert_close(loaded(x), model.eval()(x))


def test_shipped_checkpoint_reaches_98_percent(target_model, mnist) -> None:
    assert evaluate_target(target_model, mnist.test) >= 0.98
