"""The structured description language L (§3.1): format and parse shape descriptions.

A description names the total and the count of each shape type:

    Image with 3 shapes: 1 corner, 1 vertical, 1 checkerboard

`format_description` writes that canonical form; `parse_description` reads what an
interpreter actually generates, which may carry the `### Output:` signifier, loose
wording ("2 vertical lines", "anti diagonal") or a run-on into activation characters
(§4, figure 5: "... 1 crossing, 1hhhv"). Parsing never raises.

Synonyms the parser accepts (case-insensitive, any spacing):

- "<shape> line(s)" for diagonal, anti-diagonal, vertical, horizontal;
- "anti-diagonal", "anti diagonal", "antidiagonal" (never counted as "diagonal");
- "checker board", "checker-board", "chequerboard", "... pattern(s)";
- "ellipsis", "circle(s)" and "oval(s)" count as ellipse: a circle is an ellipse with
  equal axes and the generator's ellipses include near-circles ("curves" are *not*
  counted; §4 treats them as outside L);
- "cross", "crosses", "intersection(s)" count as crossing;
- "Image with 3 number of shapes" (the §3.1 template wording), "Number of Shapes: 3"
  and "3 shapes" as the stated total.

Counts must be written in ASCII digits (at most 9 of them) and stand alone as a whole
non-negative number; number words are not read. A number that is part of a decimal or
carries a sign ("1.5 corners", "2,5 corners", "-1 corner", "+2 ellipses") is not a count:
that item is not counted, and the text is not well formed. The same holds for a stated
total ("Image with 1.5 shapes" states none).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

SHAPES: tuple[str, ...] = (
    "diagonal",
    "anti-diagonal",
    "vertical",
    "horizontal",
    "checkerboard",
    "ellipse",
    "corner",
    "crossing",
)
"""Every shape name in L, canonical singular form, canonical order."""

SYNTH_SHAPES: tuple[str, ...] = SHAPES[:7]
"""§3.1: the set S the synthetic generator draws; "crossing" only occurs in MNIST labels."""

PLURALS: dict[str, str] = {
    "diagonal": "diagonals",
    "anti-diagonal": "anti-diagonals",
    "vertical": "verticals",
    "horizontal": "horizontals",
    "checkerboard": "checkerboards",
    "ellipse": "ellipses",
    "corner": "corners",
    "crossing": "crossings",
}

OUTPUT_SIGNIFIER = "### Output:"
"""§3.1: the signifier that precedes a description in a training instance."""


def _checked_count(name: str, value: object) -> int:
    if name not in PLURALS:
        raise ValueError(f"unknown shape {name!r}; expected one of {SHAPES}")
    count = operator.index(value)  # type: ignore[arg-type]
    if count < 0:
        raise ValueError(f"negative count {count} for {name!r}")
    return count


def format_description(counts: Mapping[str, int]) -> str:
    """Write `counts` in the canonical form of L.

    Items follow the mapping's insertion order and zero counts are left out, so
    `{"corner": 1, "vertical": 1, "checkerboard": 1}` gives
    "Image with 3 shapes: 1 corner, 1 vertical, 1 checkerboard" and `{}` gives
    "Image with 0 shapes". Unknown names or negative counts raise ValueError.
    """
    items = []
    total = 0
    for name, value in counts.items():
        count = _checked_count(name, value)
        total += count
        if count:
            items.append(f"{count} {name if count == 1 else PLURALS[name]}")
    head = f"Image with {total} {'shape' if total == 1 else 'shapes'}"
    return f"{head}: {', '.join(items)}" if items else head


def counts_to_vector(counts: Mapping[str, int], shapes: tuple[str, ...] = SHAPES) -> np.ndarray:
    """Counts as an int64 array `[len(shapes)]` in `shapes` order (default: all of SHAPES).

    A non-zero count for a name not in `shapes` raises ValueError, as does an unknown name.
    """
    vec = np.zeros(len(shapes), dtype=np.int64)
    for name, value in counts.items():
        count = _checked_count(name, value)
        if name in shapes:
            vec[shapes.index(name)] = count
        elif count:
            raise ValueError(f"{name!r} is not one of {shapes}")
    return vec


def counts_from_vector(vec: object) -> dict[str, int]:
    """An int vector in SHAPES order (length 8) or SYNTH_SHAPES order (length 7) as a dict.

    The dict holds every name of the matching tuple, zeros included, in canonical order.
    """
    arr = np.asarray(vec)
    if arr.ndim != 1 or len(arr) not in (len(SHAPES), len(SYNTH_SHAPES)):
        raise ValueError(f"expected a vector of length 8 or 7, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"expected integer counts, got dtype {arr.dtype}")
    if (arr < 0).any():
        raise ValueError(f"negative count in {arr.tolist()}")
    names = SHAPES if len(arr) == len(SHAPES) else SYNTH_SHAPES
    return {name: int(c) for name, c in zip(names, arr.tolist(), strict=True)}


# ---------------------------------------------------------------------------------------
# Parsing

_FLAGS = re.IGNORECASE | re.ASCII
_LINE = r"(?:s)?(?:[ \t]+lines?)?"
# Ordered so that "anti-diagonal" is tried before "diagonal" at the same position.
_SHAPE_PATTERNS: tuple[tuple[str, str], ...] = (
    ("anti-diagonal", r"anti[\s_-]*diagonal" + _LINE),
    ("diagonal", r"diagonal" + _LINE),
    ("vertical", r"vertical" + _LINE),
    ("horizontal", r"horizontal" + _LINE),
    ("checkerboard", r"che(?:ck|qu)er[\s_-]*boards?(?:[ \t]+patterns?)?"),
    ("ellipse", r"(?:ellips(?:es|e|is)|circles?|ovals?)"),
    ("corner", r"corners?"),
    ("crossing", r"(?:crossings?|cross(?:es)?|intersections?)"),
)
# A count stands alone: not part of a decimal ("1.5", "2,5") nor signed ("-1", "+2").
_NUMBER = r"(?<![0-9+-])(?<![0-9][.,])([0-9]{1,9})(?![0-9])(?![.,][0-9])"
_ITEM_RE = re.compile(
    _NUMBER + r"\s*(?:" + "|".join(f"({p})" for _, p in _SHAPE_PATTERNS) + r")(?![a-z])",
    _FLAGS,
)
_SIGNIFIER_RE = re.compile(r"\s*#{3}\s*output\s*:\s*", _FLAGS)
_NUMBER_OF_SHAPES_RE = re.compile(r"number\s+of\s+shapes\s*:\s*", _FLAGS)
_ANY_SHAPE = "|".join(p for _, p in _SHAPE_PATTERNS)
_BARE_TOTAL_RE = re.compile(_NUMBER + r"(?!\s*(?:" + _ANY_SHAPE + r")(?![a-z]))", _FLAGS)
_TOTAL_RE = re.compile(r"(?:image\s+with\s+)?" + _NUMBER + r"\s*(?:number\s+of\s+)?shapes?(?![a-z])", _FLAGS)
_TOKEN_RE = re.compile(r"[^\s,:;.!?()\[\]\"]+")  # words and numbers between separators
_SYMBOL_RE = re.compile(r"[^A-Za-z0-9'_-]")
_ACTIVATION_ALPHABET = "zlmhvf"  # §3.2: the z/l/m/h/v bins and the 'f' filter delimiter
_VOCABULARY = frozenset(
    "image images with number numbers of shape shapes and line lines the a an total "
    "diagonal diagonals anti antidiagonal antidiagonals anti-diagonal anti-diagonals "
    "vertical verticals horizontal horizontals checker checkers board boards checkerboard "
    "checkerboards checker-board checker-boards chequerboard chequerboards pattern patterns "
    "ellipse ellipses ellipsis circle circles oval ovals corner corners crossing crossings "
    "cross crosses intersection intersections".split()
)

_LINE_STARTS = _VOCABULARY - {"the", "a", "an", "with", "of", "total"}
_CANONICAL_HEAD_RE = re.compile(r"Image with (0|[1-9][0-9]{0,8}) (shapes?)(?:: (.+))?", re.ASCII)
_CANONICAL_ITEM_RE = re.compile(r"([1-9][0-9]{0,8}) ([a-z-]+)", re.ASCII)
_SINGULAR_OF = {**{s: s for s in SHAPES}, **{p: s for s, p in PLURALS.items()}}


@dataclass(frozen=True)
class ParsedDescription:
    """What `parse_description` read from one generated text."""

    counts: dict[str, int]
    """Count per shape, every name of SHAPES present; repeated mentions add up."""
    total: int | None
    """The total the text states ("Image with N shapes"), None if it states none."""
    well_formed: bool
    """The part read is exactly canonical: `Image with N shape(s)[: item(, item)*]`."""
    total_matches: bool
    """The stated total equals the sum of the counts."""
    text: str
    """The description part actually read (signifier removed, run-on cut off, stripped)."""
    rest: str = ""
    """What followed the part read and was ignored (a `###` marker, activation run-on...)."""

    @property
    def vector(self) -> np.ndarray:
        """Counts as int64 `[8]` in SHAPES order."""
        return counts_to_vector(self.counts)


def _looks_like_activations(token: str, alphabet: str) -> bool:
    """True for a token (letters, digits, '-', '_' and "'") that reads as encoded activations."""
    core = token.strip("-_'").lower()
    if not core:
        return False
    if core.isdigit():
        return len(core) > 9  # a count has at most 9 digits; longer runs are encodings
    if core in _VOCABULARY:
        return False
    digits = core.rstrip("abcdefghijklmnopqrstuvwxyz-_'")
    if digits:  # a number glued to letters: "3corners" is fine, "1hhhv" is not
        return not (digits.isdigit() and core[len(digits) :] in _VOCABULARY)
    if len(core) >= 3 and set(core) <= set(alphabet):
        return True
    if re.search(r"(.)\1\1", core):  # "zzz", "aaab": no description word triples a letter
        return True
    return len(core) > 20 or (len(core) >= 6 and len(set(core)) <= 3)


def _read_extent(body: str, alphabet: str) -> int:
    """Index in `body` where the first description ends."""
    marker = body.find("###")
    if marker >= 0:
        body = body[:marker]
    prev = 0
    for m in _TOKEN_RE.finditer(body):
        token = m.group()
        symbol = _SYMBOL_RE.search(token)  # e.g. "</s>" or a compact encoding's symbols
        head = token[: symbol.start()] if symbol else token
        if head and _looks_like_activations(head, alphabet):
            return m.start()
        if prev > 0 and head.lower() == "image":
            return m.start()  # a second description begins: read only the first
        starts_line = head[:1].isdigit() or head.lower() in _LINE_STARTS
        if prev > 0 and "\n" in body[prev : m.start()] and not starts_line:
            return m.start()  # a new line that is not description text
        if symbol:
            return m.start() + symbol.start()
        prev = m.end()
    return len(body)


def _is_canonical(text: str) -> bool:
    head = _CANONICAL_HEAD_RE.fullmatch(text)
    if head is None:
        return False
    total = int(head.group(1))
    if (head.group(2) == "shape") != (total == 1):
        return False
    if head.group(3) is None:
        return total == 0
    seen: set[str] = set()
    acc = 0
    for item in head.group(3).split(", "):
        m = _CANONICAL_ITEM_RE.fullmatch(item)
        if m is None or m.group(2) not in _SINGULAR_OF:
            return False
        count, word = int(m.group(1)), m.group(2)
        name = _SINGULAR_OF[word]
        if name in seen or word != (name if count == 1 else PLURALS[name]):
            return False
        seen.add(name)
        acc += count
    return acc == total


def parse_description(text: str, *, alphabet: str = _ACTIVATION_ALPHABET) -> ParsedDescription:
    """Read the first description in `text`; never raises.

    A leading `### Output:` (or `### Output: Number of Shapes:`) is removed. Reading stops
    at the next `###` marker, at a chunk that looks like encoded activations (letters
    only from `alphabet` and at least 3 long, a number glued to non-words like "1hhhv",
    symbols, a letter tripled...) or at a new line that does not start like description
    text. Pass the encoder's `alphabet` when it is not the paper's z/l/m/h/v + f.

    A count is a whole number of at most 9 ASCII digits standing alone: "1.5 corners",
    "-1 corner" or "+2 ellipses" are not read as counts (that item adds nothing to `counts`)
    and such a text is never `well_formed`; likewise "Image with 1.5 shapes" states no total.
    """
    if not isinstance(text, str):
        text = str(text)
    body = text.removeprefix("<s>")  # a decoded BOS token
    m = _SIGNIFIER_RE.match(body)
    if m:
        body = body[m.end() :]
    body = body.lstrip()
    m = _NUMBER_OF_SHAPES_RE.match(body)
    stated_total: int | None = None
    if m:
        body = body[m.end() :]
        bare = _BARE_TOTAL_RE.match(body)
        if bare:  # "Number of Shapes: 3, 1 corner, ..."
            stated_total = int(bare.group(1))
    end = _read_extent(body, alphabet)
    read = body[:end].strip()
    rest = body[end:]

    counts = dict.fromkeys(SHAPES, 0)
    for item in _ITEM_RE.finditer(read):
        name = next(n for (n, _), g in zip(_SHAPE_PATTERNS, item.groups()[1:], strict=True) if g)
        counts[name] += int(item.group(1))
    if stated_total is None:
        total_m = _TOTAL_RE.search(read)
        stated_total = int(total_m.group(1)) if total_m else None
    total_matches = stated_total is not None and stated_total == sum(counts.values())
    return ParsedDescription(
        counts=counts,
        total=stated_total,
        well_formed=_is_canonical(read),
        total_matches=total_matches,
        text=read,
        rest=rest,
    )
