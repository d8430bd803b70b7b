"""The merged view: the filesystem that a stack of layers gives.

Regular files and their hard links share one inode record, so that data
reached by several names is counted once and becomes waste only when the
last name is gone. Waste is charged to the layer that shipped the bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

from . import paths
from .model import Entry, EntryType, Waste

__all__ = ["Inode", "Node", "MergedView"]


class Inode:
    """File data shared by a regular file and its hard links.

    The content digest is kept as its 32 bytes, not as 64 hex digits: a
    merged view holds one per file, and the hex form is only needed when
    a report is written.
    """

    __slots__ = ("digest", "layer", "refs", "size")

    def __init__(
        self, size: int, layer: int, sha256: str | None, refs: int = 0
    ) -> None:
        self.size = size
        self.layer = layer
        self.sha256 = sha256
        self.refs = refs

    @property
    def sha256(self) -> str | None:
        """The sha256 of the content as hex digits, or None if unknown."""
        digest = self.digest
        return digest.hex() if isinstance(digest, bytes) else digest

    @sha256.setter
    def sha256(self, value: str | None) -> None:
        try:
            self.digest = bytes.fromhex(value) if value else value
        except ValueError:  # not hex: kept as given
            self.digest = value

    def __repr__(self) -> str:
        return (
            f"Inode(size={self.size!r}, layer={self.layer!r}, "
            f"sha256={self.sha256!r}, refs={self.refs!r})"
        )


@dataclass(slots=True)
class Node:
    """One path of the merged view and the layer its entry came from."""

    entry: Entry
    layer: int
    inode: Inode | None = None

    @property
    def data_type(self) -> EntryType:
        """The type as the filesystem sees it: a hard link is a file."""
        if self.entry.type is EntryType.HARDLINK and self.inode is not None:
            return EntryType.FILE
        return self.entry.type

    @property
    def size(self) -> int:
        return self.inode.size if self.inode is not None else 0

    def same_content(self, other: Node) -> bool:
        """Tell whether two nodes of one type hold the same data."""
        kind = other.data_type
        if kind is EntryType.FILE:
            if self.inode is None or other.inode is None:
                return False
            return (self.inode.size, self.inode.digest) == (
                other.inode.size,
                other.inode.digest,
            )
        if kind is EntryType.SYMLINK:
            return self.entry.linkname == other.entry.linkname
        if kind in (EntryType.CHAR, EntryType.BLOCK):
            mine = (self.entry.devmajor, self.entry.devminor)
            return mine == (other.entry.devmajor, other.entry.devminor)
        return True

    @property
    def sha256(self) -> str | None:
        return self.inode.sha256 if self.inode is not None else None


_ROOT = Entry(path="", type=EntryType.DIR, mode=0o755)


@dataclass
class MergedView:
    """Paths to nodes, with a children index so subtrees can be removed."""

    nodes: dict[str, Node] = field(default_factory=dict)
    children: dict[str, set[str]] = field(default_factory=dict)
    waste: list[Waste] = field(default_factory=list)

    def __post_init__(self) -> None:
        if "" not in self.nodes:
            self.nodes[""] = Node(_ROOT, -1)
            self.children[""] = set()

    def get(self, path: str) -> Node | None:
        return self.nodes.get(path)

    def __contains__(self, path: str) -> bool:
        return path in self.nodes

    def __len__(self) -> int:
        return len(self.nodes) - 1

    def charge(self, layer: int, cause: str, size: int) -> None:
        """Count ``size`` bytes shipped by ``layer`` as waste of a kind."""
        while len(self.waste) <= layer:
            self.waste.append(Waste())
        self.waste[layer].add(cause, size)

    def child_paths(self, path: str) -> list[str]:
        """Return the direct children of a directory, sorted."""
        return sorted(self.children.get(path, ()))

    def remove(self, path: str, cause: str) -> tuple[int, int]:
        """Remove a path and its subtree; return (paths removed, bytes freed).

        Bytes are freed when the last name of an inode goes; they are
        charged to the layer that shipped them as waste of kind ``cause``.
        """
        node = self.nodes.get(path)
        if node is None or path == "":
            return 0, 0
        self.children[paths.parent(path)].discard(path)
        count = freed = 0
        stack = [path]
        while stack:
            current = stack.pop()
            node = self.nodes.pop(current)
            count += 1
            kids = self.children.pop(current, None)
            if kids:
                stack.extend(kids)
            inode = node.inode
            if inode is not None:
                inode.refs -= 1
                if inode.refs == 0:
                    freed += inode.size
                    if inode.layer >= 0:
                        self.charge(inode.layer, cause, inode.size)
        return count, freed

    def remove_children(self, path: str, cause: str) -> tuple[int, int]:
        """Remove everything below a directory, keeping the directory."""
        count = freed = 0
        for child in list(self.children.get(path, ())):
            removed, bytes_ = self.remove(child, cause)
            count += removed
            freed += bytes_
        return count, freed

    def put(self, node: Node) -> None:
        """Insert a node whose path and parents are free or directories."""
        path = node.entry.path
        self.nodes[path] = node
        self.children[paths.parent(path)].add(path)
        if node.entry.type is EntryType.DIR:
            self.children.setdefault(path, set())
        if node.inode is not None:
            node.inode.refs += 1

    def iter_nodes(self) -> Iterator[Node]:
        """Yield every node but the root, in path order."""
        for path in sorted(self.nodes):
            if path:
                yield self.nodes[path]
