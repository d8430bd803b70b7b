"""The merged view: the filesystem that a stack of layers gives.

Regular files and their hard links share one inode record, so that data
reached by several names is counted once and becomes waste only when the
last name is gone. Waste is charged to the layer that shipped the bytes.

The view is stored as columns indexed by path number (see PathTable), not
as an object per path: an image of a million files would otherwise need
over half a gigabyte for its view alone. ``get`` and ``iter_nodes`` make
Node objects on demand; they are snapshots, and changing one does not
change the view.
"""

from __future__ import annotations

import copy
from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from .model import TYPE_CODES, Entry, EntryType, MetaNumbers, PathTable, Waste

__all__ = ["Inode", "Node", "MergedView"]

FILE = TYPE_CODES[EntryType.FILE]
DIR = TYPE_CODES[EntryType.DIR]
SYMLINK = TYPE_CODES[EntryType.SYMLINK]
HARDLINK = TYPE_CODES[EntryType.HARDLINK]
CHAR = TYPE_CODES[EntryType.CHAR]
BLOCK = TYPE_CODES[EntryType.BLOCK]
_TYPES: list[EntryType | None] = [None, *EntryType]
_NO_DIGEST = bytes(32)
# The metadata of a directory that a layer implies by a deeper entry.
IMPLICIT_DIR = (0o755, 0, 0, 0, "", "", None)


class Inode:
    """File data shared by a regular file and its hard links.

    ``number`` names the inode record in its view: two nodes are names of
    one file when their inodes have the same number.
    """

    __slots__ = ("size", "layer", "digest", "refs", "number")

    def __init__(
        self,
        size: int,
        layer: int,
        sha256: str | None,
        refs: int = 0,
        number: int | None = None,
    ) -> None:
        self.size = size
        self.layer = layer
        self.digest = bytes.fromhex(sha256) if sha256 else None
        self.refs = refs
        self.number = number

    @property
    def sha256(self) -> str | None:
        """The sha256 of the content as hex digits, or None if unknown."""
        return self.digest.hex() if self.digest is not None else None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Inode):
            return NotImplemented
        if self.number is not None or other.number is not None:
            return self.number == other.number
        return (self.size, self.digest) == (other.size, other.digest)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"Inode(size={self.size!r}, layer={self.layer!r}, "
            f"sha256={self.sha256!r}, refs={self.refs!r}, number={self.number!r})"
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


