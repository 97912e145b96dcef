"""Binning and the registered encoders of §3.2: exact strings, exact inverses, malformed input."""

from __future__ import annotations

import importlib.util
import itertools
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interp.encoding.encoders import (
    GAP_MIN,
    LETTERS,
    PAPER_LENGTH,
    SINGLE_TOKEN_WORDS,
    WORD_ALPHABETS,
    Encoder,
    bin_activations,
    encode_activations,
    get_encoder,
    list_encoders,
    register_encoder,
)
from interp.encoding.thresholds import ThresholdSet
from interp.settings import ROOT

# --- binning ------------------------------------------------------------------------------


def reference_bin(a: float, t: list[float]) -> int:
    """§3.2 read literally, one value at a time."""
    t1, t2, t3, t4 = t
    if a <= t1:
        return 0
    if a <= t2:
        return 1
    if a <= t3:
        return 2
    if a <= t4:
        return 3
    return 4


@st.composite
def activations_and_thresholds(draw):
    """Activations [b, 8, 14, 14] with many values exactly on a threshold, and sorted thresholds with ties."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    b = draw(st.integers(1, 2))
    t = np.sort(rng.choice([0.0, 0.25, 0.5, 1.0, 2.0, rng.uniform(0, 3)], size=(8, 4)), axis=1)
    t[:, 0] = np.where(rng.random(8) < 0.3, 0.0, t[:, 0])  # the paper's t1 = 0 too
    acts = rng.uniform(0, 3, size=(b, 8, 14, 14)).astype(np.float32)
    on_edge = rng.random(acts.shape) < 0.3
    acts[on_edge] = np.broadcast_to(t[None, :, None, None, :], (*acts.shape, 4))[on_edge, rng.integers(0, 4)]
    acts[rng.random(acts.shape) < 0.2] = 0.0
    return acts, t


@settings(max_examples=40, deadline=None)
@given(activations_and_thresholds())
def test_binning_matches_a_cell_by_cell_reference(data):
    acts, t = data
    bins = bin_activations(acts, t)
    assert bins.dtype == np.int8 and bins.shape == acts.shape
    for s in range(len(acts)):
        for f in range(8):
            for i in range(14):
                for j in range(14):
                    assert bins[s, f, i, j] == reference_bin(float(acts[s, f, i, j]), list(t[f]))
    np.testing.assert_array_equal(bin_activations(acts[0], ThresholdSet("t", t)), bins[0])  # one sample


def test_binning_hand_case_and_the_paper_zero_rule():
    t = np.tile([0.0, 1.0, 2.0, 3.0], (8, 1))
    acts = np.zeros((8, 14, 14))
    acts[0, 0, :9] = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 1e-9]
    assert bin_activations(acts, t)[0, 0, :9].tolist() == [0, 1, 1, 2, 2, 3, 3, 4, 1]  # "z if a ≤ 0"


def test_binning_rejects_bad_input():
    t = np.zeros((8, 4))
    with pytest.raises(ValueError, match="NaN"):
        bin_activations(np.full((8, 14, 14), np.nan), t)
    with pytest.raises(ValueError, match=r"\[b, 8, 14, 14\]"):
        bin_activations(np.zeros((8, 14)), t)
    with pytest.raises(ValueError, match="filter 1"):
        bin_activations(np.zeros((8, 14, 14)), [[0, 1, 2, 3], [0, 2, 1, 3]] + [[0, 1, 2, 3]] * 6)


# --- registry -----------------------------------------------------------------------------


def test_registry_lists_paper_first_with_one_line_descriptions():
    names = list_encoders()
    assert names[0] == "paper" and {"rle", "compact"} <= set(names)
    for name in names:
        enc = get_encoder(name)
        assert enc.name == name and isinstance(enc, Encoder)
        assert enc.description and "\n" not in enc.description
    with pytest.raises(ValueError, match="unknown encoder 'nope'; registered: paper"):
        get_encoder("nope")
    with pytest.raises(ValueError, match="already registered"):
        register_encoder("paper")(type(get_encoder("paper")))


# --- round trips --------------------------------------------------------------------------


def patterned_bins() -> list[np.ndarray]:
    """Edge cases: all z, all v, checkerboards, stripes, gaps just under and at GAP_MIN, lone cells."""
    cases = [np.zeros((8, 14, 14), np.int8), np.full((8, 14, 14), 4, np.int8)]
    ii, jj = np.indices((14, 14))
    cases.append(np.broadcast_to(((ii + jj) % 2) * 4, (8, 14, 14)).astype(np.int8))
    cases.append(np.broadcast_to((jj % 5), (8, 14, 14)).astype(np.int8))
    gaps = np.zeros((8, 14, 14), np.int8)
    for f in range(8):
        gaps[f, f, :] = 1
        gaps[f, f, 1 : 1 + GAP_MIN - 1] = 0  # a short z run: written as letters
        gaps[f, f + 1, 2 : 2 + GAP_MIN] = 0  # (row f + 1 stays mostly z) ...
        gaps[f, f + 2, [0, 13]] = f % 4 + 1  # first and last column only
        gaps[f, f + 3, 4 : 4 + GAP_MIN] = 3  # a run exactly GAP_MIN long
    cases.append(gaps)
    return cases


@st.composite
def random_bins(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    p_zero = draw(st.sampled_from([0.0, 0.3, 0.6, 0.9, 1.0]))
    bins = rng.integers(0, 5, size=(8, 14, 14)) * (rng.random((8, 14, 14)) >= p_zero)
    return bins.astype(np.int8)


@pytest.mark.parametrize("name", list_encoders())
@settings(max_examples=60, deadline=None)
@given(bins=random_bins())
def test_decode_inverts_encode_on_random_bins(name, bins):
    enc = get_encoder(name)
    text = enc.encode(bins)
    decoded = enc.decode(text)
    assert decoded.shape == (8, 14, 14)
    np.testing.assert_array_equal(decoded, bins)


@pytest.mark.parametrize("name", list_encoders())
def test_decode_inverts_encode_on_patterns_and_batches(name):
    enc = get_encoder(name)
    cases = patterned_bins()
    batch = np.stack(cases)
    texts = enc.encode_batch(batch)
    assert texts == [enc.encode(b) for b in cases]
    for text, b in zip(texts, cases, strict=True):
        np.testing.assert_array_equal(enc.decode(text), b)


def test_encoders_reject_bad_bins():
    enc = get_encoder("paper")
    with pytest.raises(ValueError, match="0..4"):
        enc.encode(np.full((8, 14, 14), 5))
    with pytest.raises(ValueError, match="0..4"):
        enc.encode(np.zeros((8, 14, 14), np.float32))
    with pytest.raises(ValueError, match=r"\[8, 14, 14\]"):
        enc.encode(np.zeros((1, 8, 14, 14), np.int8))
    with pytest.raises(ValueError, match=r"\[b, 8, 14, 14\]"):
        enc.encode_batch(np.zeros((8, 14, 14), np.int8))


# --- paper --------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(bins=random_bins())
def test_paper_encoding_is_f_plus_196_letters_per_filter(bins):
    text = get_encoder("paper").encode(bins)
    assert len(text) == PAPER_LENGTH == 1576
    assert [i for i, c in enumerate(text) if c == "f"] == [197 * f for f in range(8)]
    expected = "".join("f" + "".join(LETTERS[v] for v in bins[f].ravel()) for f in range(8))
    assert text == expected


def test_paper_decode_errors_are_clear():
    paper = get_encoder("paper")
    good = paper.encode(np.zeros((8, 14, 14), np.int8))
    with pytest.raises(ValueError, match="1576 characters"):
        paper.decode(good[:-1])
    with pytest.raises(ValueError, match="filter 1: expected delimiter 'f' at position 197"):
        paper.decode(good[:197] + "z" + good[198:])
    with pytest.raises(ValueError, match=r"filter 0: unexpected character 'x' at position 5"):
        paper.decode(good[:5] + "x" + good[6:])
    with pytest.raises(ValueError, match="ASCII"):
        paper.decode(good[:5] + "é" + good[6:])


def test_rle_hand_case_and_errors():
    bins = np.zeros((8, 14, 14), np.int8)
    bins[0, 0, :6] = [1, 0, 0, 2, 0, 0]
    text = get_encoder("rle").encode(bins)
    assert text.startswith("flzzmz192f")  # "zz" stays literal, 192 = 2 + 13 × 14 trailing z cells
    assert text.endswith("fz196")
    with pytest.raises(ValueError, match="z0"):
        get_encoder("rle").decode(text.replace("z196", "z0"))
    with pytest.raises(ValueError, match="1576 characters"):
        get_encoder("rle").decode(text.replace("z196", "z195"))


# --- compact ------------------------------------------------------------------------------


def test_compact_exact_string():
    bins = np.zeros((8, 14, 14), np.int8)
    bins[0, 0] = [0, 0, 1, 2, 2, 0, 0, 0, 4, 4, 4, 4, 0, 0]  # 2 z, l m m, gap of 3, v v v v
    bins[0, 1] = [1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]  # a 1-cell z run inside a word
    bins[2, 13, 13] = 3  # a lone h in the last cell
    lines = ["f", "   bat    coll", " ber"] + [""] * 12
    lines += ["f"] + [""] * 14
    lines += ["f"] + [""] * 13 + [" " * 14 + "s"]
    lines += (["f"] + [""] * 14) * 5
    text = get_encoder("compact").encode(bins)
    assert text == "\n".join(lines)
    np.testing.assert_array_equal(get_encoder("compact").decode(text), bins)


def test_compact_alphabet_table_is_consistent():
    assert len(WORD_ALPHABETS) == 4 and all(len(set(a)) == 5 for a in WORD_ALPHABETS)
    allowed = [set(a) for a in WORD_ALPHABETS]
    for w in SINGLE_TOKEN_WORDS:
        assert 2 <= len(w) <= 4 and all(ch in allowed[k] for k, ch in enumerate(w)), w
    # every 3-letter word is written even where it is 2 tokens; 4-letter words only where listed
    text = get_encoder("compact").encode(np.full((8, 14, 14), 4, np.int8))
    assert text.split("\n")[1] == " coll coll coll co"


def test_compact_decode_tolerates_stripped_trailing_rows():
    bins = np.zeros((8, 14, 14), np.int8)
    bins[7, 0, 0] = 1
    text = get_encoder("compact").encode(bins)
    assert text.endswith("\n b" + "\n" * 13)
    np.testing.assert_array_equal(get_encoder("compact").decode(text.rstrip()), bins)
    empty = get_encoder("compact").encode(np.zeros((8, 14, 14), np.int8))
    assert (get_encoder("compact").decode(empty.rstrip()) == 0).all()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda ls: ls[:-20], "must have 120 lines"),
        (lambda ls: ["g"] + ls[1:], "filter 0: expected a line 'f', got 'g'"),
        (lambda ls: ls[:1] + ["bat"] + ls[2:], "filter 0 row 0: a row is words"),
        (lambda ls: ls[:1] + [" bat "] + ls[2:], "filter 0 row 0: a row is words"),
        (lambda ls: ls[:1] + [" colle"] + ls[2:], "filter 0 row 0: word 'colle' is longer than 4 letters"),
        (lambda ls: ls[:1] + [" xat"] + ls[2:], "filter 0 row 0: letter 1 of 'xat' must be one of 'pbmsc'"),
        (lambda ls: ls[:1] + [" bxt"] + ls[2:], "letter 2 of 'bxt' must be one of 'euaio'"),
        (lambda ls: ls[:1] + [" " * 13 + "bat"] + ls[2:], "filter 0 row 0: the row runs past 14 cells"),
        (lambda ls: ls[:16] + [" coll coll coll col"] + ls[17:], "filter 1 row 0: the row runs past 14 cells"),
    ],
)
def test_compact_decode_errors_are_clear(edit, message):
    lines = get_encoder("compact").encode(np.zeros((8, 14, 14), np.int8)).split("\n")
    with pytest.raises(ValueError, match=message):
        get_encoder("compact").decode("\n".join(edit(lines)))


def test_encode_activations_is_bin_then_encode():
    rng = np.random.default_rng(0)
    acts = rng.uniform(0, 1, size=(3, 8, 14, 14))
    t = np.tile([0.2, 0.4, 0.6, 0.8], (8, 1))
    for name in list_encoders():
        assert encode_activations(acts, t, name) == get_encoder(name).encode_batch(bin_activations(acts, t))
    assert encode_activations(acts[0], t) == [get_encoder("paper").encode(bin_activations(acts[0], t))]


# --- token cost with the real tokenizer (skipped where SmolLM2 is not here) --------------


@pytest.fixture(scope="module")
def bench():
    """scripts/bench_encoding.py as a module (it holds the tokenizer loader and the word derivation)."""
    spec = importlib.util.spec_from_file_location("bench_encoding", ROOT / "scripts" / "bench_encoding.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_encoding", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def smollm2_tokenizer(bench):
    tok = bench.load_smollm2_tokenizer(ROOT / "data" / "models")
    if tok is None:
        pytest.skip("SmolLM2 tokenizer not fetched")
    return tok


def test_committed_word_list_matches_the_tokenizer(bench, smollm2_tokenizer):
    assert set(bench.derive_single_token_words(smollm2_tokenizer)) == SINGLE_TOKEN_WORDS


def test_compact_costs_well_under_half_the_paper_tokens_on_real_activations(smollm2_tokenizer, target_model, mnist):
    from interp.encoding.thresholds import calibrate_thresholds
    from interp.target.activations import blank_response, capture_conv1

    ts = calibrate_thresholds(capture_conv1(target_model, mnist.train.images[:500]), blank_response(target_model))
    acts = capture_conv1(target_model, mnist.test.images[:40])
    cost = {}
    for name in ("paper", "compact"):
        texts = encode_activations(acts, ts, name)
        cost[name] = np.mean([len(ids) for ids in smollm2_tokenizer(texts, add_special_tokens=False)["input_ids"]])
    assert cost["paper"] > 850
    assert cost["compact"] <= 420


# --- any registered layer: conv2's [16, 7, 7] maps ----------------------------------------------

CONV2 = (16, 7, 7)


@st.composite
def random_conv2_bins(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    p_zero = draw(st.sampled_from([0.0, 0.3, 0.6, 0.9, 1.0]))
    return (rng.integers(0, 5, size=CONV2) * (rng.random(CONV2) >= p_zero)).astype(np.int8)


def conv2_patterns() -> list[np.ndarray]:
    """All z, all v, a checkerboard, stripes, gaps at GAP_MIN and a lone last cell, on 7×7 maps."""
    ii, jj = np.indices((7, 7))
    cases = [np.zeros(CONV2, np.int8), np.full(CONV2, 4, np.int8),
             np.broadcast_to(((ii + jj) % 2) * 4, CONV2).astype(np.int8),
             np.broadcast_to(jj % 5, CONV2).astype(np.int8)]
    gaps = np.zeros(CONV2, np.int8)
    for f in range(16):
        gaps[f, f % 7, :] = 2
        gaps[f, f % 7, 1 : 1 + GAP_MIN] = 0
        gaps[f, 6, 6] = f % 4 + 1
    cases.append(gaps)
    return cases


@pytest.mark.parametrize("name", list_encoders())
@settings(max_examples=40, deadline=None)
@given(bins=random_conv2_bins())
def test_every_encoder_round_trips_conv2_bins(name, bins):
    enc = get_encoder(name)
    decoded = enc.decode(enc.encode(bins))
    assert decoded.shape == CONV2 and decoded.dtype == np.int8
    np.testing.assert_array_equal(decoded, bins)


@pytest.mark.parametrize("name", list_encoders())
def test_every_encoder_round_trips_conv2_patterns_and_batches(name):
    enc = get_encoder(name)
    cases = conv2_patterns()
    texts = enc.encode_batch(np.stack(cases))
    assert texts == [enc.encode(b) for b in cases]
    for text, b in zip(texts, cases, strict=True):
        np.testing.assert_array_equal(enc.decode(text), b)
    if name == "compact":  # trailing empty rows stripped away still decode
        np.testing.assert_array_equal(enc.decode(texts[0].rstrip()), cases[0])
        np.testing.assert_array_equal(enc.decode(texts[-1].rstrip()), cases[-1])


def test_conv2_exact_strings():
    bins = np.zeros(CONV2, np.int8)
    bins[0, 0, :5] = [1, 2, 3, 4, 0]
    bins[15, 6, 6] = 3
    paper = get_encoder("paper").encode(bins)
    assert len(paper) == 16 * 50 == 800
    assert [i for i, c in enumerate(paper) if c == "f"] == [50 * f for f in range(16)]
    assert paper.startswith("flmhvz" + "z" * 44 + "f") and paper.endswith("f" + "z" * 48 + "h")
    assert get_encoder("rle").encode(bins) == "flmhvz45" + "fz49" * 14 + "fz48h"
    compact = get_encoder("compact").encode(bins).split("\n")
    assert len(compact) == 16 * 8
    assert compact[0] == "f" and compact[1].startswith(" ") and compact[2:8] == [""] * 6
    assert compact[-8] == "f" and compact[-1] == " " * 7 + "s"  # 6 z cells skipped, then h as a 1-letter word


def test_layer_forms_are_disjoint_so_decode_can_infer_the_layer():
    """decode reads the layer off the text: each layer's length / delimiters / lines must be its own."""
    from interp.encoding.encoders import paper_length
    from interp.target.layers import LAYERS

    layers = list(LAYERS.values())
    assert len({paper_length(lay) for lay in layers}) == len(layers)
    assert len({lay.channels for lay in layers}) == len(layers)
    ranges = sorted((lay.channels * (1 + lay.side) - lay.side, lay.channels * (1 + lay.side)) for lay in layers)
    assert all(hi < lo for (_, hi), (lo, _) in itertools.pairwise(ranges))


