"""Wording shared by messages and tables: counts that agree in number."""

from __future__ import annotations

__all__ = ["counted"]


def counted(number: int, noun: str, plural: str | None = None) -> str:
    """Return ``1 path``, ``2 paths``; ``plural`` for nouns like entry/entries."""
    if number == 1:
        return f"{number} {noun}"
    return f"{number} {plural or noun + 's'}"
