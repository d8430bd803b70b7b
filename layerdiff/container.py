"""Files of an image archive: a directory, or a tar read by seeking.

An image archive is itself a tar (or a directory of the same files). The
tar is indexed once by walking its headers and seeking over the content,
so that each blob can later be opened as its own bounded stream, by any
worker process, without reading the others.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import stat
import tempfile
from dataclasses import dataclass
from typing import BinaryIO

from . import paths
from .blobs import HashingReader, LayerStream, sniff
from .errors import ArchiveFormatError, LayerdiffError, UnsafePathError
from .tarread import BLOCK, EXTENDED_LIMIT, _number, _parse_pax, _text

__all__ = ["BlobLocation", "Container", "open_container"]

_JSON_LIMIT = 64 << 20


@dataclass(frozen=True, slots=True)
class BlobLocation:
    """Where a blob's bytes are: a byte range of one file on disk."""

    path: str
    offset: int
    size: int

    def open(self) -> BinaryIO:
        handle = open(self.path, "rb")
        handle.seek(self.offset)
        return handle


class _Bounded:
    """A read-only view of ``size`` bytes of a file, from its position."""

    def __init__(self, handle: BinaryIO, size: int) -> None:
        self._handle = handle
        self._left = size

    def read(self, size: int = -1) -> bytes:
        if size < 0 or size > self._left:
            size = self._left
        data = self._handle.read(size)
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._handle.close()


class Container:
    """The named files of an archive, for lookups and bounded reads."""

    def __init__(self, source: str, files: dict[str, BlobLocation]) -> None:
        self.source = source
        self.files = files
        self.temporary: str | None = None

    def __contains__(self, name: str) -> bool:
        return name in self.files

    def names(self) -> list[str]:
        return list(self.files)

    def locate(self, name: str) -> BlobLocation:
        try:
            return self.files[paths.normalize(name)]
        except KeyError:
            raise ArchiveFormatError(
                f"the archive has no file {name!r}", source=self.source
            ) from None
        except UnsafePathError as exc:
            raise exc.located(source=self.source)

    def open(self, name: str) -> _Bounded:
        location = self.locate(name)
        return _Bounded(location.open(), location.size)

    def read(self, name: str, limit: int = _JSON_LIMIT) -> bytes:
        location = self.locate(name)
        if location.size > limit:
            raise ArchiveFormatError(
                f"{name} is {location.size} bytes, too large for a JSON document",
                source=self.source,
            )
        handle = self.open(name)
        try:
            data = handle.read()
        finally:
            handle.close()
        if len(data) != location.size:
            raise ArchiveFormatError(f"{name} is truncated", source=self.source)
        return data

    def close(self) -> None:
        if self.temporary:
            _remove_temporary(self.temporary)
            self.temporary = None


def open_container(source: str, *, max_size: int | None = None) -> Container:
    """Index a directory or an image tar (optionally gzip or zstd as a whole)."""
    try:
        info = os.stat(source)
    except OSError as exc:
        raise ArchiveFormatError(f"cannot open: {exc.strerror}", source=source) from exc
    if stat.S_ISDIR(info.st_mode):
        return _index_directory(source)
    try:
        with open(source, "rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        raise ArchiveFormatError(f"cannot read: {exc.strerror}", source=source) from exc
    if not head:
        raise ArchiveFormatError("the file is empty", source=source)
    if sniff(head) == "none":
        return _index_tar(source, source)
    # A compressed archive cannot be sought in; its tar is decompressed once
    # into an unnamed temporary file (never extracted) and indexed there.
    fd, temporary = _new_temporary()
    try:
        with open(source, "rb") as raw, os.fdopen(fd, "wb") as out:
            stream = LayerStream(HashingReader(raw), max_size=max_size)
            while chunk := stream.read_chunk():
                out.write(chunk)
        container = _index_tar(temporary, source)
    except LayerdiffError as exc:
        _remove_temporary(temporary)
        raise exc.located(source=source)
    except BaseException:
        _remove_temporary(temporary)
        raise
    container.temporary = temporary
    return container


# Temporary files not yet removed. A path is listed before the file is
# created, so a signal arriving at any moment still leads to its removal
# when the interpreter exits.
_PENDING: set[str] = set()


def _new_temporary() -> tuple[int, str]:
    directory = tempfile.gettempdir()
    while True:
        path = os.path.join(directory, f"layerdiff-{secrets.token_hex(8)}.tar")
        _PENDING.add(path)
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600), path
        except FileExistsError:
            _PENDING.discard(path)
        except OSError as exc:
            _PENDING.discard(path)
            raise ArchiveFormatError(
                f"cannot create a temporary file in {directory}: {exc.strerror}"
            ) from exc


