"""The ``ray`` jobs backend: Ray's Jobs API (the job server in a Ray head's dashboard).

The project folder is shipped as the job's ``working_dir`` (git-ignored files left out: no venv,
data or runs), the entry point is the same ``python -m interp …`` command the local backend runs,
and status, logs and stop go through ``JobSubmissionClient``.
"""

from __future__ import annotations

import shlex

from interp.jobs.backend import Launch
from interp.settings import ROOT

# Anchored at the project root: a bare "data" would also drop interp/data.
EXCLUDES = ["/.git", "/.venv", "/data", "/runs", "/test-artifacts", "**/__pycache__", "/.pytest_cache",
            "/.ruff_cache"]
# Ray's JobStatus values → ours.
STATUS = {"PENDING": "queued", "RUNNING": "running", "SUCCEEDED": "succeeded", "FAILED": "failed",
          "STOPPED": "stopped"}


def _client(address: str):
    from ray.job_submission import JobSubmissionClient  # optional and heavy: only when a Ray job is touched

    return JobSubmissionClient(address)


def submission_id(job_id: str, attempt: int) -> str:
    return f"{job_id}-a{attempt}"


class RayBackend:
    def submit(self, job_id, attempt, argv, env, spec, paths):
        client = _client(spec.address)
        sid = client.submit_job(
            entrypoint=shlex.join(argv),  # each argument quoted: no value reaches the shell as code
            submission_id=submission_id(job_id, attempt),
            runtime_env={"working_dir": str(ROOT), "excludes": EXCLUDES, "env_vars": env},
            entrypoint_num_cpus=spec.num_cpus,
            entrypoint_num_gpus=spec.num_gpus or None,
            metadata={"n2w_job": job_id, "run": spec.name},
        )
        return Launch(external_id=sid)

    def poll(self, job, paths):
        try:
            status = _client(job.address).get_job_status(job.external_id)
        except ConnectionError as exc:
            return None, f"cannot reach the Ray cluster at {job.address}: {exc}"
        except RuntimeError as exc:  # the head forgot the job (restarted): it will never report again
            if "does not exist" in str(exc) or "not found" in str(exc).lower():
                return "failed", f"the Ray cluster at {job.address} no longer knows this job"
            raise
        value = getattr(status, "value", str(status))
        return STATUS.get(value, "running"), None

    def logs(self, job, paths) -> str:
        return _client(job.address).get_job_logs(job.external_id)

    def stop(self, job, paths) -> None:
        _client(job.address).stop_job(job.external_id)
