"""Reading sizes and growth limits written by users: 200MB, 1.5GiB, 5%."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import UsageError

__all__ = ["parse_size", "parse_ratio", "Growth", "parse_growth"]

_UNITS = {
    "": 1, "b": 1,
    "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6,
    "g": 10**9, "gb": 10**9, "t": 10**12, "tb": 10**12,
    "ki": 2**10, "kib": 2**10, "mi": 2**20, "mib": 2**20,
    "gi": 2**30, "gib": 2**30, "ti": 2**40, "tib": 2**40,
}  # fmt: skip

_SIZE = re.compile(r"^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)([a-z]*)$")


def parse_size(text: str | int, *, what: str = "size") -> int:
    """Return the number of bytes a size such as ``200MB`` or ``1.5GiB`` means.

    Decimal units (kB, MB, GB) are powers of 1000, binary units (KiB, MiB,
    GiB) powers of 1024; a bare number is bytes.
    """
    if isinstance(text, bool):
        raise UsageError(f"{what} {text!r} is not a size such as 200MB or 1.5GiB")
    if isinstance(text, int):
        if text < 0:
            raise UsageError(f"{what} {text} is negative")
        return text
    match = _SIZE.match(str(text).strip().lower().replace(" ", ""))
    if match is None or match.group(2) not in _UNITS:
        raise UsageError(f"{what} {text!r} is not a size such as 200MB or 1.5GiB")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def parse_ratio(text: str | float, *, what: str = "ratio") -> float:
    """Return a fraction from ``0.95`` (0 to 1) or ``95%`` (with its sign).

    A bare number above 1 is refused rather than guessed to be a
    percentage, so that ``1.5`` never silently means 1.5%.
    """
    forms = "a fraction from 0 to 1 such as 0.95, or a percentage such as 95%"
    stripped = str(text).strip()
    try:
        if isinstance(text, bool):
            raise ValueError
        if stripped.endswith("%"):
            value = float(stripped[:-1]) / 100
        else:
            value = float(stripped)
    except ValueError:
        raise UsageError(f"{what} {text!r} is not {forms}") from None
    if not 0 <= value <= 1:
        raise UsageError(f"{what} {text!r} is out of range: give {forms}")
    return value


@dataclass(frozen=True, slots=True)
class Growth:
    """A growth limit: a share of the baseline, or a number of bytes."""

    ratio: float | None = None
    size: int | None = None

    def limit(self, baseline: int) -> int:
        """Return the largest size allowed when the baseline was ``baseline``."""
        if self.ratio is not None:
            return baseline + int(baseline * self.ratio)
        return baseline + (self.size or 0)

    def __str__(self) -> str:
        if self.ratio is not None:
            return f"{self.ratio * 100:g}%"
        return f"{self.size} B"


def parse_growth(text: str) -> Growth:
    """Return the growth limit of ``5%`` or ``10MB``."""
    stripped = str(text).strip()
    if stripped.endswith("%"):
        try:
            value = float(stripped[:-1]) / 100
        except ValueError:
            raise UsageError(f"growth {text!r} is not such as 5% or 10MB") from None
        if value < 0:
            raise UsageError(f"growth {text!r} is negative")
        return Growth(ratio=value)
    return Growth(size=parse_size(stripped, what="growth"))
