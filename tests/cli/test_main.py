"""The CLI: every command has --help, and the commands print what the README promises."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from interp.cli.main import build_parser, main
from interp.encoding.thresholds import ThresholdSet


def _subcommands(parser) -> list[list[str]]:
    """Every command path, e.g. ['target', 'eval']."""
    import argparse

    paths = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                children = _subcommands(sub)
                paths += [[name, *c] for c in children] if children else [[name]]
    return paths


def test_every_command_has_help(capsys: pytest.CaptureFixture) -> None:
    commands = _subcommands(build_parser())
    assert ["target", "train"] in commands and ["target", "eval"] in commands
    for cmd in commands:
        with pytest.raises(SystemExit) as exit_:
            main([*cmd, "--help"])
        assert exit_.value.code == 0
        assert "usage: n2w" in capsys.readouterr().out


def test_target_eval_json_in_a_subprocess() -> None:
    out = subprocess.run([sys.executable, "-m", "interp", "target", "eval", "--json"],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    result = json.loads(out)
    assert set(result) == {"accuracy", "n", "source"}
    assert result["accuracy"] >= 0.98 and result["n"] >= 1000


def test_errors_are_one_line_not_a_traceback(capsys: pytest.CaptureFixture, tmp_path) -> None:
    assert main(["target", "eval", "--checkpoint", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no target checkpoint") and "Traceback" not in err


# --- bad names, configs and files: one `error: …` line, nothing written ------------------------------


def _error(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


@pytest.mark.parametrize("name", ["..", "../x", "a/b", "x\n"])
def test_dataset_build_refuses_a_name_that_is_not_one_folder(capsys, paths, name) -> None:
    err = _error(capsys, ["dataset", "build", "--name", name, "--n-synthetic", "1"])
    assert err.startswith("error: dataset name must be 1-64 letters")
    assert not paths.data_dir.exists()


def test_baseline_probe_refuses_a_run_id_that_leaves_runs(capsys, paths, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("interp.cli.main.os.nice", lambda n: 0)  # not this test process
    data = tmp_path / "ds"
    data.mkdir()
    (data / "train.jsonl").write_text("")
    err = _error(capsys, ["baseline", "probe", "--dataset", str(data), "--run-id", "../../x", "--json"])
    assert err.startswith("error: run id must be 1-64 letters") and "'../../x'" in err
    assert not (tmp_path / "x").exists() and not paths.runs_dir.exists()


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--max-steps", "0"], "max_steps must be -1 (run all epochs) or ≥ 1, got 0"),
        (["--save-steps", "0"], "save_steps must be ≥ 1, got 0"),
        (["--learning-rate", "nan"], "learning_rate must be a finite number, got nan"),
        (["--lora-dropout", "1"], "lora_dropout must be in [0, 1), got 1.0"),
        (["--threads", "0"], "threads must be ≥ 1 (or left out), got 0"),
        (["--preset", "no-such-preset"], "unknown model 'no-such-preset': not a preset"),
    ],
)
def test_finetune_and_jobs_refuse_bad_configs_before_starting(capsys, paths, tmp_path, option, message) -> None:
    err = _error(capsys, ["finetune", "--dataset", "d", "--out", str(tmp_path / "run"), *option])
    assert err.startswith(f"error: {message}")
    assert not (tmp_path / "run").exists()
    err = _error(capsys, ["jobs", "finetune", "--name", "ok", "--dataset", "d", *option])
    assert message in err
    assert not paths.db_path.exists()  # no job recorded, no worker started


def test_jobs_refuse_a_name_with_a_trailing_newline(capsys, paths) -> None:
    err = _error(capsys, ["jobs", "finetune", "--name", "run\n", "--dataset", "d"])
    assert err.startswith("error: run name must be 1-64 letters") and "'run\\n'" in err
    assert not paths.db_path.exists()


def test_a_malformed_thresholds_file_is_one_error_naming_it(capsys, paths, tmp_path) -> None:
    import numpy as np

    np.save(tmp_path / "a.npy", np.zeros((8, 14, 14), np.float32))
    for content, message in [("[[0, 0.1, 0.2, 0.3]]", "a threshold set must be a JSON object"),
                             ('{"thresholds": []}', "missing: name"),
                             ('{"name": "x", "thresholds": [["a", "b", "c", "d"]]}', "numbers")]:
        (tmp_path / "t.json").write_text(content)
        err = _error(capsys, ["encode", "--activations", str(tmp_path / "a.npy"), "--thresholds",
                              str(tmp_path / "t.json")])
        assert err.startswith(f"error: {tmp_path / 't.json'}: ") and message in err


def test_encode_conv2_activations_with_a_conv2_set_and_refuse_a_conv1_set(capsys, paths, tmp_path) -> None:
    import numpy as np

    acts = np.zeros((16, 7, 7), np.float32)
    acts[3, 0, 0] = 5.0
    np.save(tmp_path / "a.npy", acts)
    ThresholdSet("c2", np.tile([0.0, 1.0, 2.0, 3.0], (16, 1)), layer="conv2").save(tmp_path / "c2.json")
    ThresholdSet("c1", np.tile([0.0, 1.0, 2.0, 3.0], (8, 1))).save(tmp_path / "c1.json")
    assert main(["encode", "--activations", str(tmp_path / "a.npy"), "--thresholds", str(tmp_path / "c2.json"),
                 "--encoder", "rle"]) == 0
    assert capsys.readouterr().out == "fz49" * 3 + "fvz48" + "fz49" * 12 + "\n"
    err = _error(capsys, ["encode", "--activations", str(tmp_path / "a.npy"), "--thresholds", str(tmp_path / "c1.json")])
    assert "threshold set 'c1' was made for conv1 (8 filters), but these activations are conv2's [16, 7, 7]" in err
    np.save(tmp_path / "b.npy", np.zeros((16, 14, 14), np.float32))
    err = _error(capsys, ["encode", "--activations", str(tmp_path / "b.npy"), "--thresholds", str(tmp_path / "c2.json")])
    assert "activations must be [8, 14, 14] (conv1) or [16, 7, 7] (conv2), got [16, 14, 14]" in err


def test_thresholds_calibrate_a_conv2_set_into_the_store(capsys, tmp_path, monkeypatch) -> None:
    from interp.settings import ROOT, Paths
    from interp.store.db import Store

    monkeypatch.setenv("N2W_DATA_DIR", str(ROOT / "data"))  # the project's MNIST; the store is this test's own
    monkeypatch.setenv("N2W_DB", str(tmp_path / "interp.duckdb"))
    paths = Paths.from_env()
    shipped = []  # --ship writes the committed asset: here into tmp_path
    monkeypatch.setattr("interp.cli.main.shipped_thresholds_path",
                        lambda assets, layer: shipped.append(layer) or tmp_path / f"{layer}-default.json")

    assert main(["thresholds", "calibrate", "--layer", "conv2", "--name", "deep", "--n-synthetic", "40",
                 "--n-mnist", "40", "--make-default", "--ship"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"written to {tmp_path / 'conv2-default.json'}: setup loads it as the conv2 default into "
                          "a store that has none\nconv2 threshold set 'deep' saved as the conv2 default\n")
    assert len(out.strip().split("\n")) == 3 + 16  # one line per conv2 filter
    assert shipped == ["conv2"]
    assert ThresholdSet.load(tmp_path / "conv2-default.json").layer == "conv2"
    record = Store(paths.db_path).get_threshold_set(layer="conv2")
    assert record.name == "deep" and record.layer == "conv2" and len(record.thresholds) == 16
    assert Store(paths.db_path).get_threshold_set() is None  # conv1's default is a different one
    assert main(["thresholds", "list"]) == 0
    assert "conv2" in capsys.readouterr().out


def test_metrics_refuses_a_truth_that_is_not_a_description(capsys, tmp_path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"prediction": "x", "truth": "y"}) + "\n")
    err = _error(capsys, ["metrics", "--predictions", str(path)])
    assert err.startswith(f"error: {path}:1: the truth 'y' is not a description in L")
