"""The provenance of one path: every layer that added, changed or removed it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import paths
from ..errors import UsageError
from ..model import ChangeKind, ImageReport
from ..tree import MergedView

__all__ = ["Event", "Provenance", "why_path"]


@dataclass(slots=True)
class Event:
    """What one layer did to the path (directly, or through a parent).

    ``cost`` is the bytes this layer ships for the path; ``wasted`` tells
    whether a later layer made those bytes unreachable.
    """

    layer: int
    action: str
    reason: str | None
    via: str | None
    cost: int
    created_by: str | None
    wasted: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "layer": self.layer + 1,
            "action": self.action,
            "reason": self.reason,
            "via": self.via,
            "cost": self.cost,
            "wasted": self.wasted,
            "created_by": self.created_by,
        }


@dataclass(slots=True)
class Provenance:
    """The history of one path through the layers, and its final state."""

    path: str
    present: bool
    events: list[Event] = field(default_factory=list)
    final: dict[str, Any] | None = None

    @property
    def cost(self) -> int:
        return sum(e.cost for e in self.events)

    @property
    def wasted(self) -> int:
        return sum(e.cost for e in self.events if e.wasted)


_ACTIONS = {
    ChangeKind.ADD: "added",
    ChangeKind.MODIFY: "modified",
    ChangeKind.SAME: "re-added unchanged",
}


def why_path(report: ImageReport, view: MergedView, path: str) -> Provenance:
    """Return which layers added, replaced, re-owned or deleted ``path``.

    Raises UsageError when no layer ever touched the path.
    """
    path = paths.normalize(path)
    node = view.get(path)
    result = Provenance(path, node is not None)
    if node is not None:
        result.final = node.entry.to_json(node.layer if node.layer >= 0 else None)
        if node.inode is not None:
            result.final["size"] = node.size
            result.final["sha256"] = node.sha256
    ancestors = set()
    parent = path
    while parent:
        parent = paths.parent(parent)
        ancestors.add(parent)
    present = False
    live: list[Event] = []  # events whose bytes are still reachable
    for layer in report.layers:
        for change in layer.changes:
            if change.path == path:
                if change.kind is ChangeKind.DELETE:
                    event = Event(layer.index, "deleted", None, None, 0,
                                  layer.created_by)  # fmt: skip
                    _waste(live)
                    present = False
                elif change.kind is ChangeKind.OPAQUE:
                    event = Event(layer.index, "made opaque", None, None, 0,
                                  layer.created_by)  # fmt: skip
                else:
                    if change.kind is not ChangeKind.ADD or present:
                        _waste(live)
                    event = Event(
                        layer.index,
                        _ACTIONS[change.kind],
                        change.reason,
                        None,
                        change.size,
                        layer.created_by,
                    )
                    live.append(event)
                    present = True
                result.events.append(event)
            elif (
                present
                and change.path in ancestors
                and (
                    change.kind in (ChangeKind.DELETE, ChangeKind.OPAQUE)
                    or change.reason == "type"
                )
            ):
                action = {
                    ChangeKind.DELETE: "deleted",
                    ChangeKind.OPAQUE: "hidden by an opaque directory",
                }.get(change.kind, "hidden: a parent became a non-directory")
                _waste(live)
                present = False
                result.events.append(
                    Event(layer.index, action, None, change.path, 0, layer.created_by)
                )
    if not result.events and node is None:
        raise UsageError(
            f"no layer of the image has /{path}",
            source=report.source,
            hint="paths are absolute inside the image, e.g. /etc/os-release",
        )
    return result


def _waste(live: list[Event]) -> None:
    for event in live:
        event.wasted = event.cost > 0
    live.clear()
