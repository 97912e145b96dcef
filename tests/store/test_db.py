"""Tests for interp.store: what one Store writes is read back through a second Store on the same file."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import pytest

from interp.encoding.thresholds import ThresholdSet
from interp.store.db import MIGRATIONS, SCHEMA_VERSION, Annotation, Message, Store, StoreLockedError
from interp.store.thresholds import resolve_threshold_set

THRESHOLDS = [[0.05 * f, 0.5, 1.0 + f, 2.0 + f] for f in range(8)]
TABLES = ("threshold_sets", "annotations", "ratings", "runs", "jobs",
          "predictions", "metrics", "conversations", "messages")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """The writer, on a fresh file (in folders it must create)."""
    return Store(tmp_path / "nested" / "dir" / "interp.duckdb")


@pytest.fixture
def db(store: Store) -> Path:
    """The migrated store file."""
    return store.path


@pytest.fixture
def reader(db: Path) -> Store:
    """A second Store on the same file: what `store` wrote must round-trip to it."""
    return Store(db)


def test_schema_created_with_version_recorded(db: Path) -> None:
    assert db.is_file()
    assert SCHEMA_VERSION == len(MIGRATIONS)
    with duckdb.connect(str(db)) as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        versions = con.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
    assert set(TABLES) | {"schema_version"} <= tables
    assert versions == [(v,) for v in range(1, SCHEMA_VERSION + 1)]


def test_reopening_is_idempotent(db: Path) -> None:
    Store(db).save_threshold_set("a", THRESHOLDS)
    for _ in range(2):
        assert len(Store(db).list_threshold_sets()) == 1
    with duckdb.connect(str(db)) as con:
        assert con.execute("SELECT count(*) FROM schema_version").fetchone()[0] == SCHEMA_VERSION


def test_newer_schema_is_refused(db: Path) -> None:
    with duckdb.connect(str(db)) as con:
        con.execute("INSERT INTO schema_version (version) VALUES (?)", [SCHEMA_VERSION + 1])
    with pytest.raises(RuntimeError, match="newer"):
        Store(db)


def test_no_connection_is_kept_open(db: Path) -> None:
    store = Store(db)
    store.save_threshold_set("a", THRESHOLDS)
    # With `store` alive, another process can still open the file read-write.
    code = "import sys, duckdb; duckdb.connect(sys.argv[1]).close()"
    subprocess.run([sys.executable, "-c", code, str(db)], check=True, timeout=60)


def test_threshold_set_round_trip(store: Store, reader: Store) -> None:
    name = "paper's; DROP TABLE runs"  # values are bound, never formatted into SQL
    saved = store.save_threshold_set(name, THRESHOLDS, notes="from §3.2")
    got = reader.get_threshold_set(name)
    assert got == saved
    assert got.thresholds == THRESHOLDS and got.notes == "from §3.2" and not got.is_default
    assert reader.get_threshold_set("missing") is None
    assert reader.get_threshold_set() is None  # no default yet


def test_threshold_set_overwrite_keeps_created_at(store: Store, reader: Store) -> None:
    first = store.save_threshold_set("a", THRESHOLDS)
    changed = [[v + 1 for v in row] for row in THRESHOLDS]
    second = store.save_threshold_set("a", changed, notes="v2")
    assert second.thresholds == changed and second.notes == "v2"
    assert second.created_at == first.created_at and second.updated_at >= first.updated_at
    assert len(reader.list_threshold_sets()) == 1


def test_default_threshold_set_is_unique(store: Store, reader: Store) -> None:
    store.save_threshold_set("a", THRESHOLDS, make_default=True)
    store.save_threshold_set("b", THRESHOLDS, make_default=True)
    store.save_threshold_set("c", THRESHOLDS)
    assert reader.get_threshold_set().name == "b"
    store.set_default_threshold_set("c")
    df = reader.list_threshold_sets()
    assert df["is_default"].sum() == 1
    assert df.iloc[0]["name"] == "c"  # default first
    assert df.iloc[0]["thresholds"] == THRESHOLDS
    with pytest.raises(KeyError):
        store.set_default_threshold_set("nope")
    assert reader.get_threshold_set().name == "c"


@pytest.mark.parametrize(("bad", "message"), [
    (THRESHOLDS[:7], r"shape \[8, 4\]"),
    ([row[:3] for row in THRESHOLDS], r"shape \[8, 4\]"),
    ([*THRESHOLDS[:7], [0.0, 1.0, float("nan"), 2.0]], "filter 7: thresholds must be finite"),
    ([*THRESHOLDS[:7], [0.0, 1.0, "2", 3.0]], "filter 7: thresholds must be numbers"),
    ([*THRESHOLDS[:7], [0.0, 1.0, True, 3.0]], "filter 7: thresholds must be numbers"),
    ([*THRESHOLDS[:7], [0.0, 2.0, 1.0, 3.0]], "filter 7: thresholds must be non-decreasing"),
    ([[-0.1, 0.5, 1.0, 2.0], *THRESHOLDS[1:]], "filter 0: t1 must be >= 0"),
])
def test_store_validates_thresholds_like_threshold_set(store: Store, reader: Store, bad: list, message: str) -> None:
    """The store checks rows with `validate_thresholds`, the rules a ThresholdSet obeys."""
    with pytest.raises(ValueError, match=message):
        store.save_threshold_set("bad", bad)
    assert len(reader.list_threshold_sets()) == 0


def test_store_accepts_numpy_rows_and_threshold_set_tuples(store: Store) -> None:
    arr = np.asarray(THRESHOLDS, dtype=np.float32)
    assert np.allclose(store.save_threshold_set("np", arr).thresholds, arr)
    tset = ThresholdSet("tuples", THRESHOLDS)
    assert store.save_threshold_set(tset.name, tset.thresholds).thresholds == THRESHOLDS


def test_resolve_threshold_set_from_file_name_or_default(store: Store, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no threshold set"):
        resolve_threshold_set(None, store.path)
    store.save_threshold_set("paper", THRESHOLDS, notes="n", make_default=True)
    store.save_threshold_set("other", [[0.0, 0.1, 0.2, 0.3]] * 8)
    assert resolve_threshold_set(None, store.path) == ThresholdSet("paper", THRESHOLDS, notes="n")
    assert resolve_threshold_set("other", store.path).name == "other"
    ThresholdSet("from-file", THRESHOLDS).save(tmp_path / "t.json")
    assert resolve_threshold_set(str(tmp_path / "t.json"), store.path).name == "from-file"
    with pytest.raises(ValueError, match="no threshold set missing"):
        resolve_threshold_set("missing", store.path)


def test_annotation_edit_updates_instead_of_duplicating(store: Store, reader: Store) -> None:
    first = store.save_annotation("ann", "mnist", 5, {"circle": 1}, "one circle")
    again = store.save_annotation("ann", "mnist", 5, {"circle": 1, "line": 2}, "edited")
    other = store.save_annotation("bob", "mnist", 5, {"circle": 0}, "none")
    assert again == first and other != first
    got = reader.get_annotation("ann", "mnist", 5)
    assert isinstance(got, Annotation)
    assert got.counts == {"circle": 1, "line": 2} and got.description == "edited"
    assert got.updated_at >= got.created_at
    assert len(reader.list_annotations()) == 2
    df = reader.list_annotations(annotator="ann")
    assert len(df) == 1 and df.iloc[0]["counts"] == {"circle": 1, "line": 2}
    assert len(reader.list_annotations(image_source="drawing")) == 0
    assert store.delete_annotation(first) is True
    assert reader.get_annotation("ann", "mnist", 5) is None
    with pytest.raises(ValueError):
        store.save_annotation("ann", "mnist", 6, {"circle": -1}, "x")


def _label(who: str, index: int, n: int, text: str = "") -> dict:
    return {"annotator": who, "image_source": "mnist", "image_index": index, "counts": {"circle": n},
            "description": text or f"{n} circles"}


def test_save_annotations_writes_all_rows_or_none(store: Store, reader: Store) -> None:
    kept = store.save_annotation("ann", "mnist", 1, {"circle": 9}, "before")
    rows = [_label("ann", i, i) for i in range(600)]
    with pytest.raises(duckdb.Error):  # row 500 does not fit the INTEGER column: the database refuses it
        store.save_annotations([*rows[:500], _label("ann", 2**40, 1), *rows[501:]])
    with pytest.raises(ValueError, match="non-negative"):  # checked before anything is written
        store.save_annotations([*rows[:500], _label("ann", 500, -1), *rows[501:]])
    with pytest.raises(ValueError, match="annotator"):
        store.save_annotations([*rows[:500], _label(" ", 500, 1)])
    assert len(reader.list_annotations()) == 1 and reader.get_annotation("ann", "mnist", 1).description == "before"

    assert store.save_annotations([*rows, _label("ann", 3, 7, "the last one wins"), _label("bob", 3, 1)]) == 601
    assert len(reader.list_annotations()) == 601
    edited = reader.get_annotation("ann", "mnist", 1)
    assert edited.id == kept and edited.counts == {"circle": 1} and edited.description == "1 circles"
    assert reader.get_annotation("ann", "mnist", 3).description == "the last one wins"
    assert store.save_annotations([]) == 0


def test_ratings_round_trip(store: Store, reader: Store) -> None:
    store.save_rating("r", "run1", "mnist", 3, "2 circles", "partial",
                      per_shape={"circle": "correct"}, comment="close")
    store.save_rating("r", "run2", "mnist", 3, "1 line", "wrong")
    df = reader.list_ratings("run1")
    assert len(df) == 1
    row = df.iloc[0]
    assert row["verdict"] == "partial" and row["per_shape"] == {"circle": "correct"}
    assert row["comment"] == "close"
    assert reader.list_ratings().iloc[1]["per_shape"] is None
    with pytest.raises(ValueError, match="verdict"):
        store.save_rating("r", "run1", "mnist", 3, "x", "meh")


def test_runs_round_trip(store: Store, reader: Store) -> None:
    store.upsert_run("r1", "finetune", "smollm2", {"lr": 1e-4}, "queued", "runs/r1")
    store.upsert_run("r2", "evaluate", None, {}, "done", None)
    store.update_run_status("r1", "running")
    run = reader.get_run("r1")
    assert run.status == "running" and run.config == {"lr": 1e-4} and run.path == "runs/r1"
    assert run.updated_at >= run.created_at
    assert reader.list_runs(kind="evaluate")["id"].tolist() == ["r2"]
    assert len(reader.list_runs()) == 2
    with pytest.raises(KeyError):
        store.update_run_status("nope", "done")
    with pytest.raises(ValueError, match="kind"):
        store.upsert_run("r3", "train", None, {}, "queued", None)


def test_jobs_round_trip(store: Store, reader: Store) -> None:
    store.upsert_job("j1", "r1", "local", {"cmd": ["python"]}, "submitted")
    finished = datetime(2026, 1, 2, 3, 4, 5)
    store.update_job("j1", status="succeeded", pid=4242, finished_at=finished, message="ok")
    job = reader.get_job("j1")
    assert job.status == "succeeded" and job.pid == 4242 and job.finished_at == finished
    assert job.spec == {"cmd": ["python"]} and job.message == "ok" and job.backend == "local"
    assert reader.list_jobs(status="succeeded")["id"].tolist() == ["j1"]
    assert len(reader.list_jobs(run_id="other")) == 0
    with pytest.raises(ValueError):
        store.update_job("j1", colour="red")
    with pytest.raises(KeyError):
        store.update_job("nope", status="x")
    assert reader.get_job("nope") is None


def test_predictions_and_metrics_round_trip(store: Store, reader: Store) -> None:
    rows = [{"sample_index": i, "prompt_encoding": "f a", "prediction": f"{i} circle",
             "truth": "1 circle", "parsed": {"circle": i}} for i in range(3)]
    assert store.save_predictions("r1", "test", rows) == 3
    store.save_predictions("r1", "val", [{"sample_index": 0, "prediction": "x"}])
    store.save_predictions("r1", "test", rows[:2])  # replaces, does not append
    df = reader.get_predictions("r1", "test")
    assert df["sample_index"].tolist() == [0, 1]
    assert df.iloc[1]["parsed"] == {"circle": 1} and df.iloc[1]["truth"] == "1 circle"
    assert len(reader.get_predictions("r1")) == 3
    assert reader.get_predictions("r1", "val").iloc[0]["parsed"] is None
    assert store.save_predictions("r2", "test", []) == 0

    store.save_metrics("r1", "test", {"bleu": 10.0})
    store.save_metrics("r1", "test", {"bleu": 12.5})
    store.save_metrics("r2", "test", {"bleu": 1.0})
    m = reader.get_metrics("r1")
    assert len(m) == 1 and m.iloc[0]["metrics"] == {"bleu": 12.5}
    assert len(reader.get_metrics()) == 2


def test_conversations_round_trip(store: Store, reader: Store) -> None:
    image = {"source": "drawing", "index": None, "pixels": list(range(256)) * 3 + [0] * 16}
    cid = store.create_conversation("my 7", image=image, encoding="f...", threshold_set="paper",
                                    model="smollm2")
    assert store.add_message(cid, "user", "what do you see?") == 0
    assert store.add_message(cid, "assistant", "1 line") == 1
    conv = reader.get_conversation(cid)
    assert conv.image == image and conv.title == "my 7" and conv.model == "smollm2"
    msgs = reader.get_messages(cid)
    assert [m.content for m in msgs] == ["what do you see?", "1 line"]
    assert isinstance(msgs[0], Message) and msgs[1].role == "assistant"
    other = store.create_conversation("empty")
    df = reader.list_conversations()
    assert df["id"].tolist() == [other, cid] and df["n_messages"].tolist() == [0, 2]
    with pytest.raises(ValueError, match="role"):
        store.add_message(cid, "robot", "x")
    with pytest.raises(KeyError):
        store.add_message(999, "user", "x")


HOLD = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("held", flush=True)
time.sleep(float(sys.argv[2]))
open(sys.argv[3], "w").close()  # marks the release
con.close()
"""


