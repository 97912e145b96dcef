"""Description language L (§3.1): exact strings, round trips, and a parser that never raises."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interp.language import (
    OUTPUT_SIGNIFIER,
    PLURALS,
    SHAPES,
    SYNTH_SHAPES,
    counts_from_vector,
    counts_to_vector,
    format_description,
    parse_description,
)


def nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if v}


def test_shape_names_and_order() -> None:
    assert SHAPES == (
        "diagonal",
        "anti-diagonal",
        "vertical",
        "horizontal",
        "checkerboard",
        "ellipse",
        "corner",
        "crossing",
    )
    assert SYNTH_SHAPES == SHAPES[:7]
    assert "crossing" not in SYNTH_SHAPES
    assert list(PLURALS) == list(SHAPES)
    assert PLURALS["ellipse"] == "ellipses"
    assert PLURALS["anti-diagonal"] == "anti-diagonals"
    assert OUTPUT_SIGNIFIER == "### Output:"


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        # Figure 2, left (MNIST) and right (synthetic).
        (
            {"corner": 1, "horizontal": 1, "diagonal": 1},
            "Image with 3 shapes: 1 corner, 1 horizontal, 1 diagonal",
        ),
        (
            {"corner": 1, "vertical": 1, "checkerboard": 1},
            "Image with 3 shapes: 1 corner, 1 vertical, 1 checkerboard",
        ),
        # Figure 5, right.
        (
            {
                "corner": 3,
                "vertical": 2,
                "horizontal": 3,
                "diagonal": 3,
                "anti-diagonal": 1,
                "crossing": 1,
                "checkerboard": 1,
            },
            "Image with 14 shapes: 3 corners, 2 verticals, 3 horizontals, 3 diagonals, "
            "1 anti-diagonal, 1 crossing, 1 checkerboard",
        ),
        # Figure 6, left and right.
        (
            {"horizontal": 1, "diagonal": 1, "anti-diagonal": 1, "crossing": 1},
            "Image with 4 shapes: 1 horizontal, 1 diagonal, 1 anti-diagonal, 1 crossing",
        ),
        (
            {"corner": 1, "diagonal": 2, "crossing": 1},
            "Image with 4 shapes: 1 corner, 2 diagonals, 1 crossing",
        ),
        ({"ellipse": 1}, "Image with 1 shape: 1 ellipse"),
        ({"ellipse": 2, "corner": 0}, "Image with 2 shapes: 2 ellipses"),
        ({}, "Image with 0 shapes"),
        ({"vertical": 0}, "Image with 0 shapes"),
    ],
)
def test_format_exact_strings(counts: dict[str, int], expected: str) -> None:
    assert format_description(counts) == expected
    parsed = parse_description(expected)
    assert nonzero(parsed.counts) == nonzero(counts)
    assert parsed.well_formed and parsed.total_matches
    assert parsed.total == sum(counts.values())
    assert parsed.text == expected


def test_format_accepts_numpy_ints() -> None:
    assert format_description({"corner": np.int64(2)}) == "Image with 2 shapes: 2 corners"


@pytest.mark.parametrize("bad", [{"circle": 1}, {"corner": -1}, {"Corner": 1}])
def test_format_rejects_unknown_or_negative(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        format_description(bad)
    with pytest.raises(ValueError):
        counts_to_vector(bad)


def test_vector_conversion() -> None:
    vec = counts_to_vector({"corner": 2, "diagonal": 1, "crossing": 3})
    assert vec.dtype == np.int64
    assert vec.tolist() == [1, 0, 0, 0, 0, 0, 2, 3]
    assert counts_from_vector(vec) == {name: int(v) for name, v in zip(SHAPES, vec, strict=True)}
    synth = counts_to_vector({"ellipse": 4}, SYNTH_SHAPES)
    assert synth.tolist() == [0, 0, 0, 0, 0, 4, 0]
    assert list(counts_from_vector(synth)) == list(SYNTH_SHAPES)
    with pytest.raises(ValueError):
        counts_to_vector({"crossing": 1}, SYNTH_SHAPES)
    with pytest.raises(ValueError):
        counts_from_vector(np.zeros(5, dtype=np.int64))
    with pytest.raises(ValueError):
        counts_from_vector(np.array([1, 0, 0, 0, 0, 0, -1]))


def test_figure5_run_on_into_activations() -> None:
    # Figure 5, left: the 7b interpreter runs on into activation characters.
    text = (
        "Image with 14 shapes: 3 corners, 2 verticals, 3 horizontals, 3 diagonals, 1 anti-diagonal, 1 crossing, 1hhhv"
    )
    parsed = parse_description(text)
    assert nonzero(parsed.counts) == {
        "corner": 3,
        "vertical": 2,
        "horizontal": 3,
        "diagonal": 3,
        "anti-diagonal": 1,
        "crossing": 1,
    }
    assert parsed.total == 14
    assert not parsed.well_formed
    assert not parsed.total_matches  # 13 shapes named, 14 stated
    assert "hhhv" not in parsed.text
    assert parsed.rest == "1hhhv"


@pytest.mark.parametrize(
    ("text", "expected", "well_formed"),
    [
        ("### Output: Image with 1 shape: 1 ellipse", {"ellipse": 1}, True),
        ("### Output : Image with 1 shape: 1 ellipse", {"ellipse": 1}, True),
        ("### Output: Number of Shapes: Image with 1 shape: 1 corner", {"corner": 1}, True),
        # Mixtral moved on to the next instance (§4): read only the first description.
        ("Image with 1 shape: 1 corner\n### Input: fzzlmhv", {"corner": 1}, True),
        ("Image with 1 shape: 1 corner### Question: how many?", {"corner": 1}, True),
        ("Image with 2 shapes: 2 corners\nfzzllmzzzz", {"corner": 2}, True),
        ("Image with 2 shapes: 2 corners fzzllm 1 ellipse", {"corner": 2}, True),
        ("Image with 2 shapes: 2 corners zzzzzzzz", {"corner": 2}, True),
        ("Image with 1 shape: 1 corner\nImage with 1 shape: 1 ellipse", {"corner": 1}, True),
        ("Image with 1 shape: 1 corner\nThe image shows 1 ellipse", {"corner": 1}, True),
        ("Image with 1 shape: 1 corner</s>1 ellipse", {"corner": 1}, True),
        ("Image with 1 shape: 1 corner 0123301230122013", {"corner": 1}, True),
        ("Image with 2 shapes:\n1 corner\n1 ellipse", {"corner": 1, "ellipse": 1}, False),
        # Loose wording.
        ("image with 2 shapes: 2 vertical lines", {"vertical": 2}, False),
        ("Image with 2 shapes: 1 Horizontal line, 1 diagonal line", {"horizontal": 1, "diagonal": 1}, False),
        ("Image with 2 shapes: 1 anti diagonal, 1 antidiagonal", {"anti-diagonal": 2}, False),
        ("Image with 3 shapes: 3 Anti-Diagonals", {"anti-diagonal": 3}, False),
        ("Image with 2 shapes: 1 anti-diagonal, 1 diagonal", {"anti-diagonal": 1, "diagonal": 1}, True),
        ("Image with 1 shape: 1 checker board", {"checkerboard": 1}, False),
        ("Image with 2 shapes: 2 checker-boards", {"checkerboard": 2}, False),
        ("Image with 3 shapes: 1 circle, 1 ellipsis, 1 oval", {"ellipse": 3}, False),
        ("Image with   3  shapes:  2 corners ,1 cross", {"corner": 2, "crossing": 1}, False),
        ("Image with 3 number of shapes: 1 corner, 2 verticals", {"corner": 1, "vertical": 2}, False),
        ("Number of Shapes: 3, 1 corner, 2 verticals", {"corner": 1, "vertical": 2}, False),
        ("Image with 2 shapes: 1 corner, 1 corner", {"corner": 2}, False),
        ("Image with 3 shapes: 1 corner, 2 corners", {"corner": 3}, False),
        ("Image with 2 shapes: 2 corner", {"corner": 2}, False),
        ("Image with 1 shapes: 1 corner", {"corner": 1}, False),
        ("Image with 2 shapes: 1 corner", {"corner": 1}, False),
        ("Image with 1 shape: 1 corner.", {"corner": 1}, False),
        ("Image with 1 shape: 1 curve", {}, False),
        ("Image with 1 shape", {}, False),
        ("10 squares", {}, False),
        ("fzzllmhvzzzz", {}, False),
        ("", {}, False),
    ],
)
def test_parse_variants(text: str, expected: dict[str, int], well_formed: bool) -> None:
    parsed = parse_description(text)
    assert nonzero(parsed.counts) == expected
    assert parsed.well_formed is well_formed
    assert set(parsed.counts) == set(SHAPES)


def test_anti_diagonal_never_counts_as_diagonal() -> None:
    for text in ["1 anti-diagonal", "1 anti diagonal", "1 antidiagonal", "1 anti-diagonal line"]:
        parsed = parse_description(f"Image with 1 shape: {text}")
        assert parsed.counts["diagonal"] == 0
        assert parsed.counts["anti-diagonal"] == 1


def test_stated_totals() -> None:
    assert parse_description("Image with 3 number of shapes").total == 3
    assert parse_description("### Output: Number of Shapes: 2\n1 corner, 1 ellipse").total == 2
    assert parse_description("1 corner, 1 ellipse").total is None
    parsed = parse_description("Image with 5 shapes: 1 corner")
    assert parsed.total == 5 and not parsed.total_matches


def test_vector_property() -> None:
    parsed = parse_description("Image with 2 shapes: 1 crossing, 1 diagonal")
    assert parsed.vector.tolist() == [1, 0, 0, 0, 0, 0, 0, 1]


counts_strategy = st.permutations(list(SHAPES)).flatmap(
    lambda order: st.tuples(*[st.integers(0, 4) for _ in order]).map(
        lambda values: dict(zip(order, values, strict=True))
    )
)


@given(counts_strategy, st.booleans())
def test_round_trip(counts: dict[str, int], signifier: bool) -> None:
    text = format_description(counts)
    parsed = parse_description(f"{OUTPUT_SIGNIFIER} {text}" if signifier else text)
    assert parsed.counts == dict(counts)
    assert parsed.well_formed and parsed.total_matches
    assert parsed.total == sum(counts.values())
    assert parsed.text == text
    assert counts_from_vector(counts_to_vector(counts)) == {s: counts[s] for s in SHAPES}


@given(counts_strategy, st.text(alphabet="zlmhvf", min_size=3, max_size=40))
def test_round_trip_with_activation_run_on(counts: dict[str, int], tail: str) -> None:
    text = format_description(counts)
    parsed = parse_description(f"{text}\n{tail}")
    assert parsed.counts == dict(counts)
    assert parsed.well_formed


@settings(max_examples=300)
@given(st.text())
def test_parse_never_raises(text: str) -> None:
    parsed = parse_description(text)
    assert set(parsed.counts) == set(SHAPES)
    assert all(v >= 0 for v in parsed.counts.values())
    assert parsed.total_matches == (parsed.total == sum(parsed.counts.values()))
    if parsed.well_formed:
        assert parsed.total_matches


@given(st.text(alphabet="0123456789 ,:#\n-Imagewithshapescornerdiagonalanti"))
def test_parse_never_raises_on_near_misses(text: str) -> None:
    parse_description(text)
    parse_description(OUTPUT_SIGNIFIER + text)


# --- counts are whole non-negative numbers standing alone ----------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "total"),
    [
        ("Image with 1 shape: 1.5 corner", {}, 1),
        ("Image with 5 shapes: 1.5 corners", {}, 5),
        ("Image with 1 shape: -1 corner", {}, 1),
        ("Image with 2 shapes: +2 ellipses", {}, 2),
        ("Image with 2 shapes: 2,5 corners", {}, 2),
        ("Image with 3 shapes: 1 corner, 0.5 vertical, 2 ellipses", {"corner": 1, "ellipse": 2}, 3),
        ("Image with 1.5 shapes: 1 corner", {"corner": 1}, None),
        ("Image with -2 shapes", {}, None),
        ("Number of Shapes: -3, 1 corner", {"corner": 1}, None),
        ("Image with 2 shapes: 1 corner,1 vertical", {"corner": 1, "vertical": 1}, 2),  # a comma is no decimal
    ],
)
def test_decimal_or_signed_numbers_are_not_counts(text: str, expected: dict[str, int], total: int | None) -> None:
    parsed = parse_description(text)
    assert nonzero(parsed.counts) == expected
    assert parsed.total == total
    assert not parsed.well_formed


@settings(max_examples=100)
@given(st.sampled_from(["-", "+", "1.", "12,", "0."]), st.integers(0, 99), st.sampled_from(SHAPES))
def test_a_count_with_a_sign_or_a_decimal_point_is_never_read(prefix: str, n: int, shape: str) -> None:
    parsed = parse_description(f"Image with {n} shapes: {prefix}{n} {shape}")
    assert parsed.counts[shape] == 0
    assert not parsed.well_formed


large_counts = st.permutations(list(SHAPES)).flatmap(
    lambda order: st.tuples(*[st.integers(0, 10**8) for _ in order]).map(
        lambda values: dict(zip(order, values, strict=True))
    )
)  # 8 × 10**8 < 10**9: the total still has at most 9 digits, the longest number L reads


@settings(max_examples=100)
@given(large_counts)
def test_a_formatted_description_parses_back_to_its_counts(counts: dict[str, int]) -> None:
    parsed = parse_description(format_description(counts))
    assert parsed.counts == dict(counts)
    assert parsed.total == sum(counts.values()) and parsed.well_formed


@settings(max_examples=100)
@given(st.text(alphabet="0123456789.,+- Imagewthspcornlv:", max_size=60))
def test_counts_are_non_negative_ints_whatever_the_text(text: str) -> None:
    parsed = parse_description(text)
    assert all(type(v) is int and v >= 0 for v in parsed.counts.values())
    assert parsed.total is None or (type(parsed.total) is int and parsed.total >= 0)
