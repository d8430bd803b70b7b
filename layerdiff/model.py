"""The change model: entries, changes, findings and reports.

Glossary (these words, and no synonyms, are used throughout):

layer          one tar changeset, bottom layer first.
blob           the bytes of a layer or config as stored in an archive.
digest         sha256 of a blob's bytes as stored, written ``sha256:<hex>``.
diff_id        sha256 of a layer's uncompressed tar.
manifest       the JSON naming an image's config and layers.
config         the image JSON: rootfs.diff_ids, history, runtime settings.
history step   one item of the config's history; empty steps have no layer.
entry          one member of a layer's tar, after whiteouts are set apart.
whiteout       ``.wh.NAME`` (or an overlay 0/0 char device): deletes NAME.
opaque directory  a directory whose children from lower layers are hidden.
upper dir      the container's read-write overlay directory.
lower dir      a read-only directory below the upper dir.
merged view    the filesystem that the layers so far give, top wins.
changeset      the content of one layer: entries, whiteouts, opaque dirs.
change         what one layer did to one path: kind and reason.
finding        something a user may need to act on, with a rule id.
commit         packaging an upper dir as a new layer on top of an image.
volume         a mount whose content a commit never captures.
bind mount     a host path mounted into a container; not committed either.
runtime file   a file the engine bind-mounts, such as /etc/hosts.
budget         a size limit that ``check`` enforces.
baseline       recorded sizes of an earlier build, for growth checks.
"""

from __future__ import annotations

import enum
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "EntryType",
    "Entry",
    "Changeset",
    "ChangeKind",
    "Change",
    "ChangeList",
    "PathTable",
    "EntryTable",
    "Mapped",
    "Severity",
    "Finding",
    "Waste",
    "LayerReport",
    "ImageReport",
    "PENDING_FORMAT",
]


class EntryType(str, enum.Enum):
    """The type of an entry, as shown in JSON."""

    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"
    CHAR = "char"
    BLOCK = "block"
    FIFO = "fifo"

    def __str__(self) -> str:
        return self.value


@dataclass(slots=True)
class Entry:
    """One tar entry of a layer (never a whiteout)."""

    path: str
    type: EntryType
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    size: int = 0
    mtime: int = 0
    linkname: str = ""
    sha256: str | None = None
    xattrs: dict[str, bytes] | None = None
    devmajor: int = 0
    devminor: int = 0
    uname: str = ""
    gname: str = ""

    @property
    def is_dir(self) -> bool:
        return self.type is EntryType.DIR

    def same_metadata(self, other: Entry, *, with_mtime: bool) -> bool:
        """Tell whether mode, owner, xattrs (and mtime if asked) are equal."""
        return (
            self.mode == other.mode
            and self.uid == other.uid
            and self.gid == other.gid
            and (self.xattrs or {}) == (other.xattrs or {})
            and (not with_mtime or self.mtime == other.mtime)
        )

    def to_json(self, layer: int | None = None) -> dict[str, Any]:
        """Return the stable JSON form used by ``files --json``.

        ``path`` has no leading ``/`` and ``mode`` is the permission bits as
        an integer, so that tools can compare them without parsing.
        """
        data: dict[str, Any] = {
            "path": self.path,
            "type": self.type.value,
            "mode": self.mode,
            "uid": self.uid,
            "gid": self.gid,
            "size": self.size,
            "linkname": self.linkname or None,
            "sha256": self.sha256,
        }
        if self.type in (EntryType.CHAR, EntryType.BLOCK):
            data["device"] = f"{self.devmajor}:{self.devminor}"
        if self.xattrs:
            data["xattrs"] = sorted(self.xattrs)
        if layer is not None:
            data["layer"] = layer + 1
        return data


@dataclass(slots=True)
class Changeset:
    """The content of one layer, whiteouts set apart from entries.

    ``entries`` keeps tar order, duplicates included (a later entry for the
    same path replaces an earlier one). ``whiteouts`` are the paths deleted
    from the layers below, ``opaque_dirs`` the directories whose lower
    children are hidden.
    """

    entries: list[Entry] | EntryTable = field(default_factory=list)
    whiteouts: list[str] = field(default_factory=list)
    opaque_dirs: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    digest: str | None = None
    diff_id: str | None = None
    compression: str = "none"
    size: int = 0
    uncompressed_size: int = 0


