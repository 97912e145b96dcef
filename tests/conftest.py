"""Shared fixtures: seeding, isolated paths, the shipped target CNN."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from interp.settings import ROOT, Paths


@pytest.fixture(autouse=True)
def _seed() -> None:
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture
def paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Paths:
    """A Paths whose data, runs and store live in tmp_path (assets stay the committed ones)."""
    monkeypatch.setenv("N2W_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("N2W_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("N2W_DB", str(tmp_path / "data" / "interp.duckdb"))
    return Paths.from_env()


@pytest.fixture(scope="session")
def target_model():
    """The committed target CNN checkpoint (read-only; tests must not modify it)."""
    from interp.target import load_target

    return load_target(ROOT / "assets" / "target")


@pytest.fixture(scope="session")
def mnist():
    """Real MNIST from the project's data folder (setup fetched it)."""
    from interp.mnist import load_mnist

    return load_mnist(ROOT / "data")
