"""Comparing two images: their merged views path by path, and their layers.

Layers are matched by diff_id first; the rest are paired by how much their
sets of changed paths overlap, so that one inserted layer does not make
every later layer look different. Modification times are not compared:
they change on every build and say nothing about content.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from .. import paths
from ..model import ChangeKind, EntryType, ImageReport
from ..tree import MergedView, Node

__all__ = [
    "NOISE",
    "PathDifference",
    "Rollup",
    "LayerMatch",
    "Comparison",
    "compare_images",
    "match_layers",
    "ignore_matcher",
]

# Paths that change on every build whatever the sources: logs, caches,
# package manager state and linker caches rebuilt by each install.
NOISE = (
    "var/log/*",
    "var/cache/*",
    "var/tmp/*",
    "tmp/*",
    "run/*",
    "root/.cache/*",
    "*/__pycache__",
    "var/lib/apt/lists/*",
    "var/lib/apt/extended_states",
    "var/lib/dpkg/*-old",
    "var/lib/dpkg/lock*",
    "var/lib/rpm/__db.*",
    "var/lib/dnf/*",
    "var/lib/yum/*",
    "etc/ld.so.cache",
    "var/cache/ldconfig/aux-cache",
    "etc/machine-id",
)

_SIMILAR = 0.5  # least Jaccard overlap of changed paths to pair two layers


@dataclass(slots=True)
class PathDifference:
    """One path that differs: added, removed or changed (content, metadata, type)."""

    path: str
    status: str
    reason: str | None
    type: EntryType
    old_size: int
    new_size: int

    @property
    def delta(self) -> int:
        return self.new_size - self.old_size

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "status": self.status,
            "reason": self.reason,
            "type": self.type.value,
            "old_size": self.old_size,
            "new_size": self.new_size,
            "delta": self.delta,
        }


@dataclass(slots=True)
class Rollup:
    """Differences summed over one directory at the chosen depth.

    A path counts in the directory that holds it, cut to ``depth``
    components: with depth 2, /usr/lib/x/libz.so counts in /usr/lib and
    /etc/passwd in /etc.
    """

    path: str
    added: int = 0
    removed: int = 0
    changed: int = 0
    delta: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "added": self.added,
            "removed": self.removed,
            "changed": self.changed,
            "delta": self.delta,
        }


@dataclass(slots=True)
class LayerMatch:
    """A layer of the old image paired with one of the new (or with none)."""

    old: int | None
    new: int | None
    match: str  # "diff_id", "similar", "added" or "removed"
    similarity: float
    old_size: int
    new_size: int
    created_by: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "old_layer": None if self.old is None else self.old + 1,
            "new_layer": None if self.new is None else self.new + 1,
            "match": self.match,
            "similarity": round(self.similarity, 4),
            "old_size": self.old_size,
            "new_size": self.new_size,
            "delta": self.new_size - self.old_size,
            "created_by": self.created_by,
        }


@dataclass(slots=True)
class Comparison:
    """Everything two images differ in."""

    paths: list[PathDifference]
    rollup: list[Rollup]
    layers: list[LayerMatch]
    config: dict[str, dict[str, Any]] = field(default_factory=dict)
    ignored: int = 0

    @property
    def identical(self) -> bool:
        return not self.paths and not self.config

    def counts(self) -> dict[str, int]:
        result = {"added": 0, "removed": 0, "changed": 0}
        for item in self.paths:
            result[item.status] += 1
        return result

    @property
    def delta(self) -> int:
        return sum(item.delta for item in self.paths)


def ignore_matcher(patterns: Iterable[str]):
    """Return a predicate telling whether a path, or one of its parents, matches.

    Patterns are shell globs over the path without its leading ``/``;
    ``*`` also matches ``/``.
    """
    cleaned = [p.strip().lstrip("/") for p in patterns if p.strip()]
    if not cleaned:
        return lambda path: False
    regex = re.compile("|".join(fnmatch.translate(p) for p in cleaned))

    def matches(path: str) -> bool:
        while path:
            if regex.match(path):
                return True
            path = paths.parent(path)
        return False

    return matches


def compare_images(
    old: ImageReport,
    old_view: MergedView,
    new: ImageReport,
    new_view: MergedView,
    *,
    depth: int = 2,
    ignore: Sequence[str] = (),
) -> Comparison:
    """Compare two inspected images through their final merged views."""
    ignored = ignore_matcher(ignore)
    differences = []
    skipped = 0
    for path in sorted(set(old_view.nodes) | set(new_view.nodes)):
        if not path:
            continue
        if ignored(path):
            skipped += 1
            continue
        before, after = old_view.get(path), new_view.get(path)
        item = _difference(path, before, after)
        if item is not None:
            differences.append(item)
    differences.sort(key=lambda d: (-abs(d.delta), d.path))
    return Comparison(
        paths=differences,
        rollup=_rollup(differences, depth),
        layers=_layers(old, new),
        config=_config_differences(old.config, new.config),
        ignored=skipped,
    )


def _difference(path: str, before: Node | None, after: Node | None):
    if before is None and after is None:
        return None
    if before is None:
        return PathDifference(path, "added", None, after.data_type, 0, _bytes(after))
    if after is None:
        return PathDifference(
            path, "removed", None, before.data_type, _bytes(before), 0
        )
    kind = after.data_type
    if before.data_type is not kind:
        reason = "type"
    elif not before.same_content(after):
        reason = "content"
    elif not before.entry.same_metadata(after.entry, with_mtime=False):
        reason = "metadata"
    else:
        return None
    return PathDifference(path, "changed", reason, kind, _bytes(before), _bytes(after))


def _bytes(node: Node) -> int:
    """File bytes a path holds; a hard link's bytes are counted at its target."""
    return node.size if node.entry.type is EntryType.FILE else 0


