"""The shipped adapter loads and describes a held-out synthetic image (needs the fetched SmolLM2)."""

from __future__ import annotations

import pytest

from interp.settings import ROOT

pytestmark = pytest.mark.slow


def test_shipped_adapter_describes_a_held_out_image(target_model) -> None:
    from interp.data.shapes import generate_shapes
    from interp.encoding.encoders import encode_activations
    from interp.interpreters.models import is_fetched
    from interp.interpreters.registry import load_interpreter
    from interp.language import parse_description
    from interp.target.activations import capture_conv1

    models_dir = ROOT / "data" / "models"
    if not is_fetched("smollm2-135m", models_dir):
        pytest.skip("SmolLM2 not fetched: run `python -m interp models fetch smollm2-135m`")
    interp = load_interpreter(str(ROOT / "assets" / "interpreters" / "smollm2-compact"), models_dir, device="cpu")
    batch = generate_shapes(2, seed=1_000_003)
    encodings = encode_activations(capture_conv1(target_model, batch.images), interp.thresholds.as_array(),
                                   encoder=interp.encoder)
    outputs = interp.describe(encodings)
    assert len(outputs) == 2
    assert all(parse_description(o).well_formed for o in outputs), outputs


def test_shipped_reader_counts_held_out_shapes_and_answers_questions(target_model) -> None:
    """The default interpreter on 40 D_syn_eval images: most descriptions exact, most count answers right
    (the README reports n = 500; the bounds here sit well below those figures)."""
    from interp.data.shapes import generate_shapes
    from interp.encoding.encoders import encode_activations
    from interp.evaluation.evaluate import syn_eval_seed
    from interp.evaluation.metrics import aggregate_scores, score_sample
    from interp.interpreters.models import is_fetched
    from interp.interpreters.questions import answer_all, eval_questions, score_answers
    from interp.interpreters.reader import ReaderInterpreter
    from interp.interpreters.registry import load_interpreter
    from interp.language import SHAPES, counts_from_vector, format_description
    from interp.target.activations import capture_conv1

    models_dir = ROOT / "data" / "models"
    if not is_fetched("smollm2-135m", models_dir):
        pytest.skip("SmolLM2 not fetched: run `python -m interp models fetch smollm2-135m`")
    reader = load_interpreter(str(ROOT / "assets" / "interpreters" / "reader-smollm2"), models_dir, device="cpu")
    assert isinstance(reader, ReaderInterpreter)
    batch = generate_shapes(40, seed=syn_eval_seed())
    encodings = encode_activations(capture_conv1(target_model, batch.images), reader.thresholds.as_array(),
                                   encoder=reader.encoder)
    truths = [format_description(counts_from_vector(c)) for c in batch.counts]
    metrics = aggregate_scores([score_sample(p, t) for p, t in zip(reader.describe(encodings), truths, strict=True)])
    assert metrics["accuracy"] >= 0.75 and metrics["f1"] >= 0.9, metrics
    counts = [list(c) + [0] * (len(SHAPES) - len(c)) for c in batch.counts]
    questions = eval_questions(counts, seed=0)
    qa = score_answers(questions, answer_all(reader, encodings, questions))
    assert qa["accuracy"] >= 0.75, qa


def test_shipped_conv2_reader_reads_conv2_and_refuses_conv1(target_model) -> None:
    """The shipped conv2 reader on 40 D_syn_eval images' conv2 maps: most descriptions exact (README, n = 500:
    0.814 / 0.935; the bounds sit well below), and conv1 encodings refused naming both layers."""
    from interp.data.shapes import generate_shapes
    from interp.encoding.encoders import encode_activations
    from interp.encoding.thresholds import ThresholdSet
    from interp.evaluation.evaluate import syn_eval_seed
    from interp.evaluation.metrics import aggregate_scores, score_sample
    from interp.interpreters.models import is_fetched
    from interp.interpreters.registry import load_interpreter
    from interp.language import counts_from_vector, format_description
    from interp.target.activations import capture

    models_dir = ROOT / "data" / "models"
    if not is_fetched("smollm2-135m", models_dir):
        pytest.skip("SmolLM2 not fetched: run `python -m interp models fetch smollm2-135m`")
    reader = load_interpreter(str(ROOT / "assets" / "interpreters" / "reader-smollm2-conv2"), models_dir, device="cpu")
    assert reader.layer == "conv2" and reader.thresholds.layer == "conv2"
    batch = generate_shapes(40, seed=syn_eval_seed())
    encodings = encode_activations(capture(target_model, batch.images, "conv2"), reader.thresholds,
                                   encoder=reader.encoder)
    truths = [format_description(counts_from_vector(c)) for c in batch.counts]
    metrics = aggregate_scores([score_sample(p, t) for p, t in zip(reader.describe(encodings), truths, strict=True)])
    assert metrics["accuracy"] >= 0.6 and metrics["f1"] >= 0.85, metrics
    conv1_set = ThresholdSet(name="c1", thresholds=[[0.1, 0.2, 0.3, 0.4]] * 8)
    conv1 = encode_activations(capture(target_model, batch.images[:1], "conv1"), conv1_set, encoder=reader.encoder)
    with pytest.raises(ValueError, match="conv2"):
        reader.describe(conv1)
