"""Normalising entry names: canonical results, and refusals of unsafe names."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from layerdiff.errors import UnsafePathError
from layerdiff.paths import MAX_PATH, normalize

# Components and separators that stress every rule: dot names, hidden
# names, empty components, a NUL, non-ASCII.
_PIECES = st.sampled_from(["a", "bc", ".", "..", ".x", "x.", "...", "é", "/", "\x00"])


@given(st.lists(_PIECES, max_size=12).map("".join))
def test_a_name_normalises_to_its_components_without_empty_and_dot_ones(name):
    parts = name.split("/")

    if "\x00" in name or ".." in parts:
        with pytest.raises(UnsafePathError):
            normalize(name)
        return
    path = normalize(name)

    components = path.split("/") if path else []
    assert components == [p for p in parts if p not in ("", ".")]
    assert normalize(path) == path


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("usr/bin/env", "usr/bin/env"),
        ("usr/lib/", "usr/lib"),
        ("./usr/lib/", "usr/lib"),
        ("/etc//passwd", "etc/passwd"),
        ("etc/./x/.", "etc/x"),
        (".bashrc", ".bashrc"),
        ("home/u/.cache/", "home/u/.cache"),
        ("./", ""),
        ("", ""),
    ],
)
def test_common_names_normalise_as_expected(name, expected):
    assert normalize(name) == expected


@pytest.mark.parametrize("name", ["..", "a/../../b", "a/..", "../", "a\x00b"])
def test_names_that_would_escape_or_hold_a_nul_are_refused(name):
    with pytest.raises(UnsafePathError):
        normalize(name)


def test_a_name_longer_than_path_max_is_refused_even_when_canonical():
    with pytest.raises(UnsafePathError, match="longer than"):
        normalize("a" * (MAX_PATH + 1))
