r"""Wording shared by messages and tables: counts that agree in number, and
names shown safely.

A file name is bytes; one that is not UTF-8 is read with surrogateescape,
so each undecodable byte becomes a lone surrogate (U+DC80 to U+DCFF).
Everything we print shows such a byte as the four characters ``\xHH``:
JSON stays valid UTF-8, and a table cell keeps the byte's value. Tables
also show control characters escaped (``\n``, ``\t``, ``\x1b``, and C1
controls as ``\u0085``) so that a name never splits or recolours a row;
escaping comes before column widths are measured.
"""

from __future__ import annotations

import re

__all__ = ["counted", "escape_undecodable", "shown"]

_UNDECODABLE = re.compile("[\udc80-\udcff]")
_UNSAFE = re.compile("[\udc80-\udcff\x00-\x1f\x7f-\x9f]")
_NAMED = {"\n": r"\n", "\t": r"\t", "\r": r"\r"}


def _byte(match: re.Match[str]) -> str:
    char = match.group(0)
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if 0x80 <= code <= 0x9F:  # a C1 control: a character, not a stray byte
        return f"\\u{code:04x}"
    return f"\\x{code - 0xDC00 if code >= 0xDC80 else code:02x}"


def escape_undecodable(text: str) -> str:
    r"""Write each undecodable byte of a name as ``\xHH``."""
    return _UNDECODABLE.sub(_byte, text)


def shown(text: str) -> str:
    """Return a name for a table cell or a line: bytes and controls escaped."""
    return _UNSAFE.sub(_byte, text)


def counted(number: int, noun: str, plural: str | None = None) -> str:
    """Return ``1 path``, ``2 paths``; ``plural`` for nouns like entry/entries."""
    if number == 1:
        return f"{number} {noun}"
    return f"{number} {plural or noun + 's'}"