class MergedView(MetaNumbers):
    """The merged view, as columns indexed by path number.

    Every path ever added keeps its number (and its place in its parent's
    list of children); a path deleted from the view has type 0. Inode
    records are never reused, so a hard link may still name the data of a
    file replaced in the same layer, as extracting the tar would.
    """

    def __init__(self) -> None:
        self.paths = PathTable()
        self.types = bytearray()  # TYPE_CODES; 0: not in the view
        self.layers = array("h")  # becomes "i" past 32767 layers
        self.meta = array("I")  # number in self.metas
        self.inodes = array("i")  # inode number, -1 for none
        self.child = array("i")  # first child ever added, -1 for none
        self.sibling = array("i")  # next child of the same parent, -1
        # linkname, devmajor and devminor, for the nodes that have them
        self.extra: dict[int, tuple[str, int, int]] = {}
        # (mode, uid, gid, mtime, uname, gname, xattrs_key), by number
        self.metas: list[tuple] = []
        self._meta_index: dict[tuple, int] = {}
        self.isize = array("I")  # sizes of 4 GiB and more are in ibig
        self.ibig: dict[int, int] = {}
        self.ilayer = array("h")
        self.irefs = array("i")
        self.idigest = bytearray()  # 32 bytes an inode
        self.ihashed = bytearray()
        # Inodes whose last name went: reused from the next layer on, as a
        # hard link of the same layer may still name one (see classify).
        self.ifreed: dict[int, str] = {}  # inode: the waste it was charged as
        self.ifree = array("i")
        self.waste: list[Waste] = []
        self.live = 0
        self.parent = self.paths.parents  # the same array: read only here
        root = 0
        for column in (self.layers, self.inodes, self.child, self.sibling):
            column.append(-1)
        self.types.append(0)
        self.meta.append(0)
        self.set(root, DIR, -1, self.meta_number(IMPLICIT_DIR))

    # -- numbers, metadata and inodes ------------------------------------

    def number(self, path: str) -> int:
        """Return the number of a path, adding it (not to the view) if new.

        Missing parents get numbers too, so each number knows its parent.
        """
        count = len(self.types)
        number = self.paths.add(path)
        if number >= count:
            parents, child = self.paths.parents, self.child
            for new in range(count, number + 1):  # parents come first
                self.types.append(0)
                self.layers.append(-1)
                self.meta.append(0)
                self.inodes.append(-1)
                child.append(-1)
                parent = parents[new]
                self.sibling.append(child[parent])
                child[parent] = new
        return number

    def find(self, path: str) -> int:
        """Return the number of a path in the view, or -1."""
        number = self.paths.find(path)
        return number if number >= 0 and self.types[number] else -1

    def new_inode(self, size: int, layer: int, digest: bytes | None) -> int:
        if self.ifree:
            number = self.ifree.pop()
            self.ibig.pop(number, None)
            if size > 0xFFFFFFFF:
                self.ibig[number], size = size, 0
            self.isize[number] = size
            self.ilayer[number] = layer
            self.irefs[number] = 0
            self.idigest[32 * number : 32 * number + 32] = digest or _NO_DIGEST
            self.ihashed[number] = digest is not None
            return number
        number = len(self.isize)
        if size > 0xFFFFFFFF:
            self.ibig[number], size = size, 0
        self.isize.append(size)
        self.ilayer.append(layer)
        self.irefs.append(0)
        self.idigest += digest if digest is not None else _NO_DIGEST
        self.ihashed.append(digest is not None)
        return number

    def release_inodes(self) -> None:
        """Make the inodes freed so far reusable: called between layers."""
        irefs = self.irefs
        self.ifree.extend(n for n in self.ifreed if irefs[n] == 0)
        self.ifreed.clear()

    def inode_size(self, number: int) -> int:
        size = self.isize[number]
        return size if size or not self.ibig else self.ibig.get(number, 0)

    def fit_layer(self, layer: int) -> None:
        """Widen the layer columns before a layer number would not fit."""
        if layer > 0x7FFF and self.layers.typecode == "h":
            self.layers = array("i", self.layers)
            self.ilayer = array("i", self.ilayer)

    def same_data(self, one: int, two: int) -> bool:
        """Tell whether two inodes hold the same size and digest."""
        if self.inode_size(one) != self.inode_size(two):
            return False
        if self.ihashed[one] != self.ihashed[two]:
            return False
        digests = self.idigest
        return digests[32 * one : 32 * one + 32] == digests[32 * two : 32 * two + 32]

    def data_type(self, number: int) -> int:
        """The type code as the filesystem sees it: a hard link is a file."""
        code = self.types[number]
        if code == HARDLINK and self.inodes[number] >= 0:
            return FILE
        return code

    # -- changing the view -----------------------------------------------

    def set(
        self,
        number: int,
        kind: int,
        layer: int,
        meta: int,
        inode: int = -1,
        extra: tuple[str, int, int] | None = None,
    ) -> None:
        """Put a node at a path number that is free or that it replaces.

        A replaced node's inode reference must have been dropped (with
        ``remove``) first; a directory replacing a directory keeps its
        children.
        """
        if not self.types[number]:
            self.live += 1
        self.types[number] = kind
        self.layers[number] = layer
        self.meta[number] = meta
        self.inodes[number] = inode
        if inode >= 0:
            if not self.irefs[inode] and inode in self.ifreed:
                # A hard link named the data after its last name went: the
                # bytes are in use again, not waste.
                layer_of = self.ilayer[inode]
                if layer_of >= 0:
                    size = self.inode_size(inode)
                    self.charge(layer_of, self.ifreed.pop(inode), -size)
            self.irefs[inode] += 1
        if extra is not None:
            self.extra[number] = extra
        else:
            self.extra.pop(number, None)

    def waste_of(self, layer: int) -> Waste:
        """Return the waste charged so far to a layer (0-based)."""
        return self.waste[layer] if layer < len(self.waste) else Waste()

    def charge(self, layer: int, cause: str, size: int) -> None:
        """Count ``size`` bytes shipped by ``layer`` as waste of a kind."""
        while len(self.waste) <= layer:
            self.waste.append(Waste())
        self.waste[layer].add(cause, size)

    def drop(self, number: int, cause: str) -> tuple[int, int]:
        """Remove a node and its subtree; return (paths removed, bytes freed).

        Bytes are freed when the last name of an inode goes; they are
        charged to the layer that shipped them as waste of kind ``cause``.
        """
        if number <= 0 or not self.types[number]:
            return 0, 0
        types, inodes, child, sibling = (
            self.types,
            self.inodes,
            self.child,
            self.sibling,
        )
        irefs = self.irefs
        count = freed = 0
        stack = [number]
        while stack:
            current = stack.pop()
            types[current] = 0
            count += 1
            below = child[current]
            while below >= 0:
                if types[below]:
                    stack.append(below)
                below = sibling[below]
            inode = inodes[current]
            if inode >= 0:
                inodes[current] = -1
                irefs[inode] -= 1
                if irefs[inode] == 0:
                    self.ifreed[inode] = cause
                    size = self.inode_size(inode)
                    freed += size
                    if self.ilayer[inode] >= 0:
                        self.charge(self.ilayer[inode], cause, size)
        self.live -= count
        return count, freed

    def drop_children(self, number: int, cause: str) -> tuple[int, int]:
        """Remove everything below a directory, keeping the directory."""
        count = freed = 0
        below = self.child[number]
        while below >= 0:
            if self.types[below]:
                removed, bytes_ = self.drop(below, cause)
                count += removed
                freed += bytes_
            below = self.sibling[below]
        return count, freed

    def remove(self, path: str, cause: str) -> tuple[int, int]:
        """Remove a path and its subtree; return (paths removed, bytes freed)."""
        number = self.find(path)
        return self.drop(number, cause) if number > 0 else (0, 0)

    def remove_children(self, path: str, cause: str) -> tuple[int, int]:
        """Remove everything below a directory, keeping the directory."""
        number = self.find(path)
        return self.drop_children(number, cause) if number >= 0 else (0, 0)

    # -- reading the view ------------------------------------------------

    def __len__(self) -> int:
        return self.live - 1

    def __contains__(self, path: str) -> bool:
        return self.find(path) >= 0

    def node(self, number: int) -> Node:
        """Make the Node of a path number that is in the view."""
        mode, uid, gid, mtime, uname, gname, xattrs = self.metas[self.meta[number]]
        linkname, devmajor, devminor = self.extra.get(number, ("", 0, 0))
        kind = self.types[number]
        inode = None
        number_of_inode = self.inodes[number]
        if number_of_inode >= 0:
            at = 32 * number_of_inode
            inode = Inode(
                self.inode_size(number_of_inode),
                self.ilayer[number_of_inode],
                None,
                self.irefs[number_of_inode],
                number_of_inode,
            )
            if self.ihashed[number_of_inode]:
                inode.digest = bytes(self.idigest[at : at + 32])
        entry = Entry(
            self.paths[number],
            _TYPES[kind],  # type: ignore[arg-type]
            mode,
            uid,
            gid,
            inode.size if inode is not None and kind == FILE else 0,
            mtime,
            linkname,
            inode.sha256 if inode is not None and kind == FILE else None,
            dict(xattrs) if xattrs else None,
            devmajor,
            devminor,
            uname,
            gname,
        )
        return Node(entry, self.layers[number], inode)

    def get(self, path: str) -> Node | None:
        number = self.find(path)
        return self.node(number) if number >= 0 else None

    def child_paths(self, path: str) -> list[str]:
        """Return the direct children of a directory, sorted."""
        number = self.find(path)
        if number < 0:
            return []
        found = []
        below = self.child[number]
        while below >= 0:
            if self.types[below]:
                found.append(self.paths[below])
            below = self.sibling[below]
        return sorted(found)

    def live_numbers(self) -> Iterator[int]:
        """Yield the number of every path in the view, the root included."""
        types = self.types
        return (number for number in range(len(types)) if types[number])

    def iter_nodes(self) -> Iterator[Node]:
        """Yield every node but the root, in path order."""
        table = self.paths
        numbers = sorted((n for n in self.live_numbers() if n), key=table.__getitem__)
        return map(self.node, numbers)

    @property
    def nodes(self) -> Mapping[str, Node]:
        """Every path of the view (the root as '') and its node."""
        return _Nodes(self)

    def __deepcopy__(self, memo) -> MergedView:
        other = MergedView.__new__(MergedView)
        for name, value in vars(self).items():
            if isinstance(value, (array, bytearray)):
                setattr(other, name, value[:])
            elif isinstance(value, (dict, list)) and name != "waste":
                setattr(other, name, value.copy())
            else:
                setattr(other, name, copy.deepcopy(value, memo))
        other.parent = other.paths.parents
        return other


class _Nodes(Mapping):
    """A read-only mapping of the view's paths to nodes made on access."""

    def __init__(self, view: MergedView) -> None:
        self._view = view

    def __getitem__(self, path: str) -> Node:
        number = self._view.find(path)
        if number < 0:
            raise KeyError(path)
        return self._view.node(number)

    def __iter__(self) -> Iterator[str]:
        table = self._view.paths
        return (table[n] for n in self._view.live_numbers())

    def __len__(self) -> int:
        return self._view.live

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and self._view.find(path) >= 0
