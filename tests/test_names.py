"""interp.names: the one check for names that become folder names."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interp.names import NAME_RE, is_safe_name, safe_name


@pytest.mark.parametrize("name", ["default", "run-1", "a", "mistral_7b.v2", "A" * 64, "0..1", "x-"])
def test_plain_names_pass(name: str) -> None:
    assert safe_name("run name", name) == name and is_safe_name(name)


@pytest.mark.parametrize(
    "name",
    ["", ".", "..", "../x", "../../x", "a/b", "a\\b", "/abs", "run\n", "run\r\n", "\nrun", "-rf", ".hidden",
     "a b", "a;b", "é", "A" * 65, "run\x00", None, 3, ["a"]],
)
def test_names_that_are_not_one_plain_folder_name_raise(name: object) -> None:
    with pytest.raises(ValueError, match=r"^dataset name must be 1-64 letters, digits.*got "):
        safe_name("dataset name", name)
    assert not is_safe_name(name)


def test_a_trailing_newline_no_longer_passes() -> None:
    # `^...$` with re.match accepts "run\n": $ matches before a final newline.
    assert NAME_RE.fullmatch("run\n") is None
    with pytest.raises(ValueError, match=r"'run\\n'"):
        safe_name("run name", "run\n")


@settings(max_examples=100)
@given(st.text(max_size=70))
def test_a_safe_name_is_one_path_component_on_one_line(text: str) -> None:
    if not is_safe_name(text):
        with pytest.raises(ValueError):
            safe_name("run name", text)
        return
    assert "/" not in text and "\\" not in text and text not in (".", "..")
    assert not text.startswith(("-", ".")) and text == text.strip() and "\n" not in text
