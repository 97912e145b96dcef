"""Labelled sets people bring (.npz, PNG folder + labels.csv): loading, one error listing every problem,
and evaluation end to end with a fake interpreter into a tmp store."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from interp.cli.main import main
from interp.data.images import prepare_upload
from interp.encoding.thresholds import ThresholdSet
from interp.evaluation.evaluate import eval_images, evaluate, load_eval_set
from interp.evaluation.labelled_sets import (
    LabelledSetError,
    description_problem,
    labelled_set_name,
    list_labelled_sets,
    load_labelled_set,
    resolve_labelled_set,
    save_labelled_upload,
)
from interp.language import SHAPES, format_description
from interp.settings import ROOT
from interp.store.db import Store
from tests.fakes import FakeInterpreter

COUNTS = np.array([[0, 0, 1, 0, 0, 1, 0, 0],   # 1 vertical, 1 ellipse
                   [0, 0, 0, 0, 0, 0, 1, 0],   # 1 corner
                   [2, 0, 0, 0, 0, 0, 0, 1]])  # 2 diagonals, 1 crossing
TEXTS = [format_description(dict(zip(SHAPES, row, strict=True))) for row in COUNTS.tolist()]


def images(n: int = 3) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)


def npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def png(image: np.ndarray, mode: str = "L") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).convert(mode).save(buf, format="PNG")
    return buf.getvalue()


def problems(path: Path) -> str:
    with pytest.raises(LabelledSetError) as err:
        load_labelled_set(path)
    message = str(err.value)
    assert message.startswith(f"{path} is not a usable labelled set")
    return message


def fake(answer=lambda e: "Image with 0 shapes") -> FakeInterpreter:
    return FakeInterpreter(answer, name="fake", encoder="paper",
                           thresholds=ThresholdSet.load(ROOT / "assets" / "thresholds" / "default.json"))


# --- the formats ---------------------------------------------------------------------------------------


def test_npz_with_counts(tmp_path: Path) -> None:
    data = load_labelled_set(npz(tmp_path / "mine.npz", images=images(), counts=COUNTS))
    assert np.array_equal(data.images, images()) and np.array_equal(data.counts, COUNTS)
    assert data.counts.dtype == np.int64 and data.index.tolist() == [0, 1, 2] and data.source == ["file:mine"] * 3


def test_npz_with_descriptions(tmp_path: Path) -> None:
    data = load_labelled_set(npz(tmp_path / "texts.npz", images=images(), descriptions=np.array(TEXTS)))
    assert np.array_equal(data.counts, COUNTS)


def test_png_folder_with_labels_csv(tmp_path: Path) -> None:
    folder = tmp_path / "drawn"
    folder.mkdir()
    small = images(1)[0]
    (folder / "a.png").write_bytes(png(small))  # 28×28 grey: pixel for pixel
    big = np.full((90, 60), 255, np.uint8)
    big[20:70, 28:34] = 0  # a black vertical bar on white paper, prepared like an upload
    (folder / "sub").mkdir()
    (folder / "sub" / "b.png").write_bytes(png(big, "RGB"))
    (folder / "labels.csv").write_text(f'file,description\na.png,"{TEXTS[1]}"\nsub/b.png,Image with 1 shape: 1 vertical\n')
    data = load_labelled_set(folder)
    assert np.array_equal(data.images[0], small)
    assert np.array_equal(data.images[1], prepare_upload((folder / "sub" / "b.png").read_bytes())[1])
    assert data.counts[:, SHAPES.index("corner")].tolist() == [1, 0]
    assert data.counts[:, SHAPES.index("vertical")].tolist() == [0, 1]
    assert labelled_set_name(folder) == "file:drawn" and data.source == ["file:drawn"] * 2


# --- bad input: one error naming the file and each problem ---------------------------------------------


@pytest.mark.parametrize(("arrays", "expected"), [
    ({"images": images().astype(np.float32), "counts": COUNTS}, "images must be uint8 [n, 28, 28], got float32"),
    ({"images": np.zeros((3, 32, 32), np.uint8), "counts": COUNTS}, "got uint8 [3, 32, 32]"),
    ({"counts": COUNTS}, "no 'images' array (the file holds ['counts'])"),
    ({"images": images(), "counts": COUNTS[:, :7]}, "add a zero 'crossing' column"),
    ({"images": images(), "counts": COUNTS.astype(float)}, "counts must be integers [n, 8]"),
    ({"images": images(), "counts": COUNTS * [[1, 1, -1, 1, 1, 1, 1, 1]]}, "row 0: negative count -1 for 'vertical'"),
    ({"images": images(), "counts": COUNTS[:2]}, "3 images but 2 rows of labels"),
    ({"images": images()}, "give exactly one of 'counts'"),
    ({"images": images(), "counts": COUNTS, "descriptions": np.array(TEXTS)}, "give exactly one of 'counts'"),
    ({"images": images(), "descriptions": np.array([TEXTS[0], "Image with 1 shape: 1 triangle", TEXTS[2]])},
     "row 1: unknown shape 'triangle'"),
    ({"images": images(), "descriptions": np.array([TEXTS[0], TEXTS[1], "a corner, I think"])},
     "row 2: 'a corner, I think' is not a description in L"),
    ({"images": images(), "descriptions": np.array(["Image with 3 shapes: 1 corner"] * 3)},
     "states 3 shapes but its counts add up to 1"),
    ({"images": images(), "descriptions": np.array(TEXTS, dtype=object)}, "'descriptions' is stored as Python objects"),
    ({"images": images(0), "counts": COUNTS[:0]}, "no images"),
])
def test_bad_npz_names_the_problem(tmp_path: Path, arrays: dict, expected: str) -> None:
    assert expected in problems(npz(tmp_path / "bad.npz", **arrays))


def test_not_an_npz(tmp_path: Path) -> None:
    (tmp_path / "notes.npz").write_text("hello")
    assert "not a readable .npz file" in problems(tmp_path / "notes.npz")
    np.save(tmp_path / "one.npy", images())
    assert "a single .npy array" in problems(tmp_path / "one.npy")
    assert "no such file or folder" in problems(tmp_path / "missing.npz")


def test_every_problem_listed_up_to_twenty(tmp_path: Path) -> None:
    counts = np.full((25, 8), -1)
    counts[:, 1:] = 0
    message = problems(npz(tmp_path / "neg.npz", images=images(25), counts=counts))
    lines = message.splitlines()
    assert "(25 problems)" in lines[0] and len(lines) == 1 + 20 + 1
    assert lines[1] == "  row 0: negative count -1 for 'diagonal'" and lines[-1] == "  and 5 more"


def test_bad_folder_rows(tmp_path: Path) -> None:
    folder = tmp_path / "rows"
    folder.mkdir()
    (folder / "ok.png").write_bytes(png(images(1)[0]))
    (folder / "text.png").write_text("not an image")
    (tmp_path / "secret.png").write_bytes(png(images(1)[0]))
    (folder / "labels.csv").write_text("file,description\n"
                                       f"ok.png,{TEXTS[1]}\n"
                                       f",{TEXTS[1]}\n"
                                       f"nope.png,{TEXTS[1]}\n"
                                       f"../secret.png,{TEXTS[1]}\n"
                                       f"text.png,{TEXTS[1]}\n"
                                       "ok.png,Image with 1 shape: 1 squiggle\n")
    message = problems(folder)
    assert "(5 problems)" in message
    assert "labels.csv line 3: no file named" in message
    assert "labels.csv line 4: file 'nope.png' not found" in message
    assert "labels.csv line 5: '../secret.png' is outside the folder" in message
    assert "labels.csv line 6: text.png: This file is not an image" in message
    assert "labels.csv line 7: unknown shape 'squiggle'" in message


def test_folder_without_labels_or_header(tmp_path: Path) -> None:
    assert "has no labels.csv" in problems(tmp_path)
    (tmp_path / "labels.csv").write_text("image,label\na.png,x\n")
    assert "needs the header 'file,description'" in problems(tmp_path)


def test_description_problem() -> None:
    assert description_problem(TEXTS[0]) is None and description_problem("Image with 0 shapes") is None
    assert description_problem("") == "empty description"
    assert "not a description in L" in description_problem("### Output: " + TEXTS[0])
    assert "not a description in L" in description_problem(TEXTS[0] + " zzzzhhh")


# --- names, the labelled folder, uploads ---------------------------------------------------------------


def test_names_and_the_labelled_folder(tmp_path: Path) -> None:
    labelled = tmp_path / "labelled"
    labelled.mkdir()
    npz(labelled / "one.npz", images=images(), counts=COUNTS)
    (labelled / "two").mkdir()
    (labelled / "two" / "labels.csv").write_text("file,description\n")
    (labelled / "loose").mkdir()
    assert list_labelled_sets(labelled) == ["file:one", "file:two"]
    assert resolve_labelled_set("file:one", labelled) == labelled / "one.npz"
    assert resolve_labelled_set("file:two", labelled) == labelled / "two"
    assert resolve_labelled_set("file:loose", labelled) is None
    assert resolve_labelled_set(str(labelled / "one.npz"), labelled) == labelled / "one.npz"
    with pytest.raises(ValueError, match="labelled set name"):
        resolve_labelled_set("file:../one", labelled)
    assert labelled_set_name("/x/y/one.npz") == "file:one" and labelled_set_name("file:one") == "file:one"


def test_upload_saved_only_when_valid(tmp_path: Path) -> None:
    labelled = tmp_path / "labelled"
    good = npz(tmp_path / "my set.npz", images=images(), descriptions=np.array(TEXTS)).read_bytes()
    assert save_labelled_upload(good, "my set.npz", labelled) == ("file:my-set", 3)
    assert np.array_equal(load_labelled_set(labelled / "my-set.npz").counts, COUNTS)
    bad = npz(tmp_path / "bad.npz", images=images(), counts=-COUNTS).read_bytes()
    with pytest.raises(LabelledSetError, match="bad.npz is not a usable labelled set"):
        save_labelled_upload(bad, "bad.npz", labelled)
    assert sorted(p.name for p in labelled.iterdir()) == ["my-set.npz"]  # nothing else, no temporary file


# --- evaluation: the eval set, a run in a tmp store, the images again from the run's config -------------


def test_evaluate_a_labelled_set_end_to_end(tmp_path: Path, paths, target_model) -> None:
    path = npz(tmp_path / "mine.npz", images=images(), counts=COUNTS)
    truth = fake()
    es = load_eval_set(str(path), truth, paths, n=2, target=target_model)
    assert es.name == "file:mine" and len(es.rows) == 2 and es.config()["path"] == str(path.resolve())
    assert [r["description"] for r in es.rows] == TEXTS[:2] and es.rows[0]["encoding"].startswith("f")
    answers = {r["encoding"]: r["description"] for r in es.rows}
    store = Store(paths.db_path)
    metrics = evaluate(fake(answers.get), es.rows, "fake-mine", store, progress=False, eval_set=es.name,
                       config=es.config())
    assert metrics["accuracy"] == 1.0 and metrics["n"] == 2
    config = store.get_run("fake-mine").config
    assert config["eval_sets"]["file:mine"]["path"] == str(path.resolve())
    assert np.array_equal(eval_images("file:mine", config, [1, 0]), images()[[1, 0]])
    path.unlink()
    with pytest.raises(ValueError, match="no such file"):
        eval_images("file:mine", config, [0])


def test_file_name_resolves_in_the_data_dir(paths, target_model) -> None:
    paths.labelled_dir.mkdir(parents=True)
    npz(paths.labelled_dir / "drawn.npz", images=images(), descriptions=np.array(TEXTS))
    es = load_eval_set("file:drawn", fake(), paths, target=target_model)
    assert es.name == "file:drawn" and len(es.rows) == 3
    with pytest.raises(ValueError, match="unknown eval set 'file:nothing'"):
        load_eval_set("file:nothing", fake(), paths, target=target_model)


def test_cli_bad_set_lists_problems_and_stores_nothing(tmp_path: Path, paths, monkeypatch, capsys) -> None:
    def never(spec, models_dir):
        raise AssertionError("a bad set must fail before the interpreter is loaded")

    monkeypatch.setattr("interp.evaluation.evaluate.load_interpreter", never)
    bad = npz(tmp_path / "bad.npz", images=images().astype(np.int32),
              descriptions=np.array([TEXTS[0], "Image with 1 shape: 1 blob", "two corners"]))
    assert main(["evaluate", "--run", "fake", "--set", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad} is not a usable labelled set (3 problems):")
    assert "images must be uint8" in err and "row 1: unknown shape 'blob'" in err and "row 2: 'two corners'" in err
    assert Store(paths.db_path).list_runs().empty
    monkeypatch.setattr("interp.evaluation.evaluate.load_interpreter", lambda spec, models_dir: fake())
    good = npz(tmp_path / "good.npz", images=images(), counts=COUNTS)
    assert main(["evaluate", "--run", "fake", "--set", str(good), "--n", "2"]) == 0
    assert "run 'fake' on file:good:" in capsys.readouterr().out
    assert Store(paths.db_path).get_metrics("fake")["eval_set"].tolist() == ["file:good"]


def test_baselines_check_the_set_before_they_fit_or_train(tmp_path: Path, paths) -> None:
    from interp.evaluation.baselines import run_majority, run_probe
    from interp.interpreters.probe import ProbeConfig

    bad = npz(tmp_path / "bad.npz", images=images(), counts=-COUNTS)
    for run in (lambda: run_majority(paths, "no-such-dataset", eval_set=str(bad)),
                lambda: run_probe(paths, "no-such-dataset", ProbeConfig(), eval_set=str(bad))):
        with pytest.raises(LabelledSetError, match="negative count"):
            run()