def xattrs_key(xattrs: dict[str, bytes] | None) -> tuple | None:
    """Return xattrs as a sorted tuple of items; None when there are none."""
    return tuple(sorted(xattrs.items())) if xattrs else None


class _Columns(Sequence):
    """A sequence stored as columns, whose items are made on access."""

    __slots__ = ()
    _noun = "item"

    def _make(self, index: int):
        raise NotImplementedError

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self._make(i) for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"{self._noun} index out of range")
        return self._make(index)

    def __iter__(self) -> Iterator:
        return map(self._make, range(len(self)))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (type(self), list)):
            return list(self) == list(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self)!r})"


class MetaNumbers:
    """Numbers for metadata tuples, each distinct tuple stored once.

    Users keep the tuples in ``metas`` and their numbers in ``_meta_index``.
    """

    __slots__ = ()
    metas: list[tuple]
    _meta_index: dict[tuple, int]

    def meta_number(self, meta: tuple) -> int:
        number = self._meta_index.get(meta)
        if number is None:
            number = self._meta_index[meta] = len(self.metas)
            self.metas.append(meta)
        return number


class EntryTable(MetaNumbers, _Columns):
    """A layer's entries stored as columns; Entry objects are made on access.

    Owner, mode, time, owner names and xattrs are stored once per distinct
    combination (a layer's files mostly share a few), digests as 32 bytes.
    The table crosses from worker processes as a handful of buffers. Entries
    are appended, never changed: an Entry taken from the table is a copy.
    """

    _noun = "entry"
    __slots__ = (
        "_blob",
        "_ends",
        "types",
        "metas",
        "meta",
        "sizes",
        "digests",
        "hashed",
        "extra",
        "_meta_index",
    )

    def __init__(self) -> None:
        # Paths as UTF-8 in one buffer, each ending where _ends says: a
        # string object per path would cost three times as much.
        self._blob = bytearray()
        self._ends = array("I")
        self.types = bytearray()  # TYPE_CODES
        # (mode, uid, gid, mtime, uname, gname, xattrs_key), by number
        self.metas: list[tuple] = []
        self.meta = array("I")
        self.sizes = array("q")
        self.digests = bytearray()  # 32 bytes an entry, zeros when unknown
        self.hashed = bytearray()  # 1 where the digest is known
        # linkname, devmajor and devminor, for the entries that have them
        self.extra: dict[int, tuple[str, int, int]] = {}
        self._meta_index: dict[tuple, int] = {}

    @classmethod
    def from_entries(cls, entries: Iterable[Entry]) -> EntryTable:
        table = cls()
        for entry in entries:
            table.append(entry)
        return table

    def add(
        self,
        path: str,
        kind: int,
        meta: tuple,
        size: int,
        sha256: str | None,
        linkname: str = "",
        devmajor: int = 0,
        devminor: int = 0,
    ) -> None:
        """Add an entry by its columns: the fast way in."""
        index = len(self.types)
        blob = self._blob
        blob += path.encode("utf-8", "surrogateescape")
        end = len(blob)
        if end > 0xFFFFFFFF and self._ends.typecode == "I":
            self._ends = array("q", self._ends)
        self._ends.append(end)
        self.types.append(kind)
        number = self._meta_index.get(meta)
        if number is None:
            number = self._meta_index[meta] = len(self.metas)
            self.metas.append(meta)
        self.meta.append(number)
        self.sizes.append(size)
        if sha256:
            self.digests += bytes.fromhex(sha256)
            self.hashed.append(1)
        else:
            self.digests += bytes(32)
            self.hashed.append(0)
        if linkname or devmajor or devminor:
            self.extra[index] = (linkname, devmajor, devminor)

    def append(self, entry: Entry) -> None:
        self.add(
            entry.path,
            TYPE_CODES[entry.type],
            (
                entry.mode,
                entry.uid,
                entry.gid,
                entry.mtime,
                entry.uname,
                entry.gname,
                xattrs_key(entry.xattrs),
            ),
            entry.size,
            entry.sha256,
            entry.linkname,
            entry.devmajor,
            entry.devminor,
        )

    def path(self, index: int) -> str:
        """Return the path of an entry."""
        start = self._ends[index - 1] if index else 0
        return self._blob[start : self._ends[index]].decode("utf-8", "surrogateescape")

    def iter_paths(self) -> Iterator[str]:
        """Yield the path of every entry, in order."""
        blob = self._blob
        start = 0
        for end in self._ends:
            yield blob[start:end].decode("utf-8", "surrogateescape")
            start = end

    def digest(self, index: int) -> bytes | None:
        """Return the content digest of an entry as 32 bytes, or None."""
        if not self.hashed[index]:
            return None
        return bytes(self.digests[32 * index : 32 * index + 32])

    def file_bytes(self) -> int:
        """Return the bytes of all regular files' content."""
        file_code = TYPE_CODES[EntryType.FILE]
        types = self.types
        return sum(
            size for index, size in enumerate(self.sizes) if types[index] == file_code
        )

    def __len__(self) -> int:
        return len(self.types)

    def _make(self, index: int) -> Entry:
        mode, uid, gid, mtime, uname, gname, xattrs = self.metas[self.meta[index]]
        linkname, devmajor, devminor = self.extra.get(index, ("", 0, 0))
        digest = self.digest(index)
        return Entry(
            self.path(index),
            _TYPES[self.types[index]],  # type: ignore[arg-type]
            mode,
            uid,
            gid,
            self.sizes[index],
            mtime,
            linkname,
            digest.hex() if digest is not None else None,
            dict(xattrs) if xattrs else None,
            devmajor,
            devminor,
            uname,
            gname,
        )

    def __getstate__(self):
        return (
            bytes(self._blob),
            self._ends.typecode,
            self._ends.tobytes(),
            bytes(self.types),
            self.metas,
            self.meta.tobytes(),
            self.sizes.tobytes(),
            bytes(self.digests),
            bytes(self.hashed),
            self.extra,
        )

    def __setstate__(self, state) -> None:
        blob, typecode, ends, types, metas, meta, sizes, digests, hashed, extra = state
        self._blob = bytearray(blob)
        self._ends = array(typecode)
        self._ends.frombytes(ends)
        self.types = bytearray(types)
        self.metas = metas
        self.meta = array("I")
        self.meta.frombytes(meta)
        self.sizes = array("q")
        self.sizes.frombytes(sizes)
        self.digests = bytearray(digests)
        self.hashed = bytearray(hashed)
        self.extra = extra
        self._meta_index = {meta: number for number, meta in enumerate(metas)}


