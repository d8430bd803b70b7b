"""Project settings for audit, check and compare, read from a TOML file.

Settings live in ``.layerdiff.toml`` (keys at the top level) or in the
``[tool.layerdiff]`` table of ``pyproject.toml``; ``--config FILE`` names
either kind. Options given on the command line win over the file.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any

from .errors import UsageError
from .units import Growth, parse_growth, parse_ratio, parse_size

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["Budgets", "Settings", "load_settings", "find_config"]

_BUDGET_KEYS = {
    "max-size", "max-layer-size", "max-layers", "max-wasted",
    "min-efficiency", "max-growth", "baseline",
}  # fmt: skip
_TOP_KEYS = {"fail-on", "large", "disable", "ignore", "ignore-noise", "budgets"}


@dataclass(slots=True)
class Budgets:
    """The size limits ``check`` enforces; None means not checked."""

    max_size: int | None = None
    max_layer_size: int | None = None
    max_layers: int | None = None
    max_wasted: int | None = None
    min_efficiency: float | None = None
    max_growth: Growth | None = None
    baseline: str | None = None

    def merged(self, other: Budgets) -> Budgets:
        """Return these budgets with every value set in ``other`` overriding."""
        values = {
            name: getattr(other, name)
            if getattr(other, name) is not None
            else getattr(self, name)
            for name in self.__slots__
        }
        return Budgets(**values)

    def any_set(self) -> bool:
        return any(getattr(self, name) is not None for name in self.__slots__)


@dataclass(slots=True)
class Settings:
    """Everything a configuration file may set."""

    source: str | None = None
    fail_on: str | None = None
    large: int | None = None
    disable: frozenset[str] = frozenset()
    ignore: tuple[str, ...] = ()
    ignore_noise: bool = False
    budgets: Budgets = field(default_factory=Budgets)


def find_config(directory: str = ".") -> str | None:
    """Return the configuration file that applies in ``directory``, if any.

    ``.layerdiff.toml`` wins; ``pyproject.toml`` counts only when it has a
    ``[tool.layerdiff]`` table.
    """
    candidate = os.path.join(directory, ".layerdiff.toml")
    if os.path.isfile(candidate):
        return candidate
    candidate = os.path.join(directory, "pyproject.toml")
    if os.path.isfile(candidate):
        data = _read_toml(candidate)
        if isinstance(data.get("tool"), dict) and "layerdiff" in data["tool"]:
            return candidate
    return None


def load_settings(path: str | None = None, *, directory: str = ".") -> Settings:
    """Read the settings from ``path``, or from the file found in ``directory``.

    Unknown keys are refused, so that a misspelt budget does not pass
    silently.
    """
    if path is None:
        path = find_config(directory)
        if path is None:
            return Settings()
    data = _read_toml(path)
    if os.path.basename(path) == "pyproject.toml" or "tool" in data:
        table = data.get("tool", {}).get("layerdiff", {})
    else:
        table = data
    if not isinstance(table, dict):
        raise UsageError("[tool.layerdiff] is not a table", source=path)
    return _settings(table, path)


def _read_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise UsageError(f"cannot read: {exc.strerror}", source=path) from exc
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"not valid TOML: {exc}", source=path) from exc


def _settings(table: dict[str, Any], path: str) -> Settings:
    unknown = sorted(set(table) - _TOP_KEYS - _BUDGET_KEYS)
    if unknown:
        raise UsageError(
            f"unknown setting {unknown[0]!r}",
            source=path,
            hint="known settings: " + ", ".join(sorted(_TOP_KEYS | _BUDGET_KEYS)),
        )
    try:
        settings = Settings(source=path)
        if "fail-on" in table:
            settings.fail_on = str(table["fail-on"])
            if settings.fail_on not in ("error", "warning", "info", "none"):
                raise UsageError(
                    f"fail-on {settings.fail_on!r} is not error, warning, info or none"
                )
        if "large" in table:
            settings.large = parse_size(table["large"], what="large")
        settings.disable = frozenset(_strings(table.get("disable", []), "disable"))
        settings.ignore = tuple(_strings(table.get("ignore", []), "ignore"))
        settings.ignore_noise = bool(table.get("ignore-noise", False))
        budgets = table.get("budgets", {})
        if not isinstance(budgets, dict):
            raise UsageError("budgets must be a table: [budgets]")
        budgets = dict(budgets)
        for key in sorted(_BUDGET_KEYS & set(table)):
            if key in budgets:
                raise UsageError(
                    f"{key} is set twice, at the top level ({table[key]!r}) and "
                    f"in [budgets] ({budgets[key]!r}); keep one"
                )
            budgets[key] = table[key]
        settings.budgets = budgets_from(budgets)
    except UsageError as exc:
        raise exc.located(source=path)
    if settings.budgets.baseline is not None:
        base = os.path.dirname(os.path.abspath(path))
        settings.budgets.baseline = os.path.join(base, settings.budgets.baseline)
    return settings


def budgets_from(values: dict[str, Any]) -> Budgets:
    """Return budgets from a mapping of option names (``max-size``) to text."""
    unknown = sorted(set(values) - _BUDGET_KEYS)
    if unknown:
        raise UsageError(f"unknown budget {unknown[0]!r}")
    budgets = Budgets()
    for key, value in values.items():
        if value is None:
            continue
        if key in ("max-size", "max-layer-size", "max-wasted"):
            setattr(budgets, key.replace("-", "_"), parse_size(value, what=key))
        elif key == "max-layers":
            if isinstance(value, bool) or not str(value).isdigit():
                raise UsageError(f"max-layers {value!r} is not a whole number")
            budgets.max_layers = int(value)
        elif key == "min-efficiency":
            budgets.min_efficiency = parse_ratio(value, what=key)
        elif key == "max-growth":
            budgets.max_growth = parse_growth(str(value))
        elif key == "baseline":
            budgets.baseline = str(value)
    return budgets


def _strings(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"{what} must be a list of strings")
    return value
