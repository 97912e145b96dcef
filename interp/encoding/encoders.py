"""The encoding function c of §3.2: conv1 activations [8, 14, 14] → text for the interpreter.

Two steps. `bin_activations` maps every activation to one of five levels with the filter's
thresholds (`interp.encoding.thresholds`): 0..4 = z, l, m, h, v (zero, low, medium, high, very high).
An *encoder* then writes the binned maps [8, 14, 14] as text; every encoder is registered by
name and has an exact inverse, ``decode``. Both steps work the same on any registered layer
(`interp.target.layers`): conv2's [16, 7, 7] maps are 16 filters of 7 rows of 7 cells; the figures
below are conv1's.

- ``paper``: §3.2 as published: each filter's 14×14 map row-major, preceded by the delimiter
  ``f``; 8 × 197 = 1,576 characters, ~900 SmolLM2 tokens (the tokenizer barely merges them).
- ``rle``: ``paper`` with every run of ≥ 3 ``z`` written as ``z`` + its length (``z12``).
- ``compact``: one line per map row, cells written as syllable-like words of 1–4 letters,
  each word one SmolLM2 token; runs of "no signal" become indentation and spaces. ~40 % of the
  paper encoding's tokens (see `CompactEncoder`).
"""

from __future__ import annotations

import itertools
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from functools import lru_cache
from typing import ClassVar

import numpy as np

from interp.encoding.thresholds import N_FILTERS, ThresholdSet, threshold_table
from interp.target.layers import LAYERS, Layer, layer_of_channels, layer_of_shape

LETTERS = "zlmhv"
"""§3.2 level letters for bins 0..4: zero, low, medium, high, very high."""
DELIMITER = "f"
"""§3.2: "we segmented the character-encoded values from each activation map using the delimiter 'f'"."""
SIDE = 14
"""conv1's map side (and CELLS its cells per map); a map's own shape says its layer's (`interp.target.layers`)."""
CELLS = SIDE * SIDE
DEFAULT_ENCODER = "paper"


def bin_activations(acts: np.ndarray, thresholds: ThresholdSet | np.ndarray) -> np.ndarray:
    """Activations [b, C, S, S] or [C, S, S] of a registered layer ([b, 8, 14, 14] for conv1, [b, 16, 7, 7]
    for conv2) with that layer's [C, 4] thresholds → int8 bins 0..4 of the same shape (§3.2).

    z (0) if a ≤ t1, l (1) if t1 < a ≤ t2, m (2) if t2 < a ≤ t3, h (3) if t3 < a ≤ t4, v (4) if a > t4;
    i.e. the bin is the number of the filter's thresholds strictly below a. t1 = 0 gives the
    paper's "z if a ≤ 0". The layer is read from the activations' shape; a threshold set (or table)
    made for another layer is a ValueError naming both (`threshold_table`).
    """
    a = np.asarray(acts)
    layer = layer_of_shape(a.shape, "activations")
    t = threshold_table(thresholds, layer)
    if not np.isfinite(a).all():
        raise ValueError("activations contain NaN or inf")
    t = t.reshape(layer.channels, 1, 1, 4)
    bins = np.zeros(a.shape, dtype=np.int8)
    for k in range(4):  # four broadcast comparisons; no [.., 4] temporary
        bins += a > t[..., k]
    return bins


def _check_bins(bins: np.ndarray, batched: bool) -> np.ndarray:
    """uint8 bins [b, C, S, S] (``batched``) or [C, S, S] of a registered layer; ValueError otherwise."""
    b = np.asarray(bins)
    layer_of_shape(b.shape, "bins", ndims=(4,) if batched else (3,))
    if b.dtype.kind not in "iu" or (b.size and (b.min() < 0 or b.max() > 4)):
        raise ValueError("bins must be integers 0..4 (z, l, m, h, v)")
    return b.astype(np.uint8, copy=False)


