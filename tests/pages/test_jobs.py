"""The Fine-tuning jobs page through AppTest: submit a tiny local job, follow it, evaluate it, bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from interp.interpreters.training import READER_DEFAULTS, FinetuneConfig
from interp.jobs import control as jobs
from interp.store.db import Store
from tests.jobs.test_control import make_tiny, stop_all
from tests.pages.store_busy import HOLDER_PID, store_refused

APP = Path(__file__).resolve().parents[2] / "app.py"


@pytest.fixture
def tiny_env(paths, tmp_path: Path):
    """Isolated paths (see conftest) with a tiny model and a dataset under data/datasets."""
    from pages.common import paths as app_paths

    model, data = make_tiny(tmp_path)
    paths.datasets_dir.mkdir(parents=True)
    shutil.copytree(data, paths.datasets_dir / "ds-tiny")
    app_paths.clear()
    yield paths, model
    stop_all(paths)
    app_paths.clear()


def open_page() -> AppTest:
    """Through app.py, so st.navigation knows the pages the Jobs page links to."""
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    at.switch_page("pages/jobs.py")
    return run(at)


def run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, at.exception
    return at


def fill_form(at: AppTest, model: Path, name: str) -> AppTest:
    at.selectbox(key="jobs_preset").set_value("other…")
    run(at)
    at.text_input(key="jobs_model").input(str(model))
    run(at)
    at.text_input(key="jobs_name").input(name)
    at.number_input(key="jobs_steps").set_value(4)
    at.number_input(key=f"jobs_lr_{model}_text").set_value(0.05)
    at.number_input(key="jobs_eval_steps").set_value(2)
    at.number_input(key="jobs_save_steps").set_value(2)
    return at


def submit_button(at: AppTest):
    return next(b for b in at.button if b.label == "Submit")


def test_without_a_dataset_the_page_says_how_to_build_one(paths) -> None:
    from pages.common import paths as app_paths

    app_paths.clear()
    at = open_page()
    assert any("dataset build" in i.value for i in at.info)
    assert any("No jobs yet" in i.value for i in at.info)


def test_submit_a_tiny_local_job_follow_it_and_evaluate_it(tiny_env) -> None:
    paths, model = tiny_env
    from interp.bootstrap import ensure_store

    list(ensure_store(paths))
    at = fill_form(open_page(), model, "tiny-page")
    at.number_input(key="jobs_lora_r").set_value(8)
    submit_button(at).click()
    run(at)
    assert not at.error, [e.value for e in at.error]
    assert any("Submitted" in s.value for s in at.success)
    store = Store(paths.db_path)
    job = store.list_jobs().iloc[0]
    assert job["backend"] == "local" and job["spec"]["finetune"]["max_steps"] == 4
    assert job["spec"]["finetune"]["learning_rate"] == 0.05 and job["spec"]["finetune"]["preset"] == str(model)
    # A new rank keeps the CLI's default alpha (as `--lora-r 8` does), not 2 × rank.
    assert job["spec"]["finetune"]["lora_r"] == 8
    assert job["spec"]["finetune"]["lora_alpha"] == FinetuneConfig(dataset="", out="").lora_alpha

    assert jobs.wait(job["id"], paths, timeout=300, store=store) == "succeeded", jobs.logs(job["id"], paths, store)
    run(at)
    table = at.dataframe[0].value
    assert table.loc[0, "status"] == "succeeded" and table.loc[0, "step"] == "4/4"
    assert at.get("plotly_chart"), "the loss curve is drawn"
    assert "adapter saved to" in at.code[0].value

    # Labelled sets saved from the Compare page are offered beside the built-in held-out sets.
    paths.labelled_dir.mkdir(parents=True, exist_ok=True)
    np.savez(paths.labelled_dir / "mine.npz", images=np.zeros((2, 28, 28), np.uint8), counts=np.zeros((2, 8), np.int64))
    run(at)
    assert "file:mine" in at.selectbox(key=f"jobs_eval_set_{job['id']}").options
    at.number_input(key=f"jobs_eval_n_{job['id']}").set_value(2)
    next(b for b in at.button if b.label == "Evaluate this run").click()
    run(at)
    ev = store.list_jobs(run_id="tiny-page-syn_eval")
    assert len(ev) == 1 and ev.iloc[0]["spec"]["evaluate"] == {"run": "tiny-page", "eval_set": "syn_eval", "n": 2,
                                                                "batch_size": 8, "questions": False}
    assert jobs.wait(ev.iloc[0]["id"], paths, timeout=300, store=store) == "succeeded"
    assert store.get_metrics("tiny-page-syn_eval")["metrics"][0]["n"] == 2


def test_the_form_starts_at_the_cli_defaults(tiny_env) -> None:
    """Page and CLI train with the same defaults: FinetuneConfig's, and `finetune.kind_defaults` for the kind."""
    cli = FinetuneConfig(dataset="", out="")
    at = open_page()
    at.selectbox(key="jobs_preset").set_value("smollm2-135m")
    run(at)
    assert at.number_input(key="jobs_lr_smollm2-135m_text").value == 2e-4
    assert at.number_input(key="jobs_lora_r").value == cli.lora_r
    assert at.number_input(key="jobs_lora_alpha").value == cli.lora_alpha
    assert at.number_input(key="jobs_eval_steps").value == cli.eval_steps
    assert at.number_input(key="jobs_save_steps").value == cli.save_steps
    assert at.selectbox(key="jobs_loss_on").value == cli.loss_on
    at.radio(key="jobs_interpreter").set_value("reader")
    run(at)
    assert at.number_input(key="jobs_lr_smollm2-135m_reader").value == READER_DEFAULTS["learning_rate"]
    assert at.number_input(key="jobs_batch_smollm2-135m_reader").value == READER_DEFAULTS["batch_size"]