def test_waits_for_another_process_then_succeeds(db: Path, tmp_path: Path) -> None:
    released = tmp_path / "released"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(db), "1.0", str(released)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreLockedError, match="another process"):
            Store(db, lock_timeout=0.2).list_runs()
        assert len(Store(db, lock_timeout=30).list_runs()) == 0
        assert released.exists()  # the call waited for the holder to let go
    finally:
        holder.wait(timeout=30)
    assert holder.returncode == 0


# --- threshold sets carry their layer -------------------------------------------------------------

CONV2 = [[0.0, 0.1, 0.2 + 0.01 * f, 0.3 + 0.01 * f] for f in range(16)]


def test_a_conv2_set_is_stored_with_its_layer_and_its_own_default(store: Store, reader: Store) -> None:
    from interp.store.thresholds import to_threshold_set

    store.save_threshold_set("c1", THRESHOLDS, make_default=True)
    record = store.save_threshold_set("c2", CONV2, notes="n", make_default=True, layer="conv2")
    assert record.layer == "conv2" and record.thresholds == CONV2 and record.is_default
    assert reader.get_threshold_set().name == "c1"  # conv1's default is untouched
    assert reader.get_threshold_set(layer="conv2").name == "c2"
    assert reader.get_threshold_set("c1").layer == "conv1"
    assert to_threshold_set(reader.get_threshold_set("c2")) == ThresholdSet("c2", CONV2, notes="n", layer="conv2")
    assert reader.list_threshold_sets(layer="conv2")["name"].tolist() == ["c2"]
    assert reader.list_threshold_sets()["layer"].tolist() == ["conv1", "conv2"]
    assert resolve_threshold_set(None, store.path, layer="conv2").layer == "conv2"
    assert resolve_threshold_set("c2", store.path).layer == "conv2"
    store.save_threshold_set("c2b", CONV2, layer="conv2")
    store.set_default_threshold_set("c2b")
    assert reader.get_threshold_set(layer="conv2").name == "c2b" and reader.get_threshold_set().name == "c1"