def _layer_where(fits: Callable[[Layer], bool], expected: Callable[[Layer], str], got: str, what: str) -> Layer:
    """The one registered layer whose encoding ``fits`` the text, or a ValueError listing each layer's form."""
    found = [layer for layer in LAYERS.values() if fits(layer)]
    if len(found) != 1:  # the forms are disjoint for the registered layers (tests check it)
        raise ValueError(f"{what} {' or '.join(expected(layer) for layer in LAYERS.values())}, got {got}")
    return found[0]


class Encoder(ABC):
    """A text form of binned maps [C, S, S] of any registered layer (conv1: [8, 14, 14]) with an exact inverse.

    ``decode`` infers the layer from the text instead of taking it as an argument: each registered
    layer's encoding has its own size (paper: characters, rle: delimiters, compact: lines), so the text
    already says which layer it is and an argument could only contradict it; and every caller
    (interpreters, datasets, evaluation) keeps calling ``decode(text)`` as before layers existed.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def encode(self, bins: np.ndarray) -> str:
        """bins [C, S, S] ([8, 14, 14] for conv1) → text."""
        return self._encode_batch(_check_bins(bins, batched=False)[None])[0]

    def encode_batch(self, bins: np.ndarray) -> list[str]:
        """bins [b, C, S, S] ([b, 8, 14, 14] for conv1) → b texts."""
        return self._encode_batch(_check_bins(bins, batched=True))

    @abstractmethod
    def _encode_batch(self, bins: np.ndarray) -> list[str]:
        """Checked uint8 bins [b, C, S, S] of one registered layer → b texts."""

    @abstractmethod
    def decode(self, text: str) -> np.ndarray:
        """text → int8 bins [C, S, S] of the layer the text is written for ([8, 14, 14] for conv1);
        ValueError saying what is wrong if the text is malformed."""


_ENCODERS: dict[str, Encoder] = {}


def register_encoder(name: str) -> Callable[[type[Encoder]], type[Encoder]]:
    """Class decorator: register one instance of an `Encoder` subclass under ``name``."""

    def deco(cls: type[Encoder]) -> type[Encoder]:
        if name in _ENCODERS:
            raise ValueError(f"encoder {name!r} is already registered")
        cls.name = name
        _ENCODERS[name] = cls()
        return cls

    return deco


def get_encoder(name: str) -> Encoder:
    try:
        return _ENCODERS[name]
    except KeyError:
        raise ValueError(f"unknown encoder {name!r}; registered: {', '.join(_ENCODERS)}") from None


def list_encoders() -> list[str]:
    """Registered encoder names, ``paper`` first."""
    return list(_ENCODERS)


def encode_activations(
    acts: np.ndarray, thresholds: ThresholdSet | np.ndarray, encoder: str = DEFAULT_ENCODER
) -> list[str]:
    """Activations [b, C, S, S] (or one [C, S, S]) of a registered layer → one text per sample."""
    bins = bin_activations(acts, thresholds)
    return get_encoder(encoder).encode_batch(bins if bins.ndim == 4 else bins[None])


# --- paper -------------------------------------------------------------------------------

_LETTER_BYTES = np.frombuffer(LETTERS.encode(), dtype=np.uint8)
_LEVEL_OF_BYTE = np.full(256, -1, dtype=np.int8)
_LEVEL_OF_BYTE[_LETTER_BYTES] = np.arange(5)
PAPER_LENGTH = N_FILTERS * (1 + CELLS)
"""conv1's paper encoding: 8 × (1 + 196) = 1,576 characters (conv2's: 16 × (1 + 49) = 800)."""


def paper_length(layer: Layer) -> int:
    """Characters of ``layer``'s paper encoding: one 'f' + one letter per cell, per filter."""
    return layer.channels * (1 + layer.cells)