@pytest.mark.parametrize(
    ("name", "edit", "message"),
    [
        ("paper", lambda t: t[:-1], r"^paper encoding must be 1576 characters \(conv1: 8 × 'f' \+ 196\) or 800 "
                                    r"characters \(conv2: 16 × 'f' \+ 49\), got 799$"),
        ("paper", lambda t: t[:50] + "z" + t[51:], r"^filter 1: expected delimiter 'f' at position 50$"),
        ("paper", lambda t: t[:3] + "x" + t[4:], r"^filter 0: unexpected character 'x' at position 3"),
        ("rle", lambda t: t.replace("fz49", "fz50", 1), r"run length z50 at position \d+ is outside 1..49"),
        ("compact", lambda t: "\n".join(t.split("\n")[:100]), r"^compact encoding must have 120 lines \(conv1: 8 × "
                                                             r"\('f' \+ 14 rows\)\) or 128 lines \(conv2: 16 × \('f' "
                                                             r"\+ 7 rows\)\), got 100$"),
        ("compact", lambda t: t.replace("\n", "\n" + " " * 6 + "bat", 1), r"filter 0 row 0: the row runs past 7 cells"),
    ],
)
def test_conv2_decode_errors_are_clear(name, edit, message):
    text = get_encoder(name).encode(np.zeros(CONV2, np.int8))
    with pytest.raises(ValueError, match=message):
        get_encoder(name).decode(edit(text))


