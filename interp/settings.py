"""Where the project keeps its files. Resolved once, passed down; env vars override."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Paths:
    """Filesystem layout of one project checkout."""

    root: Path = ROOT
    """Repository root."""
    data_dir: Path = ROOT / "data"
    """Downloaded and derived data (git-ignored): MNIST cache, datasets, models, the store."""
    assets_dir: Path = ROOT / "assets"
    """Committed artifacts: target CNN checkpoint, shipped interpreter adapter, default thresholds."""
    runs_dir: Path = ROOT / "runs"
    """Fine-tuning and evaluation run folders (git-ignored)."""
    db_path: Path = ROOT / "data" / "interp.duckdb"
    """The DuckDB store."""

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def datasets_dir(self) -> Path:
        return self.data_dir / "datasets"

    @property
    def labelled_dir(self) -> Path:
        """People's own labelled sets (`interp.evaluation.labelled_sets`): NAME.npz or NAME/labels.csv."""
        return self.data_dir / "labelled"

    @property
    def target_dir(self) -> Path:
        return self.assets_dir / "target"

    @property
    def interpreters_dir(self) -> Path:
        """Shipped interpreters (adapter folders)."""
        return self.assets_dir / "interpreters"

    @property
    def probes_dir(self) -> Path:
        """Shipped activation probes."""
        return self.assets_dir / "probes"

    @property
    def results_path(self) -> Path:
        """The shipped evaluation results (`interp.evaluation.shipped`)."""
        return self.assets_dir / "results" / "evaluations.jsonl.gz"

    @classmethod
    def from_env(cls) -> "Paths":
        """Honour N2W_DATA_DIR, N2W_RUNS_DIR and N2W_DB (tests point them at tmp_path)."""
        data = Path(os.environ.get("N2W_DATA_DIR", ROOT / "data"))
        runs = Path(os.environ.get("N2W_RUNS_DIR", ROOT / "runs"))
        db = Path(os.environ.get("N2W_DB", data / "interp.duckdb"))
        return cls(data_dir=data, runs_dir=runs, db_path=db)
