"""Run storage: the same calls on a plain path and on an fsspec URL (file://)."""

from __future__ import annotations

from pathlib import Path

import pytest

from interp import storage


@pytest.mark.parametrize("as_url", [False, True])
def test_put_get_read_round_trip(tmp_path: Path, as_url: bool) -> None:
    src = tmp_path / "run"
    (src / "adapter").mkdir(parents=True)
    (src / "adapter" / "weights.bin").write_bytes(b"\x00\x01")
    (src / "status.json").write_text('{"status": "running"}')
    base = f"file://{tmp_path / 'bucket'}" if as_url else str(tmp_path / "bucket")
    remote = storage.join(base, "run")

    assert not storage.exists(remote) and storage.read_text(storage.join(remote, "status.json")) is None
    storage.put(src / "adapter", storage.join(remote, "adapter"))
    storage.put(src / "status.json", storage.join(remote, "status.json"))
    assert storage.read_json(storage.join(remote, "status.json")) == {"status": "running"}
    storage.put(src / "adapter", storage.join(remote, "adapter"))  # again, as a re-saved checkpoint is
    back = storage.get(remote, tmp_path / "home")
    assert (back / "adapter" / "weights.bin").read_bytes() == b"\x00\x01"
    assert not (back / "adapter" / "adapter").exists()  # the second copy replaced, it did not nest
    storage.get(remote, tmp_path / "home")
    assert not (back / "run").exists()

    (src / "status.json").write_text('{"status": "succ')  # caught mid-write
    storage.put(src / "status.json", storage.join(remote, "status.json"))
    assert storage.read_json(storage.join(remote, "status.json")) is None