def _remove_temporary(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    _PENDING.discard(path)


@atexit.register
def _remove_pending() -> None:
    for path in list(_PENDING):
        _remove_temporary(path)


def _index_directory(root: str) -> Container:
    files: dict[str, BlobLocation] = {}
    real_root = os.path.realpath(root)
    for directory, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(directory, name)
            real = os.path.realpath(full)
            if os.path.commonpath([real_root, real]) != real_root:
                continue  # a symlink out of the layout is never followed
            try:
                info = os.stat(real)
            except OSError:
                continue
            if not stat.S_ISREG(info.st_mode):
                continue  # a fifo or device could block or never end
            size = info.st_size
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            files[rel] = BlobLocation(real, 0, size)
    return Container(root, files)


def _index_tar(path: str, source: str) -> Container:
    files: dict[str, BlobLocation] = {}
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            _walk_headers(handle, size, path, files)
    except LayerdiffError as exc:
        raise exc.located(source=source)
    except OSError as exc:
        raise ArchiveFormatError(f"cannot read: {exc.strerror}", source=source) from exc
    return Container(source, files)


def _walk_headers(
    handle: BinaryIO, size: int, path: str, files: dict[str, BlobLocation]
) -> None:
    pax: dict[str, bytes] = {}
    links: dict[str, str] = {}
    long_name = None
    offset = 0
    while True:
        handle.seek(offset)
        header = handle.read(BLOCK)
        if len(header) < BLOCK:
            if header:
                raise ArchiveFormatError("the archive ends inside a tar header")
            break
        if header == bytes(BLOCK):
            break
        checksum = _number(header[148:156], "checksum")
        if checksum != sum(header) - sum(header[148:156]) + 8 * 32:
            raise ArchiveFormatError(
                f"not a tar archive (bad header checksum at offset {offset})"
            )
        typeflag = chr(header[156])
        length = _number(header[124:136], "size")
        data_offset = offset + BLOCK
        offset = data_offset + (length + BLOCK - 1) // BLOCK * BLOCK
        if offset > size:
            raise ArchiveFormatError(
                f"the archive is truncated: the tar header at offset "
                f"{offset - BLOCK - (length + BLOCK - 1) // BLOCK * BLOCK} declares "
                f"{length} bytes of content, past the end of the file"
            )
        if typeflag in "xgL":
            if length > EXTENDED_LIMIT:
                raise ArchiveFormatError(
                    f"extended tar header of {length} bytes is larger than the "
                    f"{EXTENDED_LIMIT >> 10} KiB allowed"
                )
            data = handle.read(length)
            if typeflag == "x":
                pax = dict(_parse_pax(data))
            elif typeflag == "L":
                long_name = _text(data)
            continue
        name = _text(header[0:100])
        if header[257:262] == b"ustar" and header[263:265] == b"00":
            prefix = _text(header[345:500])
            if prefix:
                name = prefix + "/" + name
        if "path" in pax:
            name = pax["path"].decode("utf-8", "surrogateescape")
        name = long_name or name
        pax_seen, pax, long_name = pax, {}, None
        if typeflag not in "0\x00712":
            continue  # only files and links to them matter in an image archive
        try:
            name = paths.normalize(name)
            if typeflag in "12":
                # docker save writes a layer shared by two images once and
                # links the second name to it.
                target = _text(header[157:257])
                if "linkpath" in pax_seen:
                    target = pax_seen["linkpath"].decode("utf-8", "surrogateescape")
                if typeflag == "2":
                    target = paths.parent(name) + "/" + target
                links[name] = _resolve_link(target)
            else:
                files[name] = BlobLocation(path, data_offset, length)
        except UnsafePathError:
            # Such a name can never be referenced by a manifest (those are
            # normalised too); if this tar is a bare layer, reading it as a
            # layer reports the name.
            continue
    for name, target in links.items():
        for _ in range(40):  # a chain longer than this is a loop
            if target in files or target not in links:
                break
            target = links[target]
        if target in files:
            files.setdefault(name, files[target])


def _resolve_link(target: str) -> str:
    parts: list[str] = []
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise UnsafePathError("link target escapes the archive root")
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


def copy_file(location: BlobLocation, out: BinaryIO) -> None:
    """Copy a blob's bytes to an open file."""
    with location.open() as handle:
        shutil.copyfileobj(_Bounded(handle, location.size), out)
