"""The image a commit would produce, built in memory so it can be audited.

The layers below (the base image's, or the lower dirs') and the layer a
commit would write from the committed changeset are classified the way
``inspect`` classifies an image's layers; no tar and no archive is
written. What the commit would leave out is listed for the audit's
``uncommitted-content`` rule: writes into volumes and bind mounts, runtime
files and virtual filesystems. Empty stubs and sockets hold no content; they
are only noted.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import mounts as mnt
from .analyses.audit import Uncommitted
from .classify import apply_layer
from .inspect import declared_volume_writes
from .model import (
    PENDING_FORMAT,
    Change,
    ChangeList,
    Changeset,
    EntryType,
    Finding,
    ImageReport,
    LayerReport,
)
from .text import counted
from .tree import MergedView

if TYPE_CHECKING:
    from .changes import Container, ContainerChange

__all__ = ["PendingImage", "pending_image", "unwritten_layer"]

log = logging.getLogger(__name__)

# How each reason for leaving a change out names the place it lives in.
_PLACES = {
    mnt.VOLUME: "volume",
    mnt.BIND_MOUNT: "bind mount",
    mnt.RUNTIME_FILE: "runtime file mount",
    mnt.VIRTUAL_FS: "virtual filesystem",
}


@dataclass
class PendingImage:
    """The image a commit would write: report, merged view and what it misses.

    The last layer of ``report`` is the pending commit's; ``notes`` says
    what the commit leaves out that is not content (stubs, sockets).
    """

    report: ImageReport
    view: MergedView
    uncommitted: list[Uncommitted] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def unwritten_layer(
    index: int,
    changeset: Changeset,
    changes: list[Change],
    findings: list[Finding],
    comment: str,
) -> LayerReport:
    """Return the report of a layer that exists as a changeset, not a blob.

    It has no digest, diff_id or compressed size; ``comment`` says where
    the changeset comes from.
    """
    for finding in findings:
        finding.layer = index
    return LayerReport(
        index=index,
        digest=None,
        diff_id=None,
        media_type=None,
        compression="none",
        size=0,
        uncompressed_size=0,
        comment=comment,
        changes=ChangeList(changes),
        findings=findings,
        file_bytes=sum(e.size for e in changeset.entries if e.type is EntryType.FILE),
        entry_count=len(changeset.entries)
        + len(changeset.whiteouts)
        + len(changeset.opaque_dirs),
    )


def pending_image(container: Container) -> PendingImage:
    """Return the image that committing ``container`` would produce.

    The base layers are taken as read. The pending layer is applied to the
    container's base view, which becomes the returned view: the container
    is read for this one use (copying a large view would cost more).
    """
    plan = container.plan
    view = container.base_view if container.base_view is not None else MergedView()
    if container.base_report is not None:
        base = container.base_report
        layers = [copy.copy(layer) for layer in base.layers]
        config, findings = base.config, list(base.findings)
        name, platform = base.name, base.platform
        empty_history = base.empty_history
    else:
        layers = [copy.copy(layer) for layer in container.lower_layers]
        config, findings, name, platform, empty_history = {}, [], None, None, []

    index = len(layers)
    changeset = plan.changeset
    _hash_compared(plan.upper, changeset, view)
    changes, applied = apply_layer(view, changeset, index)
    notes = []
    if container.base_view is None:
        # Every whiteout would seem to delete nothing: the layers below are
        # not known, not empty.
        applied = [f for f in applied if f.rule != "whiteout-missing-target"]
        notes.append(
            "no base given (--base or --lower): the pending layer is audited "
            "alone, without the layers below it"
        )
    pending = unwritten_layer(
        index,
        changeset,
        changes,
        list(plan.upper.changeset.findings) + applied,
        f"pending commit of {plan.upper.source}",
    )
    pending.findings += declared_volume_writes(config, changes, index)
    layers.append(pending)
    for layer in layers:
        layer.waste = view.waste_of(layer.index)
    log.info(
        "pending commit: layer %d with %s on %s below",
        index + 1,
        counted(pending.entry_count, "entry", "entries"),
        counted(index, "layer"),
    )

    report = ImageReport(
        source=plan.upper.source,
        format=PENDING_FORMAT,
        name=name,
        platform=platform,
        manifest_digest=None,
        config_digest=None,
        config=config,
        layers=layers,
        findings=findings,
        empty_history=empty_history,
    )
    uncommitted, left_notes = left_out(container.all_changes(), container.table)
    notes += left_notes + container.notes
    return PendingImage(report, view, uncommitted, notes)


def _hash_compared(upper, changeset: Changeset, view: MergedView) -> None:
    """Hash the files whose size equals the file below, so that an identical
    file is told from a changed one (the plan hashed most of them already)."""
    for entry in changeset.entries:
        if entry.type is not EntryType.FILE or entry.sha256 is not None:
            continue
        below = view.get(entry.path)
        if below is not None and below.size == entry.size:
            upper.sha256(entry)


def left_out(
    changes: Iterable[ContainerChange], table: mnt.MountTable
) -> tuple[list[Uncommitted], list[str]]:
    """Return what a commit leaves out: content by mount, and notes.

    Changes under one mount make one item, named by the path when it is
    alone and by the mount's destination otherwise.
    """
    groups: dict[tuple[str, str], list[ContainerChange]] = {}
    stubs: list[str] = []
    sockets: list[str] = []
    for change in changes:
        if change.committed:
            continue
        if change.reason == mnt.STUB:
            stubs.append(change.path)
            continue
        if change.reason == mnt.SOCKET:
            sockets.append(change.path)
            continue
        mount = table.covering(change.path)
        where = mount.destination if mount is not None else change.path
        groups.setdefault((where, change.reason), []).append(change)

    found = []
    for (where, reason), members in sorted(groups.items()):
        place = f"the {_PLACES.get(reason, reason)} at /{where}"
        size = sum(c.size for c in members if c.type is EntryType.FILE)
        if len(members) == 1:
            path, what = members[0].path, f"changed in {place}"
        else:
            path, what = where, f"{counted(len(members), 'path')} changed in {place}"
        found.append(Uncommitted(path, what, size or None))

    notes = []
    if stubs:
        notes.append(
            f"{counted(len(stubs), 'empty stub')} at mount points "
            f"({_listed(stubs)}) left out of the commit: placeholders the runtime "
            "made, no content; --keep-stubs commits them"
        )
    if sockets:
        notes.append(
            f"{counted(len(sockets), 'socket')} ({_listed(sockets)}) cannot be "
            "stored in a layer"
        )
    return found, notes


def _listed(found: list[str], shown: int = 3) -> str:
    names = ", ".join("/" + p for p in found[:shown])
    return names + (f" and {len(found) - shown} more" if len(found) > shown else "")
