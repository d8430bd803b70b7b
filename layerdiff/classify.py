"""Classifying one layer against the merged view below it, and applying it.

OCI image-spec, layer chapter: whiteouts and opaque directories act on the
layers below only, so they are resolved against the view before any entry
of the layer is added, whatever their order in the tar.
"""

from __future__ import annotations

import heapq
from array import array
from collections.abc import Iterator

from .model import (
    KIND_CODES,
    REASON_CODES,
    ChangeKind,
    ChangeList,
    Changeset,
    EntryTable,
    EntryType,
    Finding,
    Severity,
)
from .tree import BLOCK, CHAR, DIR, FILE, HARDLINK, IMPLICIT_DIR, SYMLINK, MergedView

__all__ = ["apply_layer"]

_ADD = KIND_CODES[ChangeKind.ADD]
_MODIFY = KIND_CODES[ChangeKind.MODIFY]
_DELETE = KIND_CODES[ChangeKind.DELETE]
_OPAQUE = KIND_CODES[ChangeKind.OPAQUE]
_SAME = KIND_CODES[ChangeKind.SAME]
_CONTENT = REASON_CODES["content"]
_METADATA = REASON_CODES["metadata"]
_TYPE = REASON_CODES["type"]
_TYPE_NAMES = [None, *EntryType]


def apply_layer(
    view: MergedView, changeset: Changeset, layer: int
) -> tuple[ChangeList, list[Finding]]:
    """Apply one layer on top of the merged view; return its changes.

    The view is updated in place. Findings report entries that do nothing
    (a whiteout of a missing path) or that break a rule (a hard link to a
    missing target).
    """
    return _Apply(view, changeset, layer).run()


