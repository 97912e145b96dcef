"""interp.jsonl: the one JSONL reader and the dataset manifest reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from interp.jsonl import read_jsonl, read_manifest


def test_read_jsonl_skips_blank_lines_and_stops_at_limit(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text('{"i": 0}\n\n{"i": 1}\n{"i": 2}\n', encoding="utf-8")
    assert read_jsonl(path) == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert read_jsonl(path, limit=2) == [{"i": 0}, {"i": 1}]
    assert read_jsonl(path, limit=0) == []


@pytest.mark.parametrize(("bad", "message"), [
    ('{"i": ', "not valid JSON"),
    ('["x"]', "expected a JSON object, got list"),
    ('{"i": -1}', "i must be >= 0"),
])
def test_read_jsonl_names_the_bad_line(tmp_path: Path, bad: str, message: str) -> None:
    def check(row: dict) -> None:
        if row["i"] < 0:
            raise ValueError("i must be >= 0")

    path = tmp_path / "rows.jsonl"
    path.write_text(f'{{"i": 0}}\n\n{bad}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"rows\.jsonl:3: ") as err:
        read_jsonl(path, check=check)
    assert message in str(err.value)


def test_read_manifest(tmp_path: Path) -> None:
    assert read_manifest(tmp_path) == {}
    (tmp_path / "manifest.json").write_text(json.dumps({"hash": "abc", "encoder": "paper"}))
    assert read_manifest(tmp_path) == {"hash": "abc", "encoder": "paper"}