@register_encoder("paper")
class PaperEncoder(Encoder):
    """§3.2: ``f`` + 196 letters per filter, filters 0..7, rows row-major: 1,576 characters (conv1).

    Another layer the same way: conv2 is 16 × (``f`` + 49 letters) = 800 characters.
    """

    description = "§3.2 as published: 'f' + 196 letters z/l/m/h/v per filter (1,576 characters)"

    def _encode_batch(self, bins: np.ndarray) -> list[str]:
        b, c, side, _ = bins.shape
        cells = side * side
        chars = np.empty((b, c, 1 + cells), dtype=np.uint8)
        chars[:, :, 0] = ord(DELIMITER)
        chars[:, :, 1:] = _LETTER_BYTES[bins.reshape(b, c, cells)]
        flat = chars.reshape(b, c * (1 + cells))
        return [row.tobytes().decode("ascii") for row in flat]

    def decode(self, text: str) -> np.ndarray:
        # The layer is the one whose length the text has: 1,576 characters for conv1, 800 for conv2.
        layer = _layer_where(lambda lay: len(text) == paper_length(lay),
                             lambda lay: (f"{paper_length(lay)} characters ({lay.name}: "
                                          f"{lay.channels} × 'f' + {lay.cells})"),
                             str(len(text)), "paper encoding must be")
        c, cells = layer.channels, layer.cells
        try:
            raw = np.frombuffer(text.encode("ascii"), dtype=np.uint8).reshape(c, 1 + cells)
        except UnicodeEncodeError:
            raise ValueError("paper encoding must be ASCII letters") from None
        bad = np.flatnonzero(raw[:, 0] != ord(DELIMITER))
        if bad.size:
            raise ValueError(f"filter {bad[0]}: expected delimiter 'f' at position {bad[0] * (1 + cells)}")
        levels = _LEVEL_OF_BYTE[raw[:, 1:]]
        if (levels < 0).any():
            f, i = np.argwhere(levels < 0)[0]
            pos = f * (1 + cells) + 1 + i
            raise ValueError(f"filter {f}: unexpected character {text[pos]!r} at position {pos}; use {LETTERS}")
        return levels.reshape(layer.shape)


# --- rle ---------------------------------------------------------------------------------

_Z_RUN = re.compile(r"z{3,}")
_Z_COUNT = re.compile(r"z(\d+)")


@register_encoder("rle")
class RleEncoder(Encoder):
    """``paper`` with runs of ≥ 3 ``z`` (within a filter) written as ``z<length>``, e.g. ``z12``."""

    description = "paper letters, runs of 3+ 'z' written as z<count> (e.g. z12)"

    def _encode_batch(self, bins: np.ndarray) -> list[str]:
        sub = _Z_RUN.sub
        # Filters start with 'f', so a run never crosses a filter boundary.
        return [sub(lambda m: f"z{len(m.group())}", t) for t in get_encoder("paper")._encode_batch(bins)]

    def decode(self, text: str) -> np.ndarray:
        # 'f' is only ever a delimiter, so its count names the layer (8: conv1, 16: conv2) and the longest
        # run a filter can hold; the expanded text is then the paper encoding, which checks the rest.
        layer = layer_of_channels(text.count(DELIMITER))
        most = layer.cells if layer is not None else max(lay.cells for lay in LAYERS.values())

        def expand(m: re.Match) -> str:
            n = int(m.group(1))
            if not 1 <= n <= most:
                raise ValueError(f"run length z{n} at position {m.start()} is outside 1..{most}")
            return "z" * n

        return get_encoder("paper").decode(_Z_COUNT.sub(expand, text))


# --- compact -----------------------------------------------------------------------------