class ChangeKind(str, enum.Enum):
    """What a layer did to one path."""

    ADD = "add"
    MODIFY = "modify"
    DELETE = "delete"
    OPAQUE = "opaque"
    SAME = "same"

    def __str__(self) -> str:
        return self.value


@dataclass(slots=True)
class Change:
    """One classified change of a layer.

    ``reason`` is set for modifications: ``content``, ``metadata`` or
    ``type``. ``hidden`` and ``hidden_bytes`` count what a delete, an opaque
    directory or a type change hid from the layers below.
    """

    path: str
    kind: ChangeKind
    type: EntryType | None = None
    reason: str | None = None
    size: int = 0
    hidden: int = 0
    hidden_bytes: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind.value,
            "reason": self.reason,
            "type": self.type.value if self.type else None,
            "size": self.size,
            "hidden": self.hidden,
            "hidden_bytes": self.hidden_bytes,
        }


_KINDS = list(ChangeKind)
_TYPES: list[EntryType | None] = [None, *EntryType]
_REASONS: list[str | None] = [None, "content", "metadata", "type"]
KIND_CODES = {kind: code for code, kind in enumerate(_KINDS)}
TYPE_CODES = {kind: code for code, kind in enumerate(_TYPES)}
REASON_CODES = {reason: code for code, reason in enumerate(_REASONS)}


