"""Classifying one layer against the merged view below it, and applying it.

OCI image-spec, layer chapter: whiteouts and opaque directories act on the
layers below only, so they are resolved against the view before any entry
of the layer is added, whatever their order in the tar.
"""

from __future__ import annotations

from . import paths
from .model import Change, ChangeKind, Changeset, Entry, EntryType, Finding, Severity
from .tree import Inode, MergedView, Node

__all__ = ["apply_layer"]

_IMPLICIT_DIR_MODE = 0o755


def apply_layer(
    view: MergedView, changeset: Changeset, layer: int
) -> tuple[list[Change], list[Finding]]:
    """Apply one layer on top of the merged view; return its changes.

    The view is updated in place. Findings report entries that do nothing
    (a whiteout of a missing path) or that break a rule (a hard link to a
    missing target).
    """
    changes: list[Change] = []
    findings: list[Finding] = []

    for target in dict.fromkeys(changeset.whiteouts):
        node = view.get(target)
        if node is None:
            findings.append(
                Finding(
                    "whiteout-missing-target",
                    "whiteout deletes a path that no lower layer has",
                    Severity.INFO,
                    path=target,
                    layer=layer,
                )
            )
            continue
        removed, freed = view.remove(target, "deleted")
        changes.append(
            Change(
                target, ChangeKind.DELETE, node.data_type, None, 0, removed - 1, freed
            )
        )

    for directory in dict.fromkeys(changeset.opaque_dirs):
        node = view.get(directory)
        if node is None or node.entry.type is not EntryType.DIR:
            continue  # a directory new in this layer has nothing to hide
        removed, freed = view.remove_children(directory, "shadowed")
        changes.append(
            Change(directory, ChangeKind.OPAQUE, EntryType.DIR, None, 0, removed, freed)
        )

    final: dict[str, Entry] = {}
    for entry in changeset.entries:
        earlier = final.pop(entry.path, None)
        if earlier is not None:
            findings.append(
                Finding(
                    "duplicate-entry",
                    "the layer holds this path more than once; the last entry "
                    "wins and the earlier ones only cost space",
                    Severity.INFO,
                    path=entry.path,
                    layer=layer,
                    size=earlier.size if earlier.type is EntryType.FILE else None,
                )
            )
        if earlier is not None and earlier.type is EntryType.FILE:
            view.charge(layer, "shadowed", earlier.size)  # shipped, then replaced
        final[entry.path] = entry

    # Hard links go last, in tar order, so their targets are in place. One
    # that comes before its target in the tar is extracted (by GNU tar or
    # containerd) against what exists at that point: the file below, or
    # nothing, and then the link is not created.
    position = {entry.path: i for i, entry in enumerate(changeset.entries)}
    links = [e for e in final.values() if e.type is EntryType.HARDLINK]
    early = {
        e.path: view.get(e.linkname)
        for e in links
        if position.get(e.linkname, -1) > position[e.path]
    }
    for path in sorted(final):
        entry = final[path]
        if entry.type is EntryType.HARDLINK:
            continue
        inode = None
        if entry.type is EntryType.FILE:
            inode = Inode(entry.size, layer, entry.sha256)
        _place(view, Node(entry, layer, inode), layer, changes, findings)

    for entry in links:
        if entry.path in early:
            target = early[entry.path]
            below = target is not None and target.inode is not None
            findings.append(
                Finding(
                    "hardlink-missing-target",
                    f"hard link comes before its target /{entry.linkname} in the "
                    + (
                        "tar, so extracting it links to the file below"
                        if below
                        else "tar, so extracting it fails and the link is not created"
                    ),
                    Severity.WARNING,
                    path=entry.path,
                    layer=layer,
                )
            )
            if not below:
                continue
        else:
            target = view.get(entry.linkname)
        if target is None or target.inode is None:
            why = "is missing" if target is None else "is not a regular file"
            findings.append(
                Finding(
                    "hardlink-missing-target",
                    f"hard link target /{entry.linkname} {why}",
                    Severity.WARNING,
                    path=entry.path,
                    layer=layer,
                )
            )
        inode = target.inode if target is not None else None
        if inode is not None:
            # A hard link is another name for the target's inode: extracting
            # it ignores the mode and owner in its own header.
            source = target.entry
            entry.mode, entry.uid, entry.gid = source.mode, source.uid, source.gid
            entry.xattrs = source.xattrs
        _place(view, Node(entry, layer, inode), layer, changes, findings)

    return changes, findings


def _place(
    view: MergedView,
    node: Node,
    layer: int,
    changes: list[Change],
    findings: list[Finding],
) -> None:
    entry = node.entry
    path = entry.path
    _ensure_parents(view, path, layer, findings)
    lower = view.get(path)
    kind_type = node.data_type
    size = entry.size if entry.type is EntryType.FILE else 0
    if lower is None:
        view.put(node)
        changes.append(Change(path, ChangeKind.ADD, kind_type, None, size))
        return

    lower_type = lower.data_type
    if lower_type is not kind_type:
        hidden = freed = 0
        if lower_type is EntryType.DIR:
            hidden, freed = view.remove_children(path, "shadowed")
        view.remove(path, "shadowed")
        view.put(node)
        changes.append(
            Change(path, ChangeKind.MODIFY, kind_type, "type", size, hidden, freed)
        )
        return

    if kind_type is EntryType.DIR:
        # Directories keep their children; only their own metadata changes.
        # Their mtime moves whenever a child changes, so it is not compared.
        node.inode = None
        view.nodes[path] = node
        if not entry.same_metadata(lower.entry, with_mtime=False):
            changes.append(Change(path, ChangeKind.MODIFY, kind_type, "metadata"))
        return

    same_content = lower.same_content(node)
    cause = "metadata_only" if same_content else "shadowed"
    if node.inode is not None and lower.inode is node.inode:
        cause = "shadowed"  # a hard link re-pointed at its own inode
    view.remove(path, cause)
    view.put(node)
    if not same_content:
        reason = "content"
    elif entry.same_metadata(lower.entry, with_mtime=True):
        changes.append(Change(path, ChangeKind.SAME, kind_type, None, size))
        return
    else:
        reason = "metadata"
    changes.append(Change(path, ChangeKind.MODIFY, kind_type, reason, size))


def _ensure_parents(
    view: MergedView, path: str, layer: int, findings: list[Finding]
) -> None:
    """Create missing parent directories, as extracting the tar would."""
    parent = paths.parent(path)
    missing = []
    while parent and (node := view.get(parent)) is None:
        missing.append(parent)
        parent = paths.parent(parent)
    if parent and node.data_type is not EntryType.DIR:
        findings.append(
            Finding(
                "parent-not-directory",
                f"parent /{parent} is a {node.data_type.value}, not a directory; "
                "extraction replaces it with a directory",
                Severity.WARNING,
                path=path,
                layer=layer,
            )
        )
        view.remove(parent, "shadowed")
        missing.append(parent)
    for directory in reversed(missing):
        view.put(Node(Entry(directory, EntryType.DIR, _IMPLICIT_DIR_MODE), layer))
