"""interp.catalog: which shipped probe reads which layer."""

from __future__ import annotations

import json
from pathlib import Path

from interp.catalog import shipped_probe, shipped_probes
from interp.settings import ROOT


def _probe(folder: Path, config: dict) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"")
    (folder / "config.json").write_text(json.dumps({"config": config, "summary": {}}))
    return folder


def test_the_shipped_probe_of_a_layer(tmp_path: Path) -> None:
    deep = _probe(tmp_path / "a-deep", {"layer": "conv2"})  # sorts first, reads conv2
    old = _probe(tmp_path / "b-old", {"channels": 16})  # saved before layers: conv1
    assert shipped_probes(tmp_path) == [deep, old]
    assert shipped_probe(tmp_path) == old and shipped_probe(tmp_path, "conv2") == deep
    assert shipped_probe(tmp_path / "none") is None and shipped_probe(old, "conv2") is None
    assert shipped_probe(ROOT / "assets" / "probes") == ROOT / "assets" / "probes" / "probe-paper-30k"
