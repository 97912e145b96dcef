"""What a job backend implements (`Backend`) and returns from submit (`Launch`); the backends live in
`interp.jobs.local` and `interp.jobs.ray_backend`, by name in `interp.jobs.registry`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from interp.settings import Paths

if TYPE_CHECKING:  # annotations only: spec imports the registry, which imports the backends
    from interp.jobs.spec import JobSpec


@dataclass
class Launch:
    """What a backend returns from submit: how to find the job again."""

    external_id: str | None = None
    pid: int | None = None


class Backend(Protocol):
    def submit(self, job_id: str, attempt: int, argv: list[str], env: dict[str, str], spec: JobSpec,
               paths: Paths) -> Launch: ...

    def poll(self, job: Any, paths: Paths) -> tuple[str | None, str | None]:
        """(status in STATUSES, message); status None when the backend cannot tell right now."""

    def logs(self, job: Any, paths: Paths) -> str: ...

    def stop(self, job: Any, paths: Paths) -> None: ...
