"""What a job is: a frozen, validated spec (kind, run name, backend, where its artifacts go).

The app never passes a form field through a shell: names and addresses are checked against strict
patterns here, and `interp.jobs.command` turns a spec into an argument vector.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interp import storage
from interp.evaluation.evaluate import EVAL_SETS
from interp.evaluation.labelled_sets import PREFIX as LABELLED_PREFIX
from interp.interpreters.training import FinetuneConfig
from interp.jobs.registry import BACKENDS
from interp.names import is_safe_name, safe_name

JOB_KINDS = ("finetune", "evaluate", "effects")
RUN_KINDS = ("finetune", "evaluate")
"""Job kinds whose result is a run in the store (an effect map is a folder only)."""
TERMINAL = ("succeeded", "failed", "stopped")
STATUSES = ("queued", "running", *TERMINAL)
SHIPPED_PREFIX = "shipped:"
ADDRESS_RE = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+(:\d+)?/?")


@dataclass(frozen=True)
class EvaluateJobConfig:
    """An evaluation job: describe a held-out set with a run's interpreter and score it (§4)."""

    run: str
    """Run name (a folder under the runs dir / storage), shipped:NAME (assets/interpreters/NAME) or base:PRESET."""
    eval_set: str = "syn_eval"
    """Held-out set: syn_eval, mnist_eval, syn_alt, or file:NAME (a labelled set in the data dir's labelled/)."""
    n: int = 40
    """Samples to describe."""
    batch_size: int = 8
    """Encodings per generate call."""
    questions: bool = False
    """Also ask one grounded count question per image and store the answers' accuracy."""

    def __post_init__(self) -> None:
        labelled = isinstance(self.eval_set, str) and self.eval_set.startswith(LABELLED_PREFIX)
        if not (self.eval_set in EVAL_SETS or (labelled and is_safe_name(self.eval_set[len(LABELLED_PREFIX):]))):
            raise ValueError(f"eval_set must be one of {EVAL_SETS} or file:NAME, got {self.eval_set!r}")
        if self.n < 1 or self.batch_size < 1:
            raise ValueError("n and batch_size must be ≥ 1")
        shipped = isinstance(self.run, str) and self.run.startswith(SHIPPED_PREFIX)
        name = self.run[len(SHIPPED_PREFIX):] if shipped else self.run
        if not (isinstance(self.run, str) and (self.run.startswith("base:") or is_safe_name(name))):
            raise ValueError(f"run must be a run name, shipped:NAME or base:PRESET, got {self.run!r}")

    @classmethod
    def run_ref(cls, kind: str, spec: str) -> str:
        """The ``run`` of an interpreter the app lists (`interp.interpreters.chat.InterpreterChoice` kind and spec):
        runs/NAME/adapter → NAME, assets/interpreters/NAME → shipped:NAME, base:PRESET as it is."""
        if kind == "base":
            return spec
        path = Path(spec)
        if kind == "shipped":
            return SHIPPED_PREFIX + path.name
        if kind == "run":
            return (path.parent if path.name == "adapter" else path).name
        raise ValueError(f"an evaluation job takes a shipped, trained or base interpreter, not a {kind!r} one")


@dataclass(frozen=True)
class EffectsJobConfig:
    """An effect-map job: each filter of the interpreter's layer ablated over held-out images (`interp.evaluation.effects`)."""

    run: str
    """The interpreter: a run name, shipped:NAME or base:PRESET (as `EvaluateJobConfig.run`)."""
    n: int = 200
    """Held-out synthetic images."""
    n_mnist: int = 1000
    """MNIST test digits for the target's accuracy."""

    def __post_init__(self) -> None:
        EvaluateJobConfig(run=self.run)  # the same check of the interpreter reference
        if self.n < 1 or self.n_mnist < 0:
            raise ValueError("n must be ≥ 1 and n_mnist ≥ 0")


@dataclass(frozen=True)
class JobSpec:
    """What to run, where, and where its artifacts go. Validated on construction."""

    kind: str
    """'finetune' or 'evaluate'."""
    name: str
    """Run name: its folder under the runs dir (or storage) and its id in the store."""
    finetune: FinetuneConfig | None = None
    """The fine-tuning run (its ``out`` and ``sync_to`` are set from name and storage)."""
    evaluate: EvaluateJobConfig | None = None
    """The evaluation run."""
    effects: EffectsJobConfig | None = None
    """The effect map."""
    backend: str = "local"
    """'local' (this machine) or 'ray' (a Ray cluster's job server)."""
    address: str | None = None
    """Ray dashboard address, e.g. http://127.0.0.1:8265 (an SSH tunnel's local end works)."""
    storage: str | None = None
    """Where run folders go: a path both sides can read, or an fsspec URL (s3://…); default: this runs dir."""
    remote_data_dir: str | None = None
    """Ray: the data folder on the cluster (models, datasets cached there); default: this machine's."""
    num_gpus: float = 0.0
    """Ray: GPUs reserved for the job (1 for a 7B QLoRA run)."""
    num_cpus: float = 1.0
    """Ray: CPUs reserved for the job."""
    python: str = "python"
    """Ray: the Python on the cluster that has the project's requirements."""

    def __post_init__(self) -> None:
        if self.kind not in JOB_KINDS:
            raise ValueError(f"kind must be one of {JOB_KINDS}, got {self.kind!r}")
        safe_name("run name", self.name)
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {sorted(BACKENDS)}, got {self.backend!r}")
        if self.backend == "ray" and not ADDRESS_RE.fullmatch(self.address or ""):
            raise ValueError(f"the ray backend needs the cluster's dashboard address as http://HOST:PORT "
                             f"(default port 8265), got {self.address!r}")
        if any((self.kind == kind) != (getattr(self, kind) is not None) for kind in JOB_KINDS):
            raise ValueError(f"a {self.kind} job needs exactly its own config ({self.kind}=...)")
        if self.num_gpus < 0 or self.num_cpus <= 0:
            raise ValueError("num_gpus must be ≥ 0 and num_cpus > 0")
        if self.kind != "finetune" and self.storage and storage.is_url(self.storage):
            raise ValueError(f"{self.kind} jobs read the adapter from a shared path; use a path as storage")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "JobSpec":
        names = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in names}
        if d.get("finetune"):
            d["finetune"] = FinetuneConfig.from_dict(d["finetune"])
        if d.get("evaluate"):
            d["evaluate"] = EvaluateJobConfig(**d["evaluate"])
        if d.get("effects"):
            d["effects"] = EffectsJobConfig(**d["effects"])
        return cls(**d)

    @property
    def preset(self) -> str | None:
        return self.finetune.preset if self.finetune else None
