"""Reading one layer blob into a changeset, verifying its digests."""

from __future__ import annotations

import logging
from typing import BinaryIO

from . import paths, whiteout
from .blobs import HashingReader, LayerStream
from .errors import (
    DigestMismatchError,
    LayerdiffError,
    LayerFormatError,
    UnsafePathError,
    short_digest,
)
from .model import TYPE_CODES, Changeset, EntryTable, EntryType, Finding, Severity
from .tarread import TarMember, read_tar

__all__ = ["read_changeset", "changeset_from_members"]

log = logging.getLogger(__name__)

_ENTRY_TYPES = {
    "0": EntryType.FILE,
    "1": EntryType.HARDLINK,
    "2": EntryType.SYMLINK,
    "3": EntryType.CHAR,
    "4": EntryType.BLOCK,
    "5": EntryType.DIR,
    "6": EntryType.FIFO,
}


_TYPE_CODES = {flag: TYPE_CODES[kind] for flag, kind in _ENTRY_TYPES.items()}


def read_changeset(
    blob: BinaryIO,
    *,
    digest: str | None = None,
    diff_id: str | None = None,
    max_size: int | None = None,
    blob_size: int | None = None,
) -> Changeset:
    """Stream one layer blob (any compression) into a changeset.

    ``digest`` and ``diff_id``, when given, are checked against the bytes
    read; a mismatch raises DigestMismatchError naming both values.
    """
    reader = HashingReader(blob, limit=blob_size)
    stream = LayerStream(reader, max_size=max_size)
    members = read_tar(stream.read_chunk, max_size=max_size)
    changeset = changeset_from_members(members)
    stream.drain()
    changeset.compression = stream.compression
    changeset.digest = reader.digest()
    changeset.size = reader.count
    changeset.diff_id = stream.diff_id()
    changeset.uncompressed_size = stream.count
    if blob_size is not None and reader.count != blob_size:
        raise DigestMismatchError(
            f"blob is {reader.count} bytes, the manifest says {blob_size}"
        )
    if digest and digest != changeset.digest:
        raise DigestMismatchError(
            f"blob digest does not match: expected {short_digest(digest)}, "
            f"the bytes hash to {short_digest(changeset.digest)}",
            hint="the archive is corrupt or was edited after it was written",
        )
    if diff_id and diff_id != changeset.diff_id:
        raise DigestMismatchError(
            f"diff_id does not match the config: config says {short_digest(diff_id)}, "
            f"the uncompressed tar hashes to {short_digest(changeset.diff_id)}",
        )
    log.info(
        "read layer %s: %d entries, %d whiteouts, %d bytes uncompressed",
        short_digest(changeset.diff_id),
        len(changeset.entries),
        len(changeset.whiteouts),
        changeset.uncompressed_size,
    )
    return changeset


def _hardlink_target(member: TarMember) -> str:
    try:
        return paths.normalize(member.linkname)
    except UnsafePathError as exc:
        raise UnsafePathError(
            f"hard link target {member.linkname!r} would escape the root",
            entry=member.name,
        ) from exc


def _whiteout_meaning(member: TarMember, path: str) -> tuple[str, str] | None:
    """Return what a name with ``.wh.`` in it means, refusing impossible ones.

    A whiteout or opaque marker is an empty regular file by the layer
    rules; as a directory, symlink or device, or with entries below it, it
    could only be extracted as a real file of a reserved name. Hard links
    are accepted: a tar writer may link whiteouts that share one inode, as
    overlayfs whiteouts do.
    """
    parent = paths.parent(path)
    if any(p.startswith(whiteout.WH_PREFIX) for p in parent.split("/")):
        raise LayerFormatError("entry lies inside a whiteout or opaque marker")
    marker = whiteout.parse_name(path)
    if marker is not None and marker[0] != "reserved" and member.typeflag not in "01":
        raise LayerFormatError(
            "a whiteout or opaque marker must be a regular file, this is "
            f"a {_ENTRY_TYPES[member.typeflag].value}"
        )
    return marker


def changeset_from_members(members) -> Changeset:
    """Sort tar members of an image layer into entries and whiteouts."""
    changeset = Changeset(entries=EntryTable())
    add = changeset.entries.add
    codes = _TYPE_CODES
    file_code = TYPE_CODES[EntryType.FILE]
    hardlink_code = TYPE_CODES[EntryType.HARDLINK]
    for member in members:
        try:
            path = paths.normalize(member.name)
            if not path:
                continue  # the root's own entry; its metadata is not a change
            marker = None
            if ".wh." in path:
                marker = _whiteout_meaning(member, path)
            if marker is None:
                kind = codes[member.typeflag]
                xattrs = member.xattrs
                meta = (
                    member.mode,
                    member.uid,
                    member.gid,
                    member.mtime,
                    member.uname,
                    member.gname,
                    tuple(sorted(xattrs.items())) if xattrs else None,
                )
                add(
                    path,
                    kind,
                    meta,
                    member.size if kind == file_code else 0,
                    member.sha256,
                    _hardlink_target(member)
                    if kind == hardlink_code
                    else member.linkname,
                    member.devmajor,
                    member.devminor,
                )
                continue
        except LayerdiffError as exc:
            raise exc.located(entry=member.name)
        kind, target = marker
        if kind == "whiteout":
            changeset.whiteouts.append(target)
        elif kind == "opaque":
            changeset.opaque_dirs.append(target)
        else:
            changeset.findings.append(
                Finding(
                    "reserved-whiteout-name",
                    "entry name uses the reserved .wh. prefix but is not a "
                    "whiteout; it is ignored",
                    Severity.WARNING,
                    path=target,
                )
            )
    return changeset
