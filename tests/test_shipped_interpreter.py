"""The shipped adapter loads and describes a held-out synthetic image (needs the fetched SmolLM2)."""

from __future__ import annotations

import pytest

from interp.settings import ROOT

pytestmark = pytest.mark.slow


def test_shipped_adapter_describes_a_held_out_image(target_model) -> None:
    from interp.activations import capture_conv1
    from interp.encoding import encode_activations
    from interp.interpreter import load_interpreter
    from interp.language import parse_description
    from interp.models import is_fetched
    from interp.shapes import generate_shapes

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
