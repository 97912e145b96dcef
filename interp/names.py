"""Names that become folder names (datasets, runs, jobs): checked here, once, before a path is built.

A name is 1-64 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit. So it is
one path component (no '/', no '..'), never an option to a command (no leading '-'), and prints
on one line (no newline: the pattern is matched in full, where ``$`` would allow one at the end).
"""

from __future__ import annotations

import re

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""A safe name, matched with ``fullmatch``."""


def is_safe_name(value: object) -> bool:
    """True for a string that `safe_name` accepts."""
    return isinstance(value, str) and NAME_RE.fullmatch(value) is not None


def safe_name(kind: str, value: object) -> str:
    """``value`` if it is a safe name, else ValueError saying what a ``kind`` (e.g. "run name") may be."""
    if not is_safe_name(value):
        raise ValueError(f"{kind} must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit "
                         f"(it becomes a folder name), got {value!r}")
    return value  # type: ignore[return-value]
