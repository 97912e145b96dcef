"""The reference set: activations (conv1 by default, or another registered layer) of synthetic + MNIST images,
for calibration and histograms."""

from __future__ import annotations

import numpy as np

from interp.data.mnist import load_mnist
from interp.data.shapes import generate_shapes
from interp.encoding.encoders import bin_activations
from interp.encoding.thresholds import bin_occupancy, calibrate_thresholds
from interp.settings import Paths
from interp.target.activations import blank_response, capture
from interp.target.cnn import load_target
from interp.target.layers import DEFAULT_LAYER

REFERENCE_SEED = 12345
"""Disjoint from the dataset seeds so calibration never looks at training images."""


def reference_images(mnist_train: np.ndarray, n_synthetic: int, n_mnist: int, seed: int = REFERENCE_SEED) -> np.ndarray:
    """uint8 [n_synthetic + n_mnist, 28, 28]: generated shapes and a seeded sample of MNIST train."""

    rng = np.random.default_rng(seed)
    pick = rng.choice(len(mnist_train), size=min(n_mnist, len(mnist_train)), replace=False)
    return np.concatenate([generate_shapes(n_synthetic, seed).images, mnist_train[pick]])


def reference_activations(paths: Paths, n_synthetic: int = 1000, n_mnist: int = 1000,
                          layer: str = DEFAULT_LAYER) -> np.ndarray:
    """float32 [n, C, S, S] ([n, 8, 14, 14] for conv1) for the reference images through the shipped target."""

    images = reference_images(load_mnist(paths.data_dir).train.images, n_synthetic, n_mnist)
    return capture(load_target(paths.target_dir), images, layer)


def calibrate_default(paths: Paths, name: str = "calibrated", n_synthetic: int = 2000, n_mnist: int = 2000,
                      layer: str = DEFAULT_LAYER):
    """A calibrated ThresholdSet of ``layer`` and its bin occupancy float [C, 5] on the reference set."""

    acts = reference_activations(paths, n_synthetic, n_mnist, layer)
    blank = blank_response(load_target(paths.target_dir), layer)
    tset = calibrate_thresholds(acts, blank, name=name)
    return tset, bin_occupancy(bin_activations(acts, tset.as_array()))
