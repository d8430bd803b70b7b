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
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "EntryType",
    "Entry",
    "Changeset",
    "ChangeKind",
    "Change",
    "ChangeList",
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

    entries: list[Entry] = field(default_factory=list)
    whiteouts: list[str] = field(default_factory=list)
    opaque_dirs: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    digest: str | None = None
    diff_id: str | None = None
    compression: str = "none"
    size: int = 0
    uncompressed_size: int = 0


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


class ChangeList(Sequence[Change]):
    """The changes of one layer, stored as columns.

    A layer of an image may change a million paths, and a report keeps
    every layer's changes. Stored as Change objects they would cost about
    a hundred bytes each; here each costs its path (shared with the merged
    view) and a few array slots. Items are Change objects made on access.
    """

    __slots__ = ("_paths", "_codes", "_numbers")

    def __init__(self, changes: Iterable[Change] = ()) -> None:
        self._paths: list[str] = []
        self._codes = bytearray()  # kind, type and reason: 3 bytes a change
        self._numbers = array("q")  # size, hidden and hidden_bytes
        for change in changes:
            self.append(change)

    def append(self, change: Change) -> None:
        self._paths.append(change.path)
        self._codes += bytes(
            (
                _KINDS.index(change.kind),
                _TYPES.index(change.type),
                _REASONS.index(change.reason),
            )
        )
        self._numbers.extend((change.size, change.hidden, change.hidden_bytes))

    def __len__(self) -> int:
        return len(self._paths)

    def _make(self, index: int) -> Change:
        kind, kind_type, reason = self._codes[3 * index : 3 * index + 3]
        size, hidden, hidden_bytes = self._numbers[3 * index : 3 * index + 3]
        return Change(
            self._paths[index],
            _KINDS[kind],
            _TYPES[kind_type],
            _REASONS[reason],
            size,
            hidden,
            hidden_bytes,
        )

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self._make(i) for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("change index out of range")
        return self._make(index)

    def __iter__(self) -> Iterator[Change]:
        return map(self._make, range(len(self._paths)))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (ChangeList, list)):
            return list(self) == list(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"ChangeList({list(self)!r})"


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
            data["changes"] = [c.to_json() for c in self.changes]
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