WORD_ALPHABETS = ("pbmsc", "euaio", "drtnl", "estdl")
"""Letter for level z, l, m, h, v (in that order) at the 1st, 2nd, 3rd and 4th letter of a word."""
GAP_MIN = 3
"""Inside a row, a run of at least this many z cells becomes spaces; shorter runs are written as letters."""
SINGLE_TOKEN_WORDS = frozenset("""
pe pu pa pi po be bu ba bi bo me mu ma mi mo se su sa si so ce cu ca ci co ped per pet pen pel pur
put pun pul pad par pat pan pal pid pir pit pin pil pod por pot pol bed ber bet ben bel bud bur but
bun bul bad bar bat ban bal bid bir bit bin bil bod bor bot bon bol med mer met men mel mud mur mut
mun mul mad mar mat man mal mid mir mit min mil mod mor mot mon mol sed ser set sen sel sur sut sun
sul sad sar sat san sal sid sir sit sin sil sod sor son sol cer cet cel cur cut cul cad car cat can
cal cir cit cin cod cor cot con col pere pers pert pets pens pent pend pure purs puts puls pull pads
padd pars part pane pans pant pand pale pals pall pits pine pins pint pile pill pods pore port pots
pont pond pole poll beds bere bets bene bent bend belt bell buds budd burs burd butt bund bull bare
bars bats batt bans band bald ball bids bird bite bits bins bind bile bill bore bots bott bone bond
bolt bold mere mete ment mend melt mell murd mund mule mult made mars mart mate mats matt mans mant
mand male malt mall mids mite mine mins mint mind mile mild mill mode more mort mont mole mold moll
sets sett sens sent send sell sure sund sadd sard sand sale salt side sire site sits sine sins silt
sore sort sons sole sold cere cert cens cent cele cell cure curs curl cute cuts cult care cars cart
card cate cats cane cans cant cand call cite code core cort cord cott cone cons cont cond cols cold
coll
""".split())
"""Words of 2–4 letters over `WORD_ALPHABETS` that SmolLM2 reads as one token (after a space).

Committed, not computed at import: `scripts/bench_encoding.py --derive-words` re-derives it from
the tokenizer and `tests/test_encoding.py` checks it. One-letter words are all single tokens.
"""

_LEVEL_OF_LETTER = tuple({ch: lv for lv, ch in enumerate(alpha)} for alpha in WORD_ALPHABETS)
_ROW_LINE = re.compile(r"(?: +[a-z]+)*")
_WORD = re.compile(r"( +)([a-z]+)")


def _word(cells: tuple[int, ...]) -> str:
    return "".join(WORD_ALPHABETS[k][lv] for k, lv in enumerate(cells))


def _word_table() -> dict[tuple[int, ...], tuple[str, int]]:
    """Every run of 1–4 cells → (word, SmolLM2 tokens); 4-letter words only where they are one token."""
    table = {}
    for length in range(1, len(WORD_ALPHABETS) + 1):
        for cells in itertools.product(range(5), repeat=length):
            w = _word(cells)
            single = length == 1 or w in SINGLE_TOKEN_WORDS
            if single or length < 4:
                table[cells] = (w, 1 if single else 2)
    return table


_WORDS = _word_table()


@lru_cache(maxsize=65536)
def _segment_words(seg: tuple[int, ...]) -> tuple[str, ...]:
    """Split one run of cells into words with the fewest SmolLM2 tokens (ties: fewer, longer-first words).

    4-letter words are used only where they are single tokens; 1–3-letter words always, at a cost of
    1 token (listed) or 2.
    """
    n = len(seg)
    best: list[tuple[int, int, int]] = [(0, 0, 0)] * (n + 1)  # (tokens, words, -first length) from i
    for i in range(n - 1, -1, -1):
        options = []
        for length in range(min(4, n - i), 0, -1):
            hit = _WORDS.get(seg[i : i + length])
            if hit is not None:
                tok, words, _ = best[i + length]
                options.append((tok + hit[1], words + 1, -length))
        best[i] = min(options)
    out, i = [], 0
    while i < n:
        length = -best[i][2]
        out.append(_WORDS[seg[i : i + length]][0])
        i += length
    return tuple(out)


@lru_cache(maxsize=65536)
def _row_line(row: bytes) -> str:
    """One row of levels (14 for conv1, 7 for conv2) → its line: each word preceded by 1 space + 1 per skipped z cell."""
    cells = tuple(row)
    nonzero = [i for i, c in enumerate(cells) if c]
    if not nonzero:
        return ""
    end = nonzero[-1] + 1  # trailing z cells are left out
    parts, i = [], 0
    while i < end:
        # i starts the row or a gap (a z run of ≥ GAP_MIN cells): skip to the next signal
        skip = 0
        while cells[i] == 0:
            skip, i = skip + 1, i + 1
        # the segment runs to the next gap (a z run ≥ GAP_MIN) or the row's last signal
        k = i
        while k < end:
            if cells[k] == 0:
                z = k
                while cells[z] == 0:
                    z += 1
                if z - k >= GAP_MIN:
                    break
                k = z
            else:
                k += 1
        words = _segment_words(cells[i:k])
        parts.append(" " * (skip + 1) + words[0])
        parts.extend(" " + w for w in words[1:])
        i = k
    return "".join(parts)