class PathTable:
    """Paths by number, each stored as its parent's number and its name.

    A merged view of a million paths held as Python strings costs about a
    hundred bytes a path before anything else is known about it; here a
    path costs its last component as UTF-8, an offset, its parent's number
    and a slot of the hash index. Number 0 is the root (''); a path's
    parents get numbers before it. Numbers are never reused, so a number
    keeps naming its path after the path is deleted from a view: change
    lists refer to paths by number.
    """

    __slots__ = ("_names", "_ends", "parents", "_slots", "_mask", "_limit", "_above")

    def __init__(self) -> None:
        self._names = bytearray()
        self._ends = array("I", [0])  # becomes "q" past 4 GiB of names
        self.parents = array("i", [-1])
        self._empty(1024)
        # The parent path last looked up and its number: a layer lists the
        # entries of one directory together, so this saves most lookups.
        self._above: tuple[str | None, int] = (None, 0)

    def _empty(self, size: int) -> None:
        self._slots = array("q", bytes(8 * size))  # (tag << 32) | (number + 1)
        self._mask = size - 1
        self._limit = int(size * 0.6)  # grow past 60% full

    def __len__(self) -> int:
        return len(self._ends)

    def name(self, number: int) -> str:
        """Return the last component of a path ('' for the root)."""
        if number <= 0:
            return ""
        return self._names[self._ends[number - 1] : self._ends[number]].decode(
            "utf-8", "surrogateescape"
        )

    def __getitem__(self, number: int) -> str:
        parts = []
        parents = self.parents
        while number > 0:
            parts.append(self.name(number))
            number = parents[number]
        parts.reverse()
        return "/".join(parts)

    def _lookup(self, parent: int, name: str, create: bool) -> int:
        code = hash((parent, name))
        tag = (code >> 32) & 0x7FFFFFFF
        mask = self._mask
        slots = self._slots
        parents = self.parents
        index = code & mask
        data = name.encode("utf-8", "surrogateescape")
        while True:
            value = slots[index]
            if not value:
                break
            if value >> 32 == tag:
                number = (value & 0xFFFFFFFF) - 1
                if (
                    parents[number] == parent
                    and self._names[self._ends[number - 1] : self._ends[number]] == data
                ):
                    return number
            index = (index + 1) & mask
        if not create:
            return -1
        number = len(self._ends)
        if number >= 0xFFFFFFFE:
            raise OverflowError("more than 4 billion paths")
        self._names += data
        if len(self._names) > 0xFFFFFFFF and self._ends.typecode == "I":
            self._ends = array("q", self._ends)
        self._ends.append(len(self._names))
        parents.append(parent)
        slots[index] = (tag << 32) | (number + 1)
        if number >= self._limit:
            self._rebuild(2 * (self._mask + 1))
        return number

    def _resolve(self, path: str, create: bool) -> int:
        cut = path.rfind("/")
        if cut > 0:
            last, parent = self._above
            if last == path[:cut]:  # the common case: a sibling of the last
                return self._lookup(parent, path[cut + 1 :], create)
        elif not path:
            return 0
        names = []  # components below the nearest known parent, last first
        current = path
        parent = 0
        while True:
            cut = current.rfind("/")
            if cut < 0:
                names.append(current)
                break
            above = current[:cut]
            names.append(current[cut + 1 :])
            last, number = self._above
            if last == above:
                parent = number
                break
            current = above
        number = parent
        for name in reversed(names):
            parent = number
            number = self._lookup(parent, name, create)
            if number < 0:
                return -1
        cut = path.rfind("/")
        if cut >= 0:
            self._above = (path[:cut], parent)
        return number

    def find(self, path: str) -> int:
        """Return the number of a path, or -1 when it was never added."""
        return self._resolve(path, False)

    def add(self, path: str) -> int:
        """Return the number of a path, adding it and its parents if new."""
        return self._resolve(path, True)

    def _rebuild(self, size: int) -> None:
        self._empty(size)
        slots, mask = self._slots, self._mask
        names, parents = self._names, self.parents
        start = 0
        for number, end in enumerate(self._ends):
            if number:
                name = names[start:end].decode("utf-8", "surrogateescape")
                code = hash((parents[number], name))
                index = code & mask
                while slots[index]:
                    index = (index + 1) & mask
                slots[index] = (((code >> 32) & 0x7FFFFFFF) << 32) | (number + 1)
            start = end

    def __getstate__(self):
        # The index depends on this process's string hashes: rebuilt on load.
        return (
            bytes(self._names),
            self._ends.typecode,
            self._ends.tobytes(),
            self.parents.tobytes(),
        )

    def __setstate__(self, state) -> None:
        names, typecode, ends, parents = state
        self._names = bytearray(names)
        self._ends = array(typecode)
        self._ends.frombytes(ends)
        self.parents = array("i")
        self.parents.frombytes(parents)
        self._above = (None, 0)
        size = 1024
        while int(size * 0.6) <= len(self._ends):
            size *= 2
        self._rebuild(size)

    def __deepcopy__(self, memo) -> PathTable:
        copy = PathTable.__new__(PathTable)
        copy._names = bytearray(self._names)
        copy._ends = self._ends[:]
        copy.parents = self.parents[:]
        copy._slots = self._slots[:]
        copy._mask, copy._limit = self._mask, self._limit
        copy._above = self._above
        return copy


