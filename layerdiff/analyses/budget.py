"""Size budgets and growth against a baseline, for CI.

Sizes are uncompressed: the bytes of the layer tars once decompressed,
which is what an image costs on disk after a pull. The baseline is the
``inspect --json`` output of an earlier build.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..config import Budgets
from ..errors import UsageError
from ..model import ChangeKind, EntryType, ImageReport
from ..tree import MergedView
from .compare import match_layers

__all__ = [
    "BudgetResult",
    "Growth",
    "CheckResult",
    "check_budgets",
    "read_baseline",
    "baseline_files",
]

_TOP_PATHS = 10


@dataclass(slots=True)
class BudgetResult:
    """One budget: its limit, the measured value and whether it holds.

    ``unit`` is ``bytes``, ``count`` or ``ratio``; ``layer`` names the
    offending layer (0-based) for per-layer budgets.
    """

    budget: str
    limit: float
    actual: float
    unit: str
    passed: bool
    layer: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "budget": self.budget,
            "limit": self.limit,
            "actual": self.actual,
            "unit": self.unit,
            "passed": self.passed,
            "layer": None if self.layer is None else self.layer + 1,
        }


@dataclass(slots=True)
class Growth:
    """What grew since the baseline: layers and the paths that grew most."""

    baseline: str
    baseline_size: int
    size: int
    layers: list[dict[str, Any]] = field(default_factory=list)
    paths: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "baseline_size": self.baseline_size,
            "size": self.size,
            "growth": self.size - self.baseline_size,
            "layers": self.layers,
            "paths": self.paths,
        }


@dataclass(slots=True)
class CheckResult:
    """Every budget checked, and the growth detail when a baseline was given."""

    results: list[BudgetResult]
    growth: Growth | None = None

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)


def read_baseline(path: str) -> dict[str, Any]:
    """Read and check a baseline: the ``inspect --json`` output of a build."""
    try:
        with open(path, "rb") as handle:
            data = json.load(handle)
    except OSError as exc:
        raise UsageError(f"cannot read the baseline: {exc.strerror}", source=path)
    except ValueError as exc:
        raise UsageError(f"the baseline is not JSON: {exc}", source=path) from exc
    if (
        not isinstance(data, dict)
        or data.get("schema_version") != 1
        or not isinstance(data.get("uncompressed_size"), int)
        or not isinstance(data.get("layers"), list)
    ):
        raise UsageError(
            "not a baseline: expected the output of inspect --json (schema_version 1)",
            source=path,
            hint="write one with: layerdiff baseline IMAGE -o FILE",
        )
    return data


def check_budgets(
    report: ImageReport,
    budgets: Budgets,
    *,
    view: MergedView | None = None,
    baseline: dict[str, Any] | None = None,
) -> CheckResult:
    """Check every budget that is set; growth needs ``baseline``.

    ``view`` (the final merged view) lets a failed growth budget name the
    paths that grew.
    """
    results = []
    size = report.uncompressed_size
    if budgets.max_size is not None:
        results.append(
            BudgetResult(
                "max-size", budgets.max_size, size, "bytes", size <= budgets.max_size
            )  # fmt: skip
        )
    if budgets.max_layer_size is not None:
        biggest = max(
            report.layers, key=lambda layer: layer.uncompressed_size, default=None
        )
        actual = biggest.uncompressed_size if biggest is not None else 0
        results.append(
            BudgetResult(
                "max-layer-size",
                budgets.max_layer_size,
                actual,
                "bytes",
                actual <= budgets.max_layer_size,
                layer=biggest.index if biggest is not None else None,
            )
        )
    if budgets.max_layers is not None:
        count = len(report.layers)
        results.append(
            BudgetResult(
                "max-layers",
                budgets.max_layers,
                count,
                "count",
                count <= budgets.max_layers,
            )  # fmt: skip
        )
    if budgets.max_wasted is not None:
        wasted = report.waste.total
        results.append(
            BudgetResult(
                "max-wasted",
                budgets.max_wasted,
                wasted,
                "bytes",
                wasted <= budgets.max_wasted,
            )  # fmt: skip
        )
    if budgets.min_efficiency is not None:
        efficiency = round(report.efficiency, 6)
        results.append(
            BudgetResult(
                "min-efficiency",
                budgets.min_efficiency,
                efficiency,
                "ratio",
                efficiency >= budgets.min_efficiency,
            )  # fmt: skip
        )
    growth = None
    if budgets.max_growth is not None:
        if baseline is None:
            raise UsageError(
                "max-growth needs a baseline",
                hint="give --baseline FILE (from: layerdiff baseline IMAGE -o FILE)",
            )
        before = baseline["uncompressed_size"]
        limit = budgets.max_growth.limit(before)
        results.append(BudgetResult("max-growth", limit, size, "bytes", size <= limit))
        growth = _growth(report, view, baseline)
    return CheckResult(results, growth)


def baseline_files(baseline: dict[str, Any]) -> dict[str, int]:
    """Replay a baseline's per-layer changes into path -> file size."""
    files: dict[str, int] = {}
    for layer in baseline.get("layers", []):
        for change in layer.get("changes") or []:
            path = str(change.get("path", "")).lstrip("/")
            kind = change.get("kind")
            if kind in ("delete", "opaque") or change.get("reason") == "type":
                prefix = path + "/"
                for known in [p for p in files if p.startswith(prefix)]:
                    del files[known]
                if kind == "delete":
                    files.pop(path, None)
            if kind in ("add", "modify", "same"):
                if change.get("type") == "file":
                    files[path] = int(change.get("size") or 0)
                else:
                    files.pop(path, None)
    return files