@register_encoder("compact")
class CompactEncoder(Encoder):
    """One line per map row; cells as syllable words of 1–4 letters, each ideally one SmolLM2 token.

    Layout per filter: a line ``f``, then 14 lines, one per row (top to bottom); conv2's 16 filters
    the same way with 7 lines of 7 cells each. A row line is a
    sequence of words, each preceded by one space plus one space per "no signal" (z) cell skipped
    before it: leading z cells become indentation, runs of ≥ `GAP_MIN` z cells become wider gaps,
    trailing z cells are dropped (an all-z row is an empty line). The i-th letter of a word is the
    level of the word's i-th cell in alphabet ``WORD_ALPHABETS[i]``:

        level      z  l  m  h  v
        letter 1   p  b  m  s  c
        letter 2   e  u  a  i  o
        letter 3   d  r  t  n  l
        letter 4   e  s  t  d  l

    e.g. ``   bat`` = z z l m m (2 skipped cells, then l m m). With its leading space a word is a real
    SmolLM2 token (English-like syllables: "bat", "cold", "mint"): all 1- and 2-letter words, 115 of
    the 125 3-letter words and the 174 4-letter words of `SINGLE_TOKEN_WORDS`; a newline with its
    indentation is one token too. Each run of cells between gaps is cut into words of 1–3 letters,
    or 4 where that word is one token, with the fewest tokens. The letter tables came from a
    coordinate search (one letter swap at a time) minimising SmolLM2 tokens on MNIST and
    synthetic-shape activations of the shipped target.
    """

    description = "one line per row: 1-4 cells per syllable-word token, indentation/spaces for 'z' runs"

    def _encode_batch(self, bins: np.ndarray) -> list[str]:
        texts = []
        for sample in bins:
            lines = []
            for fmap in sample:
                lines.append(DELIMITER)
                lines.extend(_row_line(row.tobytes()) for row in fmap)
            texts.append("\n".join(lines))
        return texts

    def decode(self, text: str) -> np.ndarray:
        lines = text.split("\n")

        def full(lay: Layer) -> int:
            return lay.channels * (1 + lay.side)

        # The layer is the one whose line count the text has: 120 for conv1, 128 for conv2, or up to
        # `side` fewer: trailing empty rows may have been stripped away with trailing whitespace.
        layer = _layer_where(lambda lay: full(lay) - lay.side <= len(lines) <= full(lay),
                             lambda lay: (f"{full(lay)} lines ({lay.name}: {lay.channels} × ('f' + "
                                          f"{lay.side} rows))"),
                             str(len(lines)), "compact encoding must have")
        side, want = layer.side, full(layer)
        lines += [""] * (want - len(lines))
        out = np.zeros(layer.shape, dtype=np.int8)
        for f in range(layer.channels):
            head = lines[f * (1 + side)]
            if head != DELIMITER:
                raise ValueError(f"filter {f}: expected a line 'f', got {head!r}")
            for r in range(side):
                line = lines[f * (1 + side) + 1 + r]
                where = f"filter {f} row {r}"
                if not _ROW_LINE.fullmatch(line):
                    raise ValueError(f"{where}: a row is words of letters, each after one or more spaces: {line!r}")
                col = 0
                for spaces, word in _WORD.findall(line):
                    col += len(spaces) - 1
                    if len(word) > len(WORD_ALPHABETS):
                        raise ValueError(f"{where}: word {word!r} is longer than {len(WORD_ALPHABETS)} letters")
                    if col + len(word) > side:
                        raise ValueError(f"{where}: the row runs past {side} cells at word {word!r}")
                    for k, ch in enumerate(word):
                        level = _LEVEL_OF_LETTER[k].get(ch)
                        if level is None:
                            raise ValueError(
                                f"{where}: letter {k + 1} of {word!r} must be one of {WORD_ALPHABETS[k]!r}"
                            )
                        out[f, r, col + k] = level
                    col += len(word)
        return out