def test_the_store_checks_a_set_against_its_layer(store: Store, reader: Store) -> None:
    with pytest.raises(ValueError, match=r"shape \[16, 4\] \(one row t1..t4 per conv2 filter\), got \[8, 4\]"):
        store.save_threshold_set("bad", THRESHOLDS, layer="conv2")
    store.save_threshold_set("taken", THRESHOLDS)
    with pytest.raises(ValueError, match="the name 'taken' is taken by a conv1 threshold set"):
        store.save_threshold_set("taken", CONV2, layer="conv2")
    assert reader.get_threshold_set("taken").thresholds == THRESHOLDS
    with pytest.raises(ValueError, match=r"no threshold set \(default for conv2\)"):
        resolve_threshold_set(None, store.path, layer="conv2")


def test_a_stored_conv1_set_is_refused_for_conv2_activations(store: Store) -> None:
    from interp.encoding.encoders import bin_activations

    store.save_threshold_set("default", THRESHOLDS, make_default=True)
    tset = resolve_threshold_set(None, store.path)
    assert bin_activations(np.zeros((8, 14, 14)), tset).shape == (8, 14, 14)
    with pytest.raises(ValueError, match=r"threshold set 'default' was made for conv1 \(8 filters\), "
                                         r"but these activations are conv2's \[16, 7, 7\]"):
        bin_activations(np.zeros((16, 7, 7)), tset)


def test_a_version_2_store_migrates_its_sets_to_conv1(tmp_path: Path) -> None:
    """A store written before layers existed: its sets become conv1 sets, its default stays the default."""
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, "
                    "applied_at TIMESTAMP NOT NULL DEFAULT now())")
        for version, sql in enumerate(MIGRATIONS[:2], start=1):
            con.execute(sql)
            con.execute("INSERT INTO schema_version (version) VALUES (?)", [version])
        con.execute("INSERT INTO threshold_sets (name, thresholds, notes, is_default) VALUES ('old', ?, '', true)",
                    [json.dumps(THRESHOLDS)])
    record = Store(path).get_threshold_set()
    assert record is not None and record.name == "old" and record.layer == "conv1" and record.thresholds == THRESHOLDS
    assert resolve_threshold_set(None, path) == ThresholdSet("old", THRESHOLDS)