def _growth(
    report: ImageReport, view: MergedView | None, baseline: dict[str, Any]
) -> Growth:
    growth = Growth(
        baseline=str(baseline.get("source")),
        baseline_size=baseline["uncompressed_size"],
        size=report.uncompressed_size,
    )
    old_sets = [
        _layer_paths(layer.get("changes") or []) for layer in baseline["layers"]
    ]
    new_sets = [
        {c.path for c in layer.changes if c.kind is not ChangeKind.SAME}
        for layer in report.layers
    ]
    old_ids = [layer.get("diff_id") for layer in baseline["layers"]]
    new_ids = [layer.diff_id for layer in report.layers]
    pairs = match_layers(old_ids, old_sets, new_ids, new_sets)
    for old, new, how, _ in pairs:
        before = baseline["layers"][old]["uncompressed_size"] if old is not None else 0
        after = report.layers[new].uncompressed_size if new is not None else 0
        if after == before:
            continue
        growth.layers.append(
            {
                "layer": None if new is None else new + 1,
                "baseline_layer": None if old is None else old + 1,
                "match": how,
                "baseline_size": before,
                "size": after,
                "growth": after - before,
                "created_by": report.layers[new].created_by
                if new is not None
                else baseline["layers"][old].get("created_by"),
            }
        )
    growth.layers.sort(key=lambda item: -item["growth"])
    if view is not None:
        old_files = baseline_files(baseline)
        deltas = []
        for node in view.iter_nodes():
            if node.entry.type is not EntryType.FILE:
                continue  # a hard link's bytes are counted at its target
            delta = node.size - old_files.get(node.entry.path, 0)
            if delta > 0:
                deltas.append((delta, node.entry.path, node.layer))
        deltas.sort(key=lambda item: (-item[0], item[1]))
        growth.paths = [
            {"path": path, "growth": delta, "layer": layer + 1}
            for delta, path, layer in deltas[:_TOP_PATHS]
        ]
    return growth


def _layer_paths(changes: list[dict[str, Any]]) -> set[str]:
    return {
        str(c.get("path", "")).lstrip("/") for c in changes if c.get("kind") != "same"
    }
