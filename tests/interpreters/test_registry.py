"""Inference: base + adapter loading, batched greedy descriptions with a stop rule, streaming."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from interp.interpreters.registry import load_interpreter
from interp.interpreters.text import HFInterpreter, cut_at_stop
from tests.conftest import tiny_model, tiny_tokenizer
from tests.fakes import FakeInterpreter


@pytest.fixture
def tiny_lm(tmp_path: Path) -> HFInterpreter:
    from transformers import AutoModelForCausalLM

    tok = tiny_tokenizer(tmp_path / "m")
    tiny_model("mistral", tmp_path / "m", len(tok))
    return HFInterpreter(AutoModelForCausalLM.from_pretrained(tmp_path / "m").eval(), tok, name="tiny")


def test_cut_at_stop() -> None:
    assert cut_at_stop("Image with 1 shape: 1 corner\n### Input: fzz") == "Image with 1 shape: 1 corner"
    assert cut_at_stop(" Image with 2 shapes: 2 corners### Output:") == "Image with 2 shapes: 2 corners"
    assert cut_at_stop("no stop here") == "no stop here"


def test_describe_is_batched_greedy_and_stops(tiny_lm: HFInterpreter) -> None:
    encodings = ["fzzl", "fmmhv", "fzzl"]
    out = tiny_lm.describe(encodings, max_new_tokens=12, batch_size=2)
    assert len(out) == 3
    assert out[0] == out[2]  # greedy and independent of batch position / left padding
    assert all("\n" not in o and "###" not in o for o in out)


def test_stream_matches_generate_and_can_be_stopped(tiny_lm: HFInterpreter) -> None:
    prompt = "### Input: fzzl\n### Question: how many curves?\n### Answer: "
    streamed = "".join(tiny_lm.stream(prompt, max_new_tokens=10))
    whole = tiny_lm._generate([prompt], 10, 0.0, ("###",))[0]
    expected = whole[: whole.find("###")] if "###" in whole else whole

    def clean(text: str) -> str:  # a random byte-level model emits partial UTF-8 that decodes differently
        return text.replace("\ufffd", "").strip()

    assert streamed and clean(streamed) == clean(expected)


def test_stop_criteria_stop_on_strings_and_on_request(tiny_lm: HFInterpreter) -> None:
    from interp.interpreters.stopping import StopOnStrings

    tok = tiny_lm.tokenizer
    prompt = tok(["### Input: fz", "### Input: fz"], return_tensors="pt")["input_ids"]
    new = tok(["Image with\n", "Image with"], return_tensors="pt", padding=True)["input_ids"]
    ids = torch.cat([prompt, new], dim=1)
    event = threading.Event()
    criteria = StopOnStrings(tok, prompt.shape[1], ("\n",), event)
    assert criteria(ids, None).tolist() == [True, False]
    event.set()  # the user pressed stop
    assert criteria(ids, None).tolist() == [True, True]


def test_load_interpreter_reads_adapter_and_its_encoding(tmp_path: Path, tiny_lm: HFInterpreter) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base_dir = tmp_path / "m"
    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(base_dir),
                                LoraConfig(r=2, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.fill_(0.1)
    adapter = tmp_path / "run" / "adapter"
    peft_model.save_pretrained(adapter)
    tset = {"name": "t", "thresholds": [[0.1, 0.2, 0.3, 0.4]] * 8, "notes": ""}
    (adapter / "run_config.json").write_text(json.dumps(
        {"finetune": {"preset": str(base_dir)}, "dataset_manifest": {"encoder": "compact", "threshold_set": tset}}))
    interp = load_interpreter(str(tmp_path / "run"), tmp_path / "models", device="cpu")
    assert interp.encoder == "compact" and interp.thresholds.name == "t"
    ids = torch.tensor([[5, 6, 7, 8]])
    torch.testing.assert_close(interp.model(input_ids=ids).logits, peft_model.eval()(input_ids=ids).logits)
    base = load_interpreter(f"base:{base_dir}", tmp_path / "models", device="cpu")
    assert not torch.allclose(base.model(input_ids=ids).logits, interp.model(input_ids=ids).logits)


def test_missing_adapter_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no adapter"):
        load_interpreter(str(tmp_path), tmp_path, device="cpu")


def test_fake_interpreter() -> None:
    fake = FakeInterpreter(lambda e: "Image with 1 shape: 1 corner")
    assert fake.describe(["a", "b"]) == ["Image with 1 shape: 1 corner"] * 2
    assert "".join(fake.stream("q")).strip() == "Image with 1 shape: 1 corner"


def test_a_saved_probe_loads_through_the_registry(tmp_path: Path) -> None:
    from interp.encoding.encoders import get_encoder
    from interp.encoding.thresholds import ThresholdSet
    from interp.interpreters.probe import ProbeConfig, ProbeInterpreter, ProbeNet, save_probe

    cfg = ProbeConfig(channels=4, hidden=8)
    net = ProbeNet(cfg).eval()
    tset = ThresholdSet(name="own", thresholds=[[0.0, 0.1, 0.2, 0.3]] * 8)
    save_probe(net, cfg, tmp_path / "probe", {"encoder": "rle", "threshold_set": tset.to_dict()})
    loaded = load_interpreter(str(tmp_path / "probe"), tmp_path / "no-models")
    assert isinstance(loaded, ProbeInterpreter) and loaded.encoder == "rle" and loaded.thresholds == tset
    bins = np.random.default_rng(0).integers(0, 5, (3, 8, 14, 14))
    encodings = get_encoder("rle").encode_batch(bins)
    assert loaded.describe(encodings) == ProbeInterpreter(net, cfg, encoder="rle").describe(encodings)