class ChangeList(_Columns):
    """The changes of one layer, stored as columns.

    A layer of an image may change a million paths, and a report keeps
    every layer's changes. Stored as Change objects they would cost about
    a hundred bytes each; here each costs a path number (in a PathTable,
    shared with the merged view), three code bytes and its size. Counts of
    what a change hid are kept only for the changes that hid something.
    Items are Change objects made on access.
    """

    _noun = "change"
    __slots__ = ("_table", "_ids", "_codes", "_sizes", "_big", "_hidden")

    def __init__(
        self, changes: Iterable[Change] = (), table: PathTable | None = None
    ) -> None:
        if isinstance(changes, ChangeList) and table is None:
            self._table = changes._table
            self._ids = array("I", changes._ids)
            self._codes = bytearray(changes._codes)
            self._sizes = array("I", changes._sizes)
            self._big = dict(changes._big)
            self._hidden = dict(changes._hidden)
            return
        self._table = table if table is not None else PathTable()
        self._ids = array("I")
        self._codes = bytearray()  # kind, type and reason: 3 bytes a change
        self._sizes = array("I")
        self._big: dict[int, int] = {}  # sizes of 4 GiB and more
        self._hidden: dict[int, tuple[int, int]] = {}
        for change in changes:
            self.append(change)

    @property
    def paths(self) -> PathTable:
        return self._table

    def add(
        self,
        number: int,
        kind: int,
        kind_type: int,
        reason: int = 0,
        size: int = 0,
        hidden: int = 0,
        hidden_bytes: int = 0,
    ) -> None:
        """Add a change by path number and codes: the fast way in."""
        index = len(self._ids)
        if hidden or hidden_bytes:
            self._hidden[index] = (hidden, hidden_bytes)
        self._ids.append(number)
        self._codes += bytes((kind, kind_type, reason))
        if size > 0xFFFFFFFF:
            self._big[index] = size
            size = 0
        self._sizes.append(size)

    def append(self, change: Change) -> None:
        self.add(
            self._table.add(change.path),
            KIND_CODES[change.kind],
            TYPE_CODES[change.type],
            REASON_CODES[change.reason],
            change.size,
            change.hidden,
            change.hidden_bytes,
        )

    def __len__(self) -> int:
        return len(self._ids)

    def kind_counts(self) -> dict[str, int]:
        """Return how many changes there are of each kind."""
        counts = [0] * len(_KINDS)
        for code in self._codes[0::3]:
            counts[code] += 1
        return {kind.value: counts[code] for code, kind in enumerate(_KINDS)}

    def _make(self, index: int) -> Change:
        kind, kind_type, reason = self._codes[3 * index : 3 * index + 3]
        hidden, hidden_bytes = self._hidden.get(index, (0, 0))
        return Change(
            self._table[self._ids[index]],
            _KINDS[kind],
            _TYPES[kind_type],
            _REASONS[reason],
            self._big.get(index, self._sizes[index]),
            hidden,
            hidden_bytes,
        )