def test_bad_run_name_and_unreachable_cluster_are_errors_not_jobs(tiny_env) -> None:
    paths, model = tiny_env
    at = fill_form(open_page(), model, "../../etc")
    submit_button(at).click()
    run(at)
    assert any("run name" in e.value for e in at.error)
    assert len(Store(paths.db_path).list_jobs()) == 0

    at.radio(key="jobs_backend").set_value("ray")
    run(at)
    fill_form(at, model, "tiny-ray")
    at.text_input(key="jobs_address").input("http://127.0.0.1:9")  # nothing listens there
    submit_button(at).click()
    run(at)
    assert any("could not start" in e.value for e in at.error)
    job = Store(paths.db_path).list_jobs().iloc[0]
    assert job["status"] == "failed"


def test_a_busy_store_is_a_message_with_retry_and_the_form_keeps_its_values(tiny_env) -> None:
    paths, model = tiny_env
    at = fill_form(open_page(), model, "tiny-busy")
    with store_refused():
        submit_button(at).click()
        run(at)
        errors = "\n".join(e.value for e in at.error)
        assert f"The store is busy: process {HOLDER_PID} holds" in errors and str(paths.db_path) in errors
        assert at.button(key="store_retry").label == "Retry"
    at.button(key="store_retry").click()
    run(at)
    assert not at.error and any("No jobs yet" in i.value for i in at.info)
    assert at.text_input(key="jobs_name").value == "tiny-busy" and at.number_input(key="jobs_steps").value == 4
    assert len(Store(paths.db_path).list_jobs()) == 0  # nothing half-submitted


def test_a_busy_store_inside_the_jobs_panel_is_a_message_with_retry(tiny_env) -> None:
    """The panel is a fragment (it refreshes itself every 3 s): it has its own guard and Retry button."""
    paths, model = tiny_env
    from interp.jobs.spec import JobSpec
    from interp.store.db import StoreLockedError
    from tests.jobs.test_control import tiny_finetune

    store = Store(paths.db_path)
    spec = JobSpec(kind="finetune", name="tiny-listed", finetune=tiny_finetune(model, paths.datasets_dir / "ds-tiny"))
    store.upsert_job("ft-tiny-listed-1", spec.name, "local", {**spec.to_dict(), "attempt": 1}, "failed")
    at = open_page()
    assert at.dataframe[0].value.loc[0, "job"] == "ft-tiny-listed-1"

    def busy(*args, **kwargs):
        raise StoreLockedError(paths.db_path, 5.0, f"Conflicting lock is held in python (PID {HOLDER_PID})")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(jobs, "resume", busy)  # the store goes busy between the page's first read and the click
        next(b for b in at.button if b.label == "Resume").click()
        run(at)
        assert any(f"The store is busy: process {HOLDER_PID} holds" in e.value for e in at.error)
        assert at.button(key="jobs_store_retry").label == "Retry"
    at.button(key="jobs_store_retry").click()
    run(at)
    assert not any("store is busy" in e.value for e in at.error)  # (the failed job's own message stays)
    assert next(b for b in at.button if b.label == "Resume") and store.get_job("ft-tiny-listed-1").status == "failed"