def test_binning_conv2_activations_with_a_conv2_table():
    rng = np.random.default_rng(1)
    acts = rng.uniform(0, 3, size=(2, *CONV2)).astype(np.float32)
    t = np.sort(rng.uniform(0, 3, size=(16, 4)), axis=1)
    bins = bin_activations(acts, t)
    assert bins.shape == acts.shape and bins.dtype == np.int8
    for s, f, i, j in [(0, 0, 0, 0), (1, 15, 6, 6), (0, 9, 3, 2), (1, 4, 5, 1)]:
        assert bins[s, f, i, j] == reference_bin(float(acts[s, f, i, j]), list(t[f]))
    np.testing.assert_array_equal(bin_activations(acts[1], ThresholdSet("c2", t, layer="conv2")), bins[1])
    texts = encode_activations(acts, t, "compact")
    assert [get_encoder("compact").decode(x) for x in texts][1].tolist() == bins[1].tolist()


def test_a_conv1_set_is_refused_for_conv2_activations_and_back():
    conv1 = ThresholdSet("default", np.tile([0.0, 1.0, 2.0, 3.0], (8, 1)))
    conv2 = ThresholdSet("deep", np.tile([0.0, 1.0, 2.0, 3.0], (16, 1)), layer="conv2")
    with pytest.raises(ValueError, match=r"^threshold set 'default' was made for conv1 \(8 filters\), but these "
                                         r"activations are conv2's \[16, 7, 7\]: use a conv2 threshold set$"):
        bin_activations(np.zeros(CONV2), conv1)
    with pytest.raises(ValueError, match=r"^threshold set 'deep' was made for conv2 \(16 filters\), but these "
                                         r"activations are conv1's \[8, 14, 14\]: use a conv1 threshold set$"):
        encode_activations(np.zeros((2, 8, 14, 14)), conv2)
    with pytest.raises(ValueError, match=r"^thresholds \[8, 4\] are a conv1 table \(8 filters\), but these "
                                         r"activations are conv2's \[16, 7, 7\]"):
        bin_activations(np.zeros((3, *CONV2)), conv1.as_array())
    with pytest.raises(ValueError, match=r"\[b, 8, 14, 14\] \(conv1\) or \[b, 16, 7, 7\] \(conv2\)"):
        bin_activations(np.zeros((16, 14, 14)), conv1)


def test_encoders_reject_bins_of_no_registered_layer():
    with pytest.raises(ValueError, match=r"^bins must be \[8, 14, 14\] \(conv1\) or \[16, 7, 7\] \(conv2\), "
                                         r"got \[16, 14, 14\]$"):
        get_encoder("compact").encode(np.zeros((16, 14, 14), np.int8))
    with pytest.raises(ValueError, match=r"^bins must be \[b, 8, 14, 14\] \(conv1\) or \[b, 16, 7, 7\] \(conv2\), "
                                         r"got \[16, 7, 7\]$"):
        get_encoder("paper").encode_batch(np.zeros(CONV2, np.int8))