class Mapped(Sequence):
    """A read-only sequence whose items are made from another's on access.

    JSON forms of large lists (a layer's changes, the files of a view) are
    written item by item through this, never held all at once.
    """

    __slots__ = ("_source", "_length", "_make")

    def __init__(self, source: Callable[[], Iterator], length: int, make) -> None:
        self._source = source
        self._length = length
        self._make = make

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator:
        return map(self._make, self._source())

    def __getitem__(self, index):  # type: ignore[override]
        return list(self)[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (Mapped, list)):
            return list(self) == list(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"Mapped({list(self)!r})"


class Severity(str, enum.Enum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


@dataclass(slots=True)
class Finding:
    """Something a user may need to act on; ``rule`` is a stable id."""

    rule: str
    message: str
    severity: Severity = Severity.WARNING
    path: str | None = None
    layer: int | None = None
    size: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "severity": self.severity.value,
            "message": self.message,
            "path": None if self.path is None else self.path,
            "layer": None if self.layer is None else self.layer + 1,
            "size": self.size,
        }


@dataclass(slots=True)
class Waste:
    """Bytes a layer ships that the final merged view does not use.

    shadowed:      replaced by a later entry for the same path, or hidden
                   by an opaque directory or a type change above.
    deleted:       removed by a whiteout in a later layer.
    metadata_only: replaced by an entry with the same content, so only
                   the metadata changed and the bytes were shipped twice.
    """

    shadowed: int = 0
    deleted: int = 0
    metadata_only: int = 0

    @property
    def total(self) -> int:
        return self.shadowed + self.deleted + self.metadata_only

    def add(self, cause: str, size: int) -> None:
        setattr(self, cause, getattr(self, cause) + size)

    def to_json(self) -> dict[str, int]:
        return {
            "shadowed": self.shadowed,
            "deleted": self.deleted,
            "metadata_only": self.metadata_only,
            "total": self.total,
        }


@dataclass(slots=True)
class LayerReport:
    """Everything known about one layer of an image."""

    index: int
    digest: str | None
    diff_id: str | None
    media_type: str | None
    compression: str
    size: int
    uncompressed_size: int
    created_by: str | None = None
    created: str | None = None
    comment: str | None = None
    changes: Sequence[Change] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    waste: Waste = field(default_factory=Waste)
    file_bytes: int = 0
    entry_count: int = 0

    def counts(self) -> dict[str, int]:
        if isinstance(self.changes, ChangeList):
            return self.changes.kind_counts()
        result = {kind.value: 0 for kind in ChangeKind}
        for change in self.changes:
            result[change.kind.value] += 1
        return result

    def to_json(self, *, with_changes: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "layer": self.index + 1,
            "digest": self.digest,
            "diff_id": self.diff_id,
            "media_type": self.media_type,
            "compression": self.compression,
            "size": self.size,
            "uncompressed_size": self.uncompressed_size,
            "file_bytes": self.file_bytes,
            "entries": self.entry_count,
            "created_by": self.created_by,
            "created": self.created,
            "comment": self.comment,
            "counts": self.counts(),
            "waste": self.waste.to_json(),
            "findings": [f.to_json() for f in self.findings],
        }
        if with_changes:
            changes = self.changes
            data["changes"] = Mapped(
                lambda: iter(changes), len(changes), Change.to_json
            )
        return data


# The format of a report on the image a container's commit would produce,
# before anything is written; its last layer is the pending commit's.
PENDING_FORMAT = "pending-commit"


@dataclass(slots=True)
class ImageReport:
    """The result of inspecting an image: its layers and what they waste."""

    source: str
    format: str
    name: str | None
    platform: str | None
    manifest_digest: str | None
    config_digest: str | None
    config: dict[str, Any]
    layers: list[LayerReport]
    findings: list[Finding] = field(default_factory=list)
    empty_history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(layer.size for layer in self.layers)

    @property
    def uncompressed_size(self) -> int:
        return sum(layer.uncompressed_size for layer in self.layers)

    @property
    def file_bytes(self) -> int:
        return sum(layer.file_bytes for layer in self.layers)

    @property
    def waste(self) -> Waste:
        total = Waste()
        for layer in self.layers:
            total.shadowed += layer.waste.shadowed
            total.deleted += layer.waste.deleted
            total.metadata_only += layer.waste.metadata_only
        return total

    @property
    def efficiency(self) -> float:
        """Share of shipped file bytes that the final merged view uses."""
        shipped = self.file_bytes
        return 1.0 if shipped == 0 else 1.0 - self.waste.total / shipped

    def all_findings(self) -> list[Finding]:
        found = list(self.findings)
        for layer in self.layers:
            found.extend(layer.findings)
        return found
