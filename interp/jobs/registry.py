"""Job backends by name (``JobSpec.backend``): ``local`` runs a detached process here, ``ray`` submits to
a Ray cluster's job server. A new backend is one `register_backend` call; backends never import
`interp.jobs.control`, which dispatches through ``BACKENDS``."""

from __future__ import annotations

from interp.jobs.backend import Backend
from interp.jobs.local import LocalBackend
from interp.jobs.ray_backend import RayBackend

BACKENDS: dict[str, Backend] = {}


def register_backend(name: str, backend: Backend) -> Backend:
    BACKENDS[name] = backend
    return backend


register_backend("local", LocalBackend())
register_backend("ray", RayBackend())  # imports Ray only when a Ray job is touched: the app starts without it