class _Apply:
    """The work of applying one layer, with the state it shares."""

    def __init__(self, view: MergedView, changeset: Changeset, layer: int) -> None:
        table = changeset.entries
        if not isinstance(table, EntryTable):
            table = EntryTable.from_entries(table)
        self.view = view
        self.changeset = changeset
        self.table = table
        self.layer = layer
        self.changes = ChangeList(table=view.paths)
        self.findings: list[Finding] = []
        self.implicit = view.meta_number(IMPLICIT_DIR)

    def finding(self, rule: str, message: str, severity: Severity, **where) -> None:
        self.findings.append(
            Finding(rule, message, severity, layer=self.layer, **where)
        )

    def run(self) -> tuple[ChangeList, list[Finding]]:
        view, changes, changeset = self.view, self.changes, self.changeset
        view.release_inodes()
        view.fit_layer(self.layer)
        for target in dict.fromkeys(changeset.whiteouts):
            number = view.find(target)
            if number <= 0:
                self.finding(
                    "whiteout-missing-target",
                    "whiteout deletes a path that no lower layer has",
                    Severity.INFO,
                    path=target,
                )
                continue
            kind_type = view.data_type(number)
            removed, freed = view.drop(number, "deleted")
            changes.add(number, _DELETE, kind_type, 0, 0, removed - 1, freed)

        for directory in dict.fromkeys(changeset.opaque_dirs):
            number = view.find(directory)
            if number < 0 or view.types[number] != DIR:
                continue  # a directory new in this layer has nothing to hide
            removed, freed = view.drop_children(number, "shadowed")
            changes.add(number, _OPAQUE, DIR, 0, 0, removed, freed)

        table = self.table
        types, sizes = table.types, table.sizes
        numbers = array("I", map(view.number, table.iter_paths()))
        self.numbers = numbers
        # Where each path number last occurs in this layer's tar.
        last = array("i", bytes(4 * len(view.paths)))
        # Paths that had children and that a non-directory entry replaces:
        # the position of the last such entry. Extraction removes what lay
        # below them at that point, entries earlier in this tar included.
        child = view.child
        replaced = self.replaced = {}
        for index, number in enumerate(numbers):
            if types[index] != DIR and child[number] >= 0:
                replaced[number] = index
            earlier = last[number] - 1
            if earlier >= 0:
                is_file = types[earlier] == FILE
                self.finding(
                    "duplicate-entry",
                    "the layer holds this path more than once; the last entry "
                    "wins and the earlier ones only cost space",
                    Severity.INFO,
                    path=table.path(index),
                    size=sizes[earlier] if is_file else None,
                )
                if is_file:  # shipped, then replaced
                    view.charge(self.layer, "shadowed", sizes[earlier])
            last[number] = index + 1

        # Hard links go last, in tar order, so their targets are in place. One
        # that comes before its target in the tar is extracted (by GNU tar or
        # containerd) against what exists at that point: the file below, or
        # nothing, and then the link is not created.
        links = [
            i
            for i, number in enumerate(numbers)
            if types[i] == HARDLINK and last[number] == i + 1
        ]
        if replaced:
            links = [i for i in links if not self.lost(i)]
        early: dict[int, tuple[int, int] | None] = {}
        cut: dict[int, int] = {}  # link: the parent of its target replaced later
        # Links to an entry of this layer that a later entry removes: they
        # are made while it exists, so they take its data.
        self.before: dict[int, int] = {}
        for index in links:
            target = view.paths.find(table.extra[index][0])
            if target < 0:
                continue
            later = last[target] - 1 > index
            if not later and replaced:
                above = self.replaced_after(target, index)
                if above >= 0:
                    entry = last[target] - 1
                    if entry >= 0 and types[entry] == FILE:
                        self.before[index] = entry
                        continue
                    later = True
                    cut[index] = above
            if later:
                below = view.types[target] and view.inodes[target] >= 0
                early[index] = (
                    (view.inodes[target], view.meta[target]) if below else None
                )
        regular = array(
            "I",
            (
                i
                for i, number in enumerate(numbers)
                if types[i] != HARDLINK and last[number] == i + 1
            ),
        )
        del last
        if replaced:
            regular = array("I", (i for i in regular if not self.lost(i)))
        order = _sorted_by_path(table, regular)
        layer_metas = [view.meta_number(meta) for meta in table.metas]
        meta = table.meta
        extra = table.extra
        for index in order:
            kind = types[index]
            inode = -1
            if kind == FILE:
                inode = view.new_inode(sizes[index], self.layer, table.digest(index))
            self.place(index, kind, layer_metas[meta[index]], inode, extra.get(index))

        made: dict[int, int] = {}  # removed entry: the inode its links share
        for index in links:
            linkname = extra[index][0]
            if index in self.before:
                entry = self.before[index]
                inode = made.get(entry, -1)
                if inode < 0:
                    inode = made[entry] = view.new_inode(
                        sizes[entry], self.layer, table.digest(entry)
                    )
                    # Its bytes were counted as removed; a link keeps them.
                    view.charge(self.layer, "shadowed", -sizes[entry])
                target_meta = layer_metas[meta[entry]]
            elif index in early:
                snapshot = early[index]
                what = f"its target /{linkname}"
                if index in cut:
                    what = f"/{view.paths[cut[index]]} is replaced"
                self.finding(
                    "hardlink-missing-target",
                    f"hard link comes before {what} in the "
                    + (
                        "tar, so extracting it links to the file below"
                        if snapshot is not None
                        else "tar, so extracting it fails and the link is not created"
                    ),
                    Severity.WARNING,
                    path=table.path(index),
                )
                if snapshot is None:
                    continue
                inode, target_meta = snapshot
            else:
                target = view.find(linkname)
                inode = view.inodes[target] if target >= 0 else -1
                if inode < 0:
                    why = "is missing" if target < 0 else "is not a regular file"
                    self.finding(
                        "hardlink-missing-target",
                        f"hard link target /{linkname} {why}",
                        Severity.WARNING,
                        path=table.path(index),
                    )
                target_meta = view.meta[target] if target >= 0 else -1
            own = layer_metas[meta[index]]
            if inode >= 0:
                # A hard link is another name for the target's inode: extracting
                # it ignores the mode and owner in its own header.
                mode, uid, gid, _, _, _, xattrs = view.metas[target_meta]
                _, _, _, mtime, uname, gname, _ = view.metas[own]
                own = view.meta_number((mode, uid, gid, mtime, uname, gname, xattrs))
            self.place(index, HARDLINK, own, inode, extra[index])

        return changes, self.findings

    def replaced_after(self, number: int, position: int) -> int:
        """Return a parent of a path replaced by an entry after ``position``."""
        replaced = self.replaced
        parents = self.view.paths.parents
        above = parents[number]
        while above > 0:
            at = replaced.get(above)
            if at is not None and at > position:
                return above
            above = parents[above]
        return -1

    def lost(self, index: int) -> bool:
        """Tell whether a later entry of this layer removes this one.

        A non-directory entry that replaces a directory removes everything
        below it that extraction created so far, from this layer as well.
        """
        above = self.replaced_after(self.numbers[index], index)
        if above < 0:
            return False
        table = self.table
        is_file = table.types[index] == FILE
        self.finding(
            "entry-replaced-in-layer",
            f"a later entry of the layer replaces /{self.view.paths[above]} "
            "with a non-directory, which removes this entry when extracted",
            Severity.INFO,
            path=table.path(index),
            size=table.sizes[index] if is_file else None,
        )
        if is_file:  # shipped, then removed
            self.view.charge(self.layer, "shadowed", table.sizes[index])
        return True

    def place(
        self,
        index: int,
        kind: int,
        meta: int,
        inode: int,
        extra: tuple[str, int, int] | None,
    ) -> None:
        view, layer = self.view, self.layer
        number = self.numbers[index]
        parent = view.parent[number]
        if view.types[parent] != DIR:
            self.ensure_parents(parent, index)
        lower = view.types[number]
        kind_type = FILE if kind == HARDLINK and inode >= 0 else kind
        size = self.table.sizes[index] if kind == FILE else 0
        changes = self.changes
        if not lower:
            view.set(number, kind, layer, meta, inode, extra)
            changes.add(number, _ADD, kind_type, 0, size)
            return

        lower_type = view.data_type(number)
        if lower_type != kind_type:
            hidden = freed = 0
            if lower_type == DIR:
                hidden, freed = view.drop_children(number, "shadowed")
            view.drop(number, "shadowed")
            view.set(number, kind, layer, meta, inode, extra)
            changes.add(number, _MODIFY, kind_type, _TYPE, size, hidden, freed)
            return

        lower_meta = view.meta[number]
        if kind_type == DIR:
            # Directories keep their children; only their own metadata changes.
            # Their mtime moves whenever a child changes, so it is not compared.
            view.set(number, kind, layer, meta, -1, extra)
            if not _same_metadata(view.metas[meta], view.metas[lower_meta], False):
                changes.add(number, _MODIFY, kind_type, _METADATA)
            return

        lower_inode = view.inodes[number]
        if kind_type == FILE:
            same_content = lower_inode >= 0 and view.same_data(lower_inode, inode)
        elif kind_type == SYMLINK or kind_type in (CHAR, BLOCK):
            old = view.extra.get(number, ("", 0, 0))
            new = extra or ("", 0, 0)
            same_content = (
                old[0] == new[0] if kind_type == SYMLINK else old[1:] == new[1:]
            )
        else:
            same_content = True
        cause = "metadata_only" if same_content else "shadowed"
        if inode >= 0 and lower_inode == inode:
            cause = "shadowed"  # a hard link re-pointed at its own inode
        view.drop(number, cause)
        view.set(number, kind, layer, meta, inode, extra)
        if not same_content:
            reason = _CONTENT
        elif _same_metadata(view.metas[meta], view.metas[lower_meta], True):
            changes.add(number, _SAME, kind_type, 0, size)
            return
        else:
            reason = _METADATA
        changes.add(number, _MODIFY, kind_type, reason, size)

    def ensure_parents(self, parent: int, index: int) -> None:
        """Create missing parent directories, as extracting the tar would."""
        view = self.view
        missing = []
        while parent > 0 and not view.types[parent]:
            missing.append(parent)
            parent = view.parent[parent]
        if parent > 0 and view.types[parent] != DIR:
            shown = view.paths[parent]
            kind = _TYPE_NAMES[view.data_type(parent)].value  # type: ignore[union-attr]
            self.finding(
                "parent-not-directory",
                f"parent /{shown} is a {kind}, not a directory; "
                "extraction replaces it with a directory",
                Severity.WARNING,
                path=self.table.path(index),
            )
            view.drop(parent, "shadowed")
            missing.append(parent)
        for directory in reversed(missing):
            view.set(directory, DIR, self.layer, self.implicit)


# Entries are sorted in runs of this many, then merged: sorting a whole
# layer at once would hold a string for each of its paths at the same time.
_RUN = 1 << 15


def _sorted_by_path(table: EntryTable, indexes: array) -> Iterator[int]:
    """Yield entry indexes in the order of their paths."""
    if len(indexes) <= _RUN:
        return iter(sorted(indexes, key=table.path))
    runs = [
        array("I", sorted(indexes[start : start + _RUN], key=table.path))
        for start in range(0, len(indexes), _RUN)
    ]
    return heapq.merge(*runs, key=table.path)


def _same_metadata(one: tuple, two: tuple, with_mtime: bool) -> bool:
    """Tell whether mode, owner, xattrs (and mtime if asked) are equal."""
    return (
        one[0] == two[0]
        and one[1] == two[1]
        and one[2] == two[2]
        and one[6] == two[6]
        and (not with_mtime or one[3] == two[3])
    )
