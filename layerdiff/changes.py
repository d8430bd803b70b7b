"""What a container changed, and whether a commit captures each change.

``read_container`` reads an upper dir (or a merged root) against the lower
side, the base image or the lower dirs, and ``plan_commit`` classifies each
change: added, changed or deleted, and committed or not, with the reason
(a volume, a bind mount, a runtime file, a virtual filesystem, or a stub the
runtime left behind). What the container wrote into volumes and bind mounts
is listed from their source directories when those are known.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from . import mounts as mnt
from . import paths
from .archive import Image
from .errors import UsageError
from .model import Changeset, Entry, EntryType, LayerReport
from .tree import Inode, MergedView, Node
from .upperdir import UpperDir

__all__ = [
    "ContainerChange",
    "CommitPlan",
    "Container",
    "plan_commit",
    "list_mount_sources",
    "lower_view",
    "read_container",
]

log = logging.getLogger(__name__)

ADDED, CHANGED, DELETED = "A", "C", "D"
_CHUNK = 1 << 20
_NOT_CONTENT = (mnt.STUB, mnt.RUNTIME_FILE, mnt.SOCKET)


@dataclass(slots=True)
class ContainerChange:
    """One path a container changed, and whether a commit captures it.

    ``kind`` is A, C or D as ``docker diff`` prints them. ``reason`` says
    why a change is not committed (volume, bind-mount, runtime-file,
    virtual-fs, stub, socket) or, for a committed one, ``under-mount-point`` when
    the container could not see it; otherwise it is empty. ``change`` says
    what changed for C: content, metadata, type, opaque, or nothing.
    """

    path: str
    kind: str
    type: EntryType | None
    size: int
    committed: bool
    reason: str = ""
    change: str = ""
    certain: bool = True

    @property
    def loses_content(self) -> bool:
        """Tell whether leaving this change out loses what the container wrote.

        Stubs are empty placeholders, runtime files are the engine's own and
        a socket holds no data: none of them is content to commit.
        """
        return not self.committed and self.reason not in _NOT_CONTENT

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "type": self.type.value if self.type else None,
            "size": self.size,
            "committed": self.committed,
            "reason": self.reason,
            "change": self.change,
            "certain": self.certain,
        }


@dataclass
class CommitPlan:
    """The changes of a container and the changeset a commit will write."""

    upper: UpperDir
    changes: list[ContainerChange]
    changeset: Changeset
    lower_known: bool

    @property
    def left_out(self) -> list[ContainerChange]:
        return [c for c in self.changes if not c.committed]


def _hidden_by(changeset: Changeset, entries: dict[str, Entry]) -> set[str]:
    """Return paths whose lower content the changeset hides wholesale."""
    hiding = set(changeset.opaque_dirs) | set(changeset.whiteouts)
    hiding |= {p for p, e in entries.items() if e.type is not EntryType.DIR}
    return hiding


def _nearest(values: dict[str, Any]) -> Callable[[str], Any]:
    """Return a lookup of the value at the deepest of a directory and its
    parents ('' last) that ``values`` holds, or None; kept per directory,
    since the paths of one directory all ask the same."""
    known: dict[str, Any] = {}

    def nearest(directory: str) -> Any:
        walked = []
        while directory not in known:
            walked.append(directory)
            if not directory or directory in values:
                known[directory] = values.get(directory)
                break
            directory = paths.parent(directory)
        value = known[directory]
        for step in walked:
            known[step] = value
        return value

    return nearest


def _under(roots: set[str]) -> Callable[[str], bool]:
    """Return a test of whether a path lies below one of ``roots``."""
    nearest = _nearest(dict.fromkeys(roots, True))
    return lambda path: path != "" and nearest(paths.parent(path)) is not None


def _covering(table: mnt.MountTable) -> Callable[[str], mnt.Mount | None]:
    """Return ``table.covering``, kept per directory for many paths."""
    at: dict[str, mnt.Mount] = {}
    for mount in table.mounts:
        at.setdefault(mount.destination, mount)
    nearest = _nearest(at)
    return lambda path: at.get(path) or nearest(paths.parent(path))


def plan_commit(
    upper: UpperDir,
    base: MergedView | None,
    table: mnt.MountTable,
    *,
    keep_stubs: bool = False,
    merged: bool = False,
) -> CommitPlan:
    """Classify every change of an upper dir (or merged root) for a commit.

    ``base`` is the merged view below; without it, additions and
    modifications cannot be told apart and C is given only to copied-up
    paths. ``merged`` says that ``upper`` was read from a merged root, so
    content under mounts is what the container wrote into them.
    """
    cs = upper.changeset
    entries = {e.path: e for e in cs.entries}
    hidden = _under(_hidden_by(cs, entries))
    covering = _covering(table)
    children: dict[str, int] = {}
    for path in entries:
        if path:
            parent = paths.parent(path)
            children[parent] = children.get(parent, 0) + 1
    changes: list[ContainerChange] = []

    def below(path: str) -> Node | None:
        if base is None or hidden(path):
            return None
        return base.get(path)

    for path, entry in entries.items():
        lower = below(path)
        data_type = EntryType.FILE if entry.type is EntryType.HARDLINK else entry.type
        size = entry.size if data_type is EntryType.FILE else 0
        if entry.type is EntryType.HARDLINK and entry.linkname in entries:
            size = entries[entry.linkname].size
        if base is None:
            kind = CHANGED if path in upper.copied_up else ADDED
            change = ""
        elif lower is None:
            kind, change = ADDED, ""
        else:
            kind, change = CHANGED, _what_changed(upper, lower, entry, size)
        if path in cs.opaque_dirs:
            change = "opaque"
        committed, reason = _decide(
            path, entry, covering, keep_stubs, merged, children.get(path, 0)
        )
        changes.append(
            ContainerChange(
                path, kind, data_type, size, committed, reason, change, base is not None
            )
        )

    deleted: dict[str, Node | None] = {w: below(w) for w in cs.whiteouts}
    if base is not None:
        for directory in cs.opaque_dirs:
            for child in base.child_paths(directory):
                if child not in entries and not hidden(directory):
                    deleted[child] = base.get(child)
    for path, lower in sorted(deleted.items()):
        if base is not None and lower is None:
            continue  # deletes nothing that the base has
        committed, reason = _decide(path, None, covering, keep_stubs, merged, 0)
        changes.append(
            ContainerChange(
                path,
                DELETED,
                lower.data_type if lower is not None else None,
                0,
                committed,
                reason,
                "",
                base is not None,
            )
        )
    for path in upper.sockets:
        # A socket cannot be stored in a layer; it is listed so it is not
        # lost without a word.
        lower = below(path)
        kind = CHANGED if lower is not None else ADDED
        changes.append(
            ContainerChange(
                path, kind, None, 0, False, mnt.SOCKET, "", base is not None
            )
        )
    changes.sort(key=lambda c: (c.path, c.kind))

    dropped = {c.path for c in changes if not c.committed}
    committed_cs = Changeset(
        entries=[e for e in cs.entries if e.path not in dropped],
        whiteouts=[w for w in cs.whiteouts if w not in dropped],
        opaque_dirs=[d for d in cs.opaque_dirs if d not in dropped],
    )
    _unlink_dropped(upper, committed_cs, dropped, entries)
    return CommitPlan(upper, changes, committed_cs, base is not None)


def _unlink_dropped(
    upper: UpperDir, cs: Changeset, dropped: set[str], entries: dict[str, Entry]
):
    """Turn hard links whose target is left out into files with that data.

    The first such link of a dropped target carries the data; any other
    link to the same target becomes a hard link to that first one.
    """
    carriers: dict[str, str] = {}
    for index, entry in enumerate(cs.entries):
        if entry.type is not EntryType.HARDLINK or entry.linkname not in dropped:
            continue
        replacement = copy.copy(entry)
        carrier = carriers.get(entry.linkname)
        if carrier is not None:
            replacement.linkname = carrier
            cs.entries[index] = replacement
            continue
        target = entries[entry.linkname]
        replacement.type = EntryType.FILE
        replacement.size = target.size
        replacement.sha256 = upper.sha256(target)
        replacement.linkname = ""
        upper.content[entry.path] = upper.content[target.path]
        if target.path in upper.stamps:
            upper.stamps[entry.path] = upper.stamps[target.path]
        carriers[entry.linkname] = entry.path
        cs.entries[index] = replacement


def _what_changed(upper: UpperDir, lower: Node, entry: Entry, size: int) -> str:
    data_type = EntryType.FILE if entry.type is EntryType.HARDLINK else entry.type
    if lower.data_type is not data_type:
        return "type"
    inode = None
    if data_type is EntryType.FILE:
        # The content is read only when the sizes leave the question open.
        digest = upper.sha256(entry) if lower.size == size else entry.sha256
        inode = Inode(size, -1, digest)
    if not lower.same_content(Node(entry, -1, inode)):
        return "content"
    with_mtime = data_type is not EntryType.DIR
    if not entry.same_metadata(lower.entry, with_mtime=with_mtime):
        return "metadata"
    return ""


def _decide(
    path: str,
    entry: Entry | None,
    covering: Callable[[str], mnt.Mount | None],
    keep_stubs: bool,
    merged: bool,
    children: int,
) -> tuple[bool, str]:
    mount = covering(path)
    if mount is None:
        return True, ""
    if merged:
        # Seen through the mount: what the container wrote into it.
        return False, mount.reason
    if path == mount.destination and entry is not None and _is_stub(entry, children):
        return keep_stubs, mnt.STUB
    return True, mnt.UNDER_MOUNT_POINT


def _is_stub(entry: Entry, children: int) -> bool:
    if entry.type is EntryType.FILE:
        return entry.size == 0
    if entry.type is EntryType.DIR:
        return children == 0
    return False


def list_mount_sources(
    table: mnt.MountTable,
    base: MergedView | None,
    notes: list[str] | None = None,
) -> list[ContainerChange]:
    """List what the container wrote into volumes and bind mounts.

    Each readable source directory of a volume or bind mount is walked;
    files identical to the base at the same path (a volume filled from the
    image) are not listed. A source that is not a directory (gone, or a
    single bound file) is logged and noted in ``notes``.
    """
    found = []
    for mount in table.mounts:
        if mount.reason not in (mnt.VOLUME, mnt.BIND_MOUNT) or not mount.source:
            continue
        if not os.path.isdir(mount.source):
            note = (
                f"the source {mount.source} of the {mount.reason} at "
                f"/{mount.destination} is not a directory here; what the "
                "container wrote into it is not listed"
            )
            log.warning("%s", note)
            if notes is not None:
                notes.append(note)
            continue
        for root, dirs, files in os.walk(mount.source):
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(root, name)
                relative = os.path.relpath(full, mount.source)
                path = paths.join(mount.destination, paths.normalize(relative))
                try:
                    size = os.lstat(full).st_size
                except OSError:
                    continue
                lower = base.get(path) if base is not None else None
                if (
                    lower is not None
                    and lower.size == size
                    and lower.sha256 == _sha256_file(full)
                ):
                    continue  # as the image has it: a volume filled from it
                kind = CHANGED if lower is not None else ADDED
                found.append(
                    ContainerChange(
                        path,
                        kind,
                        EntryType.FILE,
                        size,
                        False,
                        mount.reason,
                        "content" if lower else "",
                        base is not None,
                    )
                )
    return found


def _sha256_file(path: str) -> str | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def lower_view(
    lower_dirs: list[str], layers: list[LayerReport] | None = None
) -> MergedView:
    """Return the merged view of overlay lower dirs given top first.

    With ``layers``, the report of each lower dir, bottom first, is added
    to it: an audit reads the lower dirs as the layers of the base.
    """
    from .classify import apply_layer
    from .pending import unwritten_layer
    from .upperdir import read_upperdir

    view = MergedView()
    for index, directory in enumerate(reversed(lower_dirs)):
        layer = read_upperdir(directory, lower=view)
        layer.hash_all()  # the view is compared with the upper dir's files
        changes, findings = apply_layer(view, layer.changeset, index)
        if layers is not None:
            cs = layer.changeset
            layers.append(
                unwritten_layer(
                    index, cs, changes, cs.findings + findings, f"lower dir {directory}"
                )
            )
    return view


@dataclass
class Container:
    """A container's changes read against its base, ready to show or commit."""

    plan: CommitPlan
    table: mnt.MountTable
    base_view: MergedView | None = None
    base_image: Image | None = None
    base_report: Any = None
    volume_writes: list[ContainerChange] = field(default_factory=list)
    lowers: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    lower_layers: list[LayerReport] = field(default_factory=list)

    def inputs(self) -> list[str]:
        """Return every file and directory this container was read from."""
        found = [self.plan.upper.source] + self.lowers + self.table.lower_dirs
        if self.base_image is not None:
            found.append(self.base_image.source)
        found += [self.table.upper_dir or "", self.table.merged_dir or ""]
        return [path for path in found if path]

    def all_changes(self) -> list[ContainerChange]:
        """Return the changes and the writes into mounts, in path order."""
        return sorted(
            self.plan.changes + self.volume_writes, key=lambda c: (c.path, c.kind)
        )

    def close(self) -> None:
        if self.base_image is not None:
            self.base_image.close()


