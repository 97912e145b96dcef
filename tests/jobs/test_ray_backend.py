"""The ray backend against a real Ray head started here on 127.0.0.1 (`ray start --head --num-cpus 1`)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from interp import storage
from interp.jobs import control as jobs
from interp.jobs.spec import TERMINAL, JobSpec
from interp.store.db import Store
from tests.jobs.test_control import make_tiny, tiny_finetune

pytest.importorskip("ray.job_submission")
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """A one-CPU Ray head with its job server; `python` on its PATH is this venv's (as on a GPU box)."""
    ray = shutil.which("ray", path=str(BIN))
    port, dash = _free_port(), _free_port()
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "RAY_USAGE_STATS_ENABLED": "0"}
    temp = tmp_path_factory.mktemp("ray")
    subprocess.run([ray, "start", "--head", "--num-cpus", "1", "--port", str(port), "--node-ip-address",
                    "127.0.0.1", "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash),
                    "--include-dashboard", "true", "--temp-dir", str(temp), "--disable-usage-stats"],
                   check=True, env=env, capture_output=True, timeout=180)
    address = f"http://127.0.0.1:{dash}"
    from ray.job_submission import JobSubmissionClient

    deadline = time.time() + 60
    while True:  # the job server answers a little after `ray start` returns
        try:
            JobSubmissionClient(address).list_jobs()
            break
        except Exception:
            if time.time() > deadline:
                raise
            time.sleep(1)
    yield address
    subprocess.run([ray, "stop", "--force"], env=env, capture_output=True, timeout=120)


def test_ray_job_runs_syncs_to_storage_and_registers_its_run(ray_head, tmp_path, paths) -> None:
    model, data = make_tiny(tmp_path)
    store = Store(paths.db_path)
    bucket = f"file://{tmp_path / 'bucket'}"
    spec = JobSpec(kind="finetune", name="tiny-ray", finetune=tiny_finetune(model, data), backend="ray",
                   address=ray_head, storage=bucket, remote_data_dir=str(paths.data_dir))
    job_id = jobs.submit(spec, paths, store)
    job = store.get_job(job_id)
    assert job.external_id == f"{job_id}-a1" and job.address == ray_head and job.status == "queued"

    seen = []
    deadline = time.time() + 420
    while time.time() < deadline:
        status = jobs.refresh(job_id, paths, store)
        if not seen or seen[-1] != status:
            seen.append(status)
        if status in TERMINAL:
            break
        time.sleep(1)
    assert seen[-1] == "succeeded", jobs.logs(job_id, paths, store)
    assert "running" in seen and seen.index("running") < len(seen) - 1

    assert "adapter saved to" in jobs.logs(job_id, paths, store)
    remote = f"{bucket}/tiny-ray"
    assert storage.exists(f"{remote}/adapter/adapter_model.safetensors")
    assert storage.read_json(f"{remote}/status.json")["status"] == "succeeded"
    view = jobs.view(job_id, paths, store)
    assert view.step == 6 and view.last("eval_loss") is not None  # metrics read through fsspec
    run = store.get_run("tiny-ray")
    assert run.status == "succeeded" and Path(run.path) == paths.runs_dir / "tiny-ray"
    assert (paths.runs_dir / "tiny-ray" / "adapter" / "adapter_model.safetensors").exists()  # brought home


def test_ray_job_can_be_stopped(ray_head, tmp_path, paths) -> None:
    model, data = make_tiny(tmp_path)
    store = Store(paths.db_path)
    spec = JobSpec(kind="finetune", name="tiny-ray-stop", finetune=tiny_finetune(model, data, max_steps=100000),
                   backend="ray", address=ray_head, remote_data_dir=str(paths.data_dir))
    job_id = jobs.submit(spec, paths, store)
    deadline = time.time() + 180
    while jobs.refresh(job_id, paths, store) != "running" and time.time() < deadline:
        time.sleep(1)
    jobs.stop(job_id, paths, store)
    assert store.get_job(job_id).status == "stopped"
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(ray_head)
    deadline = time.time() + 60
    while str(client.get_job_status(f"{job_id}-a1").value) != "STOPPED" and time.time() < deadline:
        time.sleep(1)
    assert client.get_job_status(f"{job_id}-a1").value == "STOPPED"


def test_unreachable_cluster_keeps_the_job_and_says_why(tmp_path, paths) -> None:
    store = Store(paths.db_path)
    spec = JobSpec(kind="finetune", name="nowhere", finetune=tiny_finetune(*make_tiny(tmp_path)), backend="ray",
                   address=f"http://127.0.0.1:{_free_port()}")
    with pytest.raises(ValueError, match="could not start"):
        jobs.submit(spec, paths, store)
    job = store.list_jobs().iloc[0]
    assert job["status"] == "failed" and "could not start" in job["message"]
    store.update_job(job["id"], status="running", external_id="gone-a1")  # as if the head went away later
    assert jobs.refresh(job["id"], paths, store) == "running"
    assert "cannot reach" in store.get_job(job["id"]).message
    with pytest.raises(ValueError, match="could not stop"):
        jobs.stop(job["id"], paths, store)
    assert store.get_job(job["id"]).status == "running"
