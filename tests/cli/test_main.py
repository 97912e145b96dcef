"""The CLI: every command has --help, and the commands print what the README promises."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from interp.cli.main import build_parser, main


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