def _rollup(differences: list[PathDifference], depth: int) -> list[Rollup]:
    groups: dict[str, Rollup] = {}
    for item in differences:
        parts = item.path.split("/")[:-1]  # the directory holding the path
        key = "/".join(parts[:depth])
        group = groups.setdefault(key, Rollup(key))
        setattr(group, item.status, getattr(group, item.status) + 1)
        group.delta += item.delta
    return sorted(
        groups.values(),
        key=lambda g: (-abs(g.delta), -(g.added + g.removed + g.changed), g.path),
    )


def match_layers(
    old_ids: Sequence[str | None],
    old_sets: Sequence[set[str]],
    new_ids: Sequence[str | None],
    new_sets: Sequence[set[str]],
) -> list[tuple[int | None, int | None, str, float]]:
    """Pair old and new layers: by diff_id, then by overlap of changed paths.

    Returns (old index, new index, how, similarity) in the order of the new
    layers, with unmatched old layers ("removed") at the end.
    """
    pairs: dict[int, tuple[int, str, float]] = {}
    free_old = list(range(len(old_ids)))
    by_id: dict[str, list[int]] = {}
    for index in free_old:
        if old_ids[index]:
            by_id.setdefault(old_ids[index], []).append(index)
    for index, diff_id in enumerate(new_ids):
        candidates = by_id.get(diff_id or "")
        if candidates:
            old = candidates.pop(0)
            pairs[index] = (old, "diff_id", 1.0)
            free_old.remove(old)
    scores = []
    for new in range(len(new_ids)):
        if new in pairs:
            continue
        for old in free_old:
            score = _jaccard(old_sets[old], new_sets[new])
            if score >= _SIMILAR:
                # Prefer pairs at the same distance from the bottom on ties.
                scores.append((-score, abs(new - old), new, old))
    taken: set[int] = set()
    for negative, _, new, old in sorted(scores):
        if new in pairs or old in taken:
            continue
        pairs[new] = (old, "similar", -negative)
        taken.add(old)
    result: list[tuple[int | None, int | None, str, float]] = []
    for new in range(len(new_ids)):
        if new in pairs:
            old, how, score = pairs[new]
            result.append((old, new, how, score))
        else:
            result.append((None, new, "added", 0.0))
    matched = {old for old, _, _ in pairs.values()}
    for old in range(len(old_ids)):
        if old not in matched:
            result.append((old, None, "removed", 0.0))
    return result


def _jaccard(a: set[str], b: set[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def _changed_paths(report: ImageReport) -> list[set[str]]:
    return [
        {c.path for c in layer.changes if c.kind is not ChangeKind.SAME}
        for layer in report.layers
    ]


def _layers(old: ImageReport, new: ImageReport) -> list[LayerMatch]:
    pairs = match_layers(
        [layer.diff_id for layer in old.layers],
        _changed_paths(old),
        [layer.diff_id for layer in new.layers],
        _changed_paths(new),
    )
    result = []
    for o, n, how, score in pairs:
        old_layer = old.layers[o] if o is not None else None
        new_layer = new.layers[n] if n is not None else None
        result.append(
            LayerMatch(
                o,
                n,
                how,
                score,
                old_layer.uncompressed_size if old_layer else 0,
                new_layer.uncompressed_size if new_layer else 0,
                (new_layer or old_layer).created_by,
            )
        )
    return result


# Runtime settings compared, under the names inspect --json uses for them.
_CONFIG_KEYS = {
    "Entrypoint": "entrypoint", "Cmd": "cmd", "Env": "env",
    "WorkingDir": "workdir", "User": "user", "ExposedPorts": "exposed_ports",
    "Volumes": "volumes", "Labels": "labels", "StopSignal": "stop_signal",
    "Healthcheck": "healthcheck",
}  # fmt: skip


def _setting(key: str, value: Any) -> Any:
    """Return a runtime setting in the form inspect --json shows it."""
    if not value:
        return None
    if key in ("Volumes", "ExposedPorts") and isinstance(value, dict):
        return sorted(value)
    return value


def _config_differences(old: dict, new: dict) -> dict[str, dict[str, Any]]:
    """Runtime settings of the config that differ (architecture and os too).

    Keys are the lowercase names of inspect --json (``env``, ``volumes``...);
    volumes and exposed ports are sorted lists, as there.
    """
    result = {}
    before = old.get("config") if isinstance(old.get("config"), dict) else {}
    after = new.get("config") if isinstance(new.get("config"), dict) else {}
    for key in ("architecture", "os"):
        if old.get(key) != new.get(key):
            result[key] = {"old": old.get(key), "new": new.get(key)}
    for key, name in _CONFIG_KEYS.items():
        a, b = _setting(key, before.get(key)), _setting(key, after.get(key))
        if a != b:
            result[name] = {"old": a, "new": b}
    return result