def read_container(
    upper: str | None,
    *,
    merged: str | None = None,
    base: str | None = None,
    lowers: Iterable[str] = (),
    table: mnt.MountTable | None = None,
    keep_stubs: bool = False,
    image: str | None = None,
    platform: str | None = None,
    max_size: int | None = None,
    jobs: int | None = None,
    cache: Any = None,
) -> Container:
    """Read an upper dir (or merged root) and its lower side into a plan.

    The lower side is the base image, else the lower dirs (top first),
    else the lower dirs that the inspect JSON names. ``cache`` is a
    LayerCache for the base image's layers.
    """
    from .archive import open_image
    from .inspect import inspect_image
    from .upperdir import read_merged_root, read_upperdir

    table = table if table is not None else mnt.MountTable.defaults()
    upper = upper or (None if merged else table.upper_dir)
    if upper is None and merged is None:
        raise UsageError(
            "no upper dir: give UPPER, --merged DIR, or --inspect JSON naming one"
        )
    if upper is not None and merged is not None:
        raise UsageError("give either an upper dir or --merged, not both")
    lowers = list(lowers)
    if base is not None and lowers:
        raise UsageError(
            "give either --base or --lower, not both: each is the whole lower "
            "side of the container"
        )
    if base is None and not lowers:
        lowers = list(table.lower_dirs)

    result = Container(plan=None, table=table, lowers=lowers)  # type: ignore[arg-type]
    try:
        if base is not None:
            img = open_image(base, image=image, platform=platform, max_size=max_size)
            result.base_image = img
            view = MergedView()
            result.base_report = inspect_image(
                img, view=view, max_size=max_size, jobs=jobs, cache=cache
            )
            result.base_view = view
        elif lowers:
            result.base_view = lower_view(lowers, result.lower_layers)
        if merged is not None:
            if result.base_view is None:
                raise UsageError("--merged needs the base: give --base or --lower")
            read = read_merged_root(merged, result.base_view, skip=table.is_kernel_fs)
        else:
            assert upper is not None
            read = read_upperdir(upper, lower=result.base_view)
        result.plan = plan_commit(
            read,
            result.base_view,
            table,
            keep_stubs=keep_stubs,
            merged=merged is not None,
        )
        if merged is None:
            result.volume_writes = list_mount_sources(
                table, result.base_view, result.notes
            )
    except BaseException:
        result.close()
        raise
    return result
