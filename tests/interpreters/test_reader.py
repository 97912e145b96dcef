"""The activation reader: connector shapes, prompt splicing, and the real training path on tiny Mistral / Mixtral."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from interp.encoding.encoders import get_encoder
from interp.interpreters.finetune import finetune
from interp.interpreters.prompt import build_prompt, build_question
from interp.interpreters.questions import make_question
from interp.interpreters.reader import (
    READER_TASK,
    Connector,
    ReaderConfig,
    ReaderInterpreter,
    one_hot_bins,
    prefix_token_ids,
    shape_name_ids,
    split_prompt,
)
from interp.interpreters.reader_training import ReaderCollator, build_examples, conversation, tokenize_conversation
from interp.interpreters.training import FinetuneConfig
from interp.language import SHAPES, counts_from_vector, format_description
from tests.conftest import tiny_model, tiny_setup, tiny_tokenizer


def _bins(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 5, size=(n, 8, 14, 14)).astype(np.int8)


def test_one_hot_bins_is_filter_major() -> None:
    bins = torch.zeros(1, 8, 14, 14, dtype=torch.long)
    bins[0, 3, 2, 5] = 4
    oh = one_hot_bins(bins)
    assert oh.shape == (1, 40, 14, 14)
    assert oh[0, 3 * 5 + 4, 2, 5] == 1 and oh[0, 3 * 5 + 0, 2, 5] == 0
    assert oh.sum() == 8 * 14 * 14  # one level per cell and filter
    with pytest.raises(ValueError, match=r"\[b, 8, 14, 14\]"):
        one_hot_bins(torch.zeros(1, 8, 7, 7))


@pytest.mark.parametrize(("summary", "extra", "heads"), [("shapes+groups", len(SHAPES) + 3, len(SHAPES) + 3),
                                                          ("digits", len(SHAPES), len(SHAPES)),
                                                          ("shapes", len(SHAPES), len(SHAPES)), ("pooled", 1, len(SHAPES)),
                                                          ("none", 0, len(SHAPES))])
def test_connector_gives_one_token_per_patch_and_the_summary(summary: str, extra: int, heads: int) -> None:
    cfg = ReaderConfig(hidden_size=24, trunk_channels=8, token_channels=8, count_hidden=16, summary=summary)
    tokens, logits = Connector(cfg)(torch.as_tensor(_bins(3)))
    assert tokens.shape == (3, 49 + extra, 24) and cfg.n_tokens == 49 + extra
    assert logits.shape == (3, heads, 5)
    assert ReaderConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError):
        ReaderConfig(max_count=0)
    with pytest.raises(ValueError, match="summary"):
        ReaderConfig(summary="mean")


def test_shape_tokens_differ_per_type_and_follow_the_count_head() -> None:
    torch.manual_seed(0)
    connector = Connector(ReaderConfig(hidden_size=24, trunk_channels=8, token_channels=8, count_hidden=16))
    bins = torch.as_tensor(_bins(2))
    tokens, _ = connector(bins)
    shape_tokens = tokens[:, 49:]
    assert not torch.allclose(shape_tokens[:, 0], shape_tokens[:, 1])  # the type is part of each token
    with torch.no_grad():
        connector.count_out.bias[: 5] += torch.tensor([0.0, 0, 0, 0, 50])  # force "4 diagonals"
    moved, _ = connector(bins)
    assert not torch.allclose(moved[:, 49], tokens[:, 49]) and torch.allclose(moved[:, 50:], tokens[:, 50:])


def test_a_conv2_reader_reads_16_maps_of_7_by_7_as_49_patches_and_refuses_conv1_bins() -> None:
    cfg = ReaderConfig(hidden_size=24, trunk_channels=8, token_channels=8, count_hidden=16, layer="conv2")
    bins2 = torch.as_tensor(np.random.default_rng(0).integers(0, 5, size=(3, 16, 7, 7)))
    assert one_hot_bins(bins2, "conv2").shape == (3, 80, 7, 7)
    tokens, logits = Connector(cfg)(bins2)
    assert tokens.shape == (3, 49 + len(SHAPES), 24) and cfg.n_tokens == 49 + len(SHAPES)
    assert logits.shape == (3, len(SHAPES), 5)
    assert cfg.task.startswith("Conv2 activations") and ReaderConfig().task == READER_TASK
    assert ReaderConfig.from_dict(cfg.to_dict()) == cfg and ReaderConfig.from_dict({}).layer == "conv1"
    with pytest.raises(ValueError, match=r"reads \[b, 16, 7, 7\] \(conv2\); got \[b, 8, 14, 14\] \(conv1\) bins"):
        Connector(cfg)(torch.as_tensor(_bins(1)))
    with pytest.raises(ValueError, match="conv3"):
        ReaderConfig(layer="conv3")


def test_digit_tokens_start_as_the_llms_digits_weighted_by_the_count_head(tmp_path: Path) -> None:
    torch.manual_seed(0)
    tok = tiny_tokenizer(tmp_path)
    cfg = ReaderConfig(hidden_size=24, trunk_channels=8, token_channels=8, count_hidden=16, summary="digits")
    connector, emb = Connector(cfg), torch.randn(tok.vocab_size, 24)
    connector.set_llm_embeddings(emb, tok)
    digits = emb[[tok(str(k), add_special_tokens=False)["input_ids"][0] for k in range(5)]]
    with torch.no_grad():
        connector.count_out.bias[:5] += torch.tensor([0.0, 0, 0, 80, 0])  # "3 diagonals", almost surely
    tokens, logits = connector(torch.as_tensor(_bins(2)))
    torch.testing.assert_close(tokens[:, 49], digits[3].expand(2, -1), atol=1e-4, rtol=0)
    torch.testing.assert_close(tokens[:, 49:], logits.softmax(-1) @ digits)  # the residual starts at zero
    assert torch.equal(Connector(cfg).state_dict()["digit_embeddings"], torch.zeros(5, 24))  # saved with the weights


def test_named_tokens_follow_each_count_with_the_llms_own_embedding_of_its_shape_name(tmp_path: Path) -> None:
    torch.manual_seed(0)
    tok = tiny_tokenizer(tmp_path)
    names = shape_name_ids(tok)
    cfg = ReaderConfig(hidden_size=24, trunk_channels=8, token_channels=8, count_hidden=16, summary="named",
                       name_lengths=tuple(map(len, names)))
    assert cfg.n_tokens == 49 + len(SHAPES) + sum(map(len, names))
    assert ReaderConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg  # lengths survive JSON
    connector, emb = Connector(cfg), torch.randn(tok.vocab_size, 24)
    connector.set_llm_embeddings(emb, tok)
    digits = emb[[tok(str(k), add_special_tokens=False)["input_ids"][0] for k in range(5)]]
    tokens, logits = connector(torch.as_tensor(_bins(2)))
    assert tokens.shape == (2, cfg.n_tokens, 24)
    at = 49
    for k, ids in enumerate(names):  # "<count of shape k> <name of shape k>", in the language's order
        torch.testing.assert_close(tokens[:, at], logits[:, k].softmax(-1) @ digits)
        torch.testing.assert_close(tokens[:, at + 1 : at + 1 + len(ids)], emb[ids].expand(2, -1, -1))
        at += 1 + len(ids)
    assert at == cfg.n_tokens
    with pytest.raises(ValueError, match="name_lengths"):
        ReaderConfig(summary="named")
    other = ReaderConfig(hidden_size=24, trunk_channels=8, token_channels=8, count_hidden=16, summary="named",
                         name_lengths=tuple(n + 1 for n in cfg.name_lengths))
    with pytest.raises(ValueError, match="splits the shape names"):
        Connector(other).set_llm_embeddings(emb, tok)


def test_group_heads_learn_the_sums_the_questions_ask_for() -> None:
    cfg = ReaderConfig(hidden_size=24, trunk_channels=8, token_channels=8, count_hidden=16, summary="shapes+groups")
    counts = np.zeros((2, len(SHAPES)), np.int64)
    for row, pairs in enumerate(({"ellipse": 1, "corner": 2, "vertical": 1}, {"diagonal": 2, "horizontal": 1})):
        for name, n in pairs.items():
            counts[row, SHAPES.index(name)] = n
    targets = cfg.targets(torch.as_tensor(counts))
    # curves, straight lines, all shapes: the answers of make_question, for both images
    qs = [[make_question(k, counts_from_vector(c)).truth for k in ("curves", "lines", "total")] for c in counts]
    assert targets[:, len(SHAPES):].tolist() == qs == [[3, 1, 4], [0, 3, 3]]
    assert torch.equal(ReaderConfig(summary="shapes").targets(torch.as_tensor(counts)), torch.as_tensor(counts))
    assert cfg.task != READER_TASK and "11" in cfg.task  # the prefix names what the soft tokens hold
    with pytest.raises(ValueError, match="reader_summary"):
        FinetuneConfig(dataset="d", out="o", reader_summary="groups")


def test_readers_saved_with_the_single_summary_flag_still_load() -> None:
    assert ReaderConfig.from_dict({"summary_token": True}).summary == "pooled"
    assert ReaderConfig.from_dict({"summary_token": False}).n_tokens == 49


def test_split_prompt_finds_the_encoding_and_keeps_the_turns() -> None:
    enc = get_encoder("paper").encode(_bins(1)[0])
    assert split_prompt(build_prompt(enc, "paper")) == (enc, "\n### Output: ")
    q = build_question(enc, "How many curves are in the image?", "paper")
    assert split_prompt(q) == (enc, "\n### Question: How many curves are in the image?\n### Answer: ")
    with pytest.raises(ValueError, match="### Input:"):
        split_prompt("Describe the image")


def test_training_text_matches_the_chat_text(tmp_path: Path) -> None:
    """Labels cover exactly the answers, and the context is what the Chat page sends (signifiers, newlines)."""
    tok = tiny_tokenizer(tmp_path / "tok")
    counts = np.zeros(len(SHAPES), np.int64)
    counts[SHAPES.index("corner")] = 2
    segments = conversation(counts, np.random.default_rng(0), qa_share=1.0)
    text = "".join(c + a for c, a in segments)
    assert text.startswith("\n### ") and text.endswith("\n")
    if "### Output:" in text:
        assert f"### Output: {format_description({'corner': 2})}\n" in text
    ex = tokenize_conversation(tok, prefix_token_ids(tok), 50, segments, max_length=1024)
    answers = [t for t, lab in zip(ex["input_ids"], ex["labels"], strict=True) if lab != -100]
    assert tok.decode(answers) == "".join(a for _, a in segments)
    assert ex["labels"][: len(prefix_token_ids(tok)) + 50] == [-100] * (len(prefix_token_ids(tok)) + 50)
    batch = ReaderCollator(pad_id=2)(build_examples(tok, _bins(3), np.tile(counts, (3, 1)), 50, 0.5, seed=0))
    assert batch["bins"].shape == (3, 8, 14, 14) and batch["counts"].shape == (3, len(SHAPES))
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape


def _dataset(directory: Path, n: int = 24) -> Path:
    """A dataset folder as `dataset build --encoder paper` writes it: rows with encoding and counts."""
    directory.mkdir(parents=True)
    enc = get_encoder("paper")
    rng = np.random.default_rng(0)
    for split, k in (("train", n), ("val", 4)):
        rows = []
        for b in _bins(k, seed=k):
            counts = {"corner": int(rng.integers(0, 3)), "ellipse": int(rng.integers(0, 2))}
            rows.append({"encoding": enc.encode(b), "counts": counts, "description": format_description(counts)})
        (directory / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (directory / "manifest.json").write_text(json.dumps({"hash": "r1", "encoder": "paper", "threshold_set": None}))
    return directory


@pytest.fixture
def tiny(tmp_path: Path, request) -> dict:
    return tiny_setup(tmp_path, getattr(request, "param", "mistral"), _dataset(tmp_path / "ds"))


def _cfg(tiny: dict, **kw) -> FinetuneConfig:
    base = dict(dataset=str(tiny["data"]), out=str(tiny["tmp"] / "run"), preset=str(tiny["model"]),
                interpreter="reader", max_steps=6, learning_rate=1e-2, batch_size=4, logging_steps=2,
                eval_steps=3, save_steps=3, warmup_steps=0, device="cpu", bf16=False, lora_r=4, lora_alpha=8,
                lora_dropout=0.0, reader_warmup_epochs=1.0, max_length=1024)
    return FinetuneConfig(**{**base, **kw})


@pytest.mark.parametrize("tiny", ["mistral", "mixtral"], indirect=True)
def test_reader_finetune_trains_connector_and_lora_only(tiny: dict, paths) -> None:
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from interp.interpreters.registry import load_interpreter

    base_before = AutoModelForCausalLM.from_pretrained(tiny["model"]).state_dict()
    result = finetune(_cfg(tiny), paths.models_dir, paths.datasets_dir, progress=False)
    run = tiny["tmp"] / "run"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any(r.get("stage") == "warmup" for r in rows) and any("eval_loss" in r for r in rows)
    assert json.loads((run / "status.json").read_text())["status"] == "succeeded"
    adapter = result.adapter_dir
    for name in ("adapter_model.safetensors", "adapter_config.json", "reader.safetensors", "reader_config.json",
                 "run_config.json"):
        assert (adapter / name).exists(), name
    assert json.loads((adapter / "run_config.json").read_text())["interpreter"] == "reader"

    # The joint stage moved the connector past its warm-up, LoRA B left zero, the base stayed.
    warm, final = load_file(str(run / "connector_warmup.safetensors")), load_file(str(adapter / "reader.safetensors"))
    assert any(not torch.equal(warm[k], final[k]) for k in warm if k.startswith("patch_proj"))
    llm = result.model.llm
    assert all(p.abs().sum() > 0 for n, p in llm.named_parameters() if "lora_B" in n)
    after = llm.get_base_model().state_dict()
    for name, before in base_before.items():
        key = next((k for k in after if k.replace("base_layer.", "") == name), name)
        torch.testing.assert_close(after[key], before, msg=f"base weight {name} changed")

    # Reloaded from the folder, behind the Interpreter interface, it gives the same logits and reads encodings.
    interp = load_interpreter(str(run), paths.models_dir, device="cpu")
    assert isinstance(interp, ReaderInterpreter) and interp.encoder == "paper"
    batch = ReaderCollator(2)(build_examples(tiny["tok"], _bins(2), np.zeros((2, 8), np.int64), 50, 0.0, seed=0))
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "bins")}
    result.model.eval()
    torch.testing.assert_close(interp.model(**inputs)["logits"], result.model(**inputs)["logits"])
    encodings = [get_encoder("paper").encode(b) for b in _bins(3)]
    texts = interp.describe(encodings, max_new_tokens=5)
    assert len(texts) == 3 and all(isinstance(t, str) and "\n" not in t for t in texts)
    assert len(interp.answer_questions(encodings[:2], ["How many corners are there?"] * 2, max_new_tokens=4)) == 2
    assert interp.read_counts(encodings).shape == (3, len(SHAPES))
    streamed = "".join(interp.stream(build_question(encodings[0], "How many curves?", "paper"), max_new_tokens=5))
    assert "\n" not in streamed and "###" not in streamed


@pytest.mark.parametrize("summary", ["digits", "named"])
def test_a_digit_token_reader_trains_saves_and_reloads_its_digits(tiny: dict, paths, summary: str) -> None:
    from interp.interpreters.registry import load_interpreter

    result = finetune(_cfg(tiny, reader_summary=summary, max_steps=2, eval_steps=0), paths.models_dir,
                      paths.datasets_dir, progress=False)
    emb = result.model.llm.get_input_embeddings().weight
    digits = [tiny["tok"](str(k), add_special_tokens=False)["input_ids"][0] for k in range(5)]
    torch.testing.assert_close(result.model.connector.digit_embeddings, emb[digits].detach())
    interp = load_interpreter(str(tiny["tmp"] / "run"), paths.models_dir, device="cpu")
    assert interp.model.connector.cfg.summary == summary
    torch.testing.assert_close(interp.model.connector.digit_embeddings, emb[digits].detach())
    assert len(interp.describe([get_encoder("paper").encode(_bins(1)[0])], max_new_tokens=3)) == 1


def test_reader_resumes_from_its_checkpoint_without_a_second_warm_up(tiny: dict, paths) -> None:
    from transformers import TrainerCallback

    class Crash(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 4:
                raise KeyboardInterrupt

    cfg = _cfg(tiny)
    with pytest.raises(KeyboardInterrupt):
        finetune(cfg, paths.models_dir, paths.datasets_dir, progress=False, callbacks=[Crash()])
    run = Path(cfg.out)
    assert json.loads((run / "status.json").read_text())["status"] == "failed"
    assert (run / "checkpoints" / "checkpoint-3" / "reader.safetensors").exists()
    result = finetune(cfg, paths.models_dir, paths.datasets_dir, progress=False)
    assert result.steps == 6
    status = json.loads((run / "status.json").read_text())
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert sum(r.get("stage") == "warmup" for r in rows) == 1  # the warm-up ran once
    assert status["status"] == "succeeded"


def test_reader_prefix_is_the_task_then_the_input_signifier(tmp_path: Path) -> None:
    tok = tiny_tokenizer(tmp_path)
    ids = prefix_token_ids(tok)
    assert ids[0] == tok.bos_token_id
    assert tok.decode(ids[1:]) == f"{READER_TASK}\n### Input:"


def _tiny_reader(tmp_path: Path) -> ReaderInterpreter:
    from transformers import AutoModelForCausalLM

    from interp.interpreters.reader import ReaderModel

    tok = tiny_tokenizer(tmp_path / "m")
    tiny_model("mistral", tmp_path / "m", len(tok))
    llm = AutoModelForCausalLM.from_pretrained(tmp_path / "m").eval()
    connector = Connector(ReaderConfig(hidden_size=32, trunk_channels=8, token_channels=8, count_hidden=16)).eval()
    return ReaderInterpreter(ReaderModel(llm, connector, prefix_token_ids(tok)).eval(), tok, name="tiny-reader")


def test_reader_answers_do_not_depend_on_batch_neighbours(tmp_path: Path) -> None:
    """Rows of different lengths are left-padded: each answer must equal the answer alone (greedy)."""
    reader = _tiny_reader(tmp_path)
    encodings = [get_encoder("paper").encode(b) for b in _bins(3)]
    questions = ["How many corners are there?", "Is there a vertical?", "How many straight lines are in the image?"]
    together = reader.answer_questions(encodings, questions, max_new_tokens=6)
    alone = [reader.answer_questions([e], [q], max_new_tokens=6)[0] for e, q in zip(encodings, questions, strict=True)]
    assert together == alone
    assert reader.describe(encodings, max_new_tokens=6) == reader.describe(encodings[::-1], max_new_tokens=6)[::-1]


def test_reader_stream_equals_its_greedy_answer_and_can_be_stopped(tmp_path: Path) -> None:
    import threading

    reader = _tiny_reader(tmp_path)
    enc = get_encoder("paper").encode(_bins(1)[0])
    prompt = build_question(enc, "How many corners are there?", "paper")
    streamed = "".join(reader.stream(prompt, max_new_tokens=8))
    assert streamed == reader.answer_questions([enc], ["How many corners are there?"], max_new_tokens=8)[0]
    # After its description, as the Chat page asks: the same text as the chat prompt with that turn.
    told = "Image with 1 shape: 1 corner"
    second = "".join(reader.stream(build_question(enc, "How many corners are there?", "paper", told), max_new_tokens=8))
    assert second == reader.answer_questions([enc], ["How many corners are there?"], max_new_tokens=8,
                                             descriptions=[told])[0]
    stop = threading.Event()
    stop.set()
    assert "".join(reader.stream(prompt, max_new_tokens=8, stop_event=stop)) == ""


def _spy_decoding(reader: ReaderInterpreter, monkeypatch) -> list[int]:
    """Record how many rows each token-by-token decoding call gets (`_continue`, or a fresh `_generate_ids`)."""
    calls: list[int] = []
    for name, rows_arg in (("_continue", 1), ("_generate_ids", 1)):
        real = getattr(reader, name)

        def spy(*args, _real=real, _i=rows_arg, **kw):
            calls.append(len(args[_i]))
            return _real(*args, **kw)

        monkeypatch.setattr(reader, name, spy)
    return calls


def test_drafts_never_change_what_the_reader_says(tmp_path: Path, monkeypatch) -> None:
    """Speculative decoding keeps the LLM's greedy text whatever the draft: right, wrong at once, wrong late."""
    reader = _tiny_reader(tmp_path)
    encodings = [get_encoder("paper").encode(b) for b in _bins(4)]
    bins = reader._bins(encodings)
    suffixes = ["\n### Output:"] * 4
    plain = reader._generate(bins, suffixes, 8)  # no drafts: one pass per token
    assert all(plain)
    late = [p[:-1] + ("x" if p[-1] != "x" else "y") for p in plain]
    for drafts in (plain, ["Image with 9 shapes"] * 4, late, [None] * 4,
                   reader.drafts(bins, [None] * 4)):  # the count head's descriptions
        assert reader._generate(bins, suffixes, 8, drafts=drafts) == plain, drafts
    # At the token level: the greedy ids as drafts take one forward pass and no decoding loop.
    suffix_ids = reader._ids(suffixes)
    greedy = reader._generate_ids(bins, suffix_ids, 8, 0.0, None, None)
    calls = _spy_decoding(reader, monkeypatch)
    assert reader._decode_with_drafts(bins, suffix_ids, greedy, 8) == greedy and calls == []
    wrong_late = [g[:5] + [(g[5] + 1) % len(reader.tokenizer)] + g[6:] for g in greedy]
    assert reader._decode_with_drafts(bins, suffix_ids, [wrong_late[0], *greedy[1:]], 8) == greedy
    assert calls == [1]  # only the row whose draft went wrong is decoded on, from its 6th token
    wrong_first = [[(g[0] + 1) % len(reader.tokenizer)] + g[1:] for g in greedy]
    assert reader._decode_with_drafts(bins, suffix_ids, [wrong_first[0], [], *greedy[2:]], 8) == greedy
    assert calls == [1, 2]  # a draft wrong at once and an empty one: both continued on the verify pass's cache


def test_drafts_come_from_the_count_head_and_the_question(tmp_path: Path) -> None:
    reader = _tiny_reader(tmp_path)
    bins = reader._bins([get_encoder("paper").encode(b) for b in _bins(3)])
    counts = [counts_from_vector(v) for v in reader.model.connector.features(bins)[2].argmax(-1).numpy()]
    drafts = reader.drafts(bins, [None, "How many curves are in the image?", "Tell me a story"])
    assert drafts[0] == format_description(counts[0])
    assert drafts[1] == make_question("curves", counts[1]).answer
    assert drafts[2] is None  # no grounded question, no draft: decoded token by token
