"""Committing a container: its new layer, its config and the new image.

``write_layer`` turns the committed part of a plan (see changes.py) into a
deterministic OCI layer: sorted entries, PAX headers, no owner names, a
gzip header without name or time, mtimes clamped to SOURCE_DATE_EPOCH when
it is set. ``write_image`` puts the base image and
the new layer into a docker save archive or an OCI layout tar.
"""

from __future__ import annotations

import copy
import errno
import gzip
import hashlib
import io
import json
import logging
import os
import posixpath
import queue
import re
import shlex
import tarfile
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, BinaryIO

from . import whiteout
from .archive import Image
from .changes import CommitPlan, Container, ContainerChange
from .errors import LayerdiffError, OutputError, UsageError
from .model import Changeset, Entry, EntryType
from .output import (
    atomic_output,
    check_outputs,
    replace,
    start_writeback,
    temporary_in,
)
from .tree import MergedView, Node
from .upperdir import Stamp, UpperDir

__all__ = [
    "LayerResult",
    "ImageResult",
    "CommitResult",
    "write_layer",
    "apply_changes",
    "new_config",
    "write_image",
    "expected_view",
    "view_differences",
    "commit_container",
    "source_date_epoch",
]

log = logging.getLogger(__name__)

try:
    from isal.igzip import GzipFile as _GzipFile
except ImportError:  # pragma: no cover - isal has wheels for common hosts
    _GzipFile = gzip.GzipFile

_WHITEOUT_MODE = 0o000
_DIR_MEDIA = {
    "none": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}
_CHUNK = 1 << 20
_COPY_PIECE = 64 << 20
_NO_RANGE_COPY = (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP)
_LAST_SECOND = 253402300799  # 9999-12-31T23:59:59Z, the last RFC 3339 second


@dataclass(slots=True)
class LayerResult:
    """What ``write_layer`` wrote."""

    diff_id: str
    digest: str
    size: int
    uncompressed_size: int
    compression: str
    entries: int


def source_date_epoch() -> int | None:
    """Return SOURCE_DATE_EPOCH from the environment, if it is set."""
    text = os.environ.get("SOURCE_DATE_EPOCH")
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"SOURCE_DATE_EPOCH is not a number: {text!r}") from None
    if not 0 <= value <= _LAST_SECOND:
        raise UsageError(
            f"SOURCE_DATE_EPOCH is out of range: {text!r} "
            f"(0 to {_LAST_SECOND}, the end of year 9999)"
        )
    return value


class _Hashing:
    """A write-only file that hashes and counts what passes to ``out``."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.sha = hashlib.sha256()
        self.count = 0

    def write(self, data) -> int:
        self.sha.update(data)
        self.count += len(data)
        self.out.write(data)
        return len(data)

    def tell(self) -> int:
        return self.count

    def flush(self) -> None:
        self.out.flush()

    def digest(self) -> str:
        return "sha256:" + self.sha.hexdigest()


_BLOCK = 512
_RECORD = 20 * _BLOCK  # tarfile pads the archive to whole records
_TAR_PIECE = 16 * 1024  # tarfile's copy buffer
_SPOOL = 4 << 20
_SPOOLS = 4  # one being filled, one hashed, one written, one spare
# A file smaller than this is read into one buffer with a single read.
_WHOLE = 1 << 20
_USTAR_TYPES = {
    EntryType.FILE: tarfile.REGTYPE,
    EntryType.DIR: tarfile.DIRTYPE,
    EntryType.SYMLINK: tarfile.SYMTYPE,
    EntryType.HARDLINK: tarfile.LNKTYPE,
    EntryType.FIFO: tarfile.FIFOTYPE,
}
# The fields after linkname: magic, empty uname and gname, no device
# numbers, no prefix, then the padding of the block.
_USTAR_TAIL = tarfile.POSIX_MAGIC + bytes(32 + 32 + 8 + 8 + 155 + 12)
_USTAR_FIXED = {k: 8 * 32 + k[0] + sum(_USTAR_TAIL) for k in _USTAR_TYPES.values()}


def _ustar_header(name: str, entry: Entry | None, mtime: int) -> bytes | None:
    """Return the header tarfile writes for a member that needs no PAX record.

    None when the member needs one (a long or non-ASCII name or link, a
    number too large for its field, xattrs) or is a device: tarfile builds
    those. Both give the same bytes for what this builds.
    """
    if entry is None:
        kind, mode, uid, gid, size, link = tarfile.REGTYPE, _WHITEOUT_MODE, 0, 0, 0, ""
    else:
        kind = _USTAR_TYPES.get(entry.type)
        if kind is None or entry.xattrs:
            return None
        mode, uid, gid, link = entry.mode, entry.uid, entry.gid, entry.linkname
        size = entry.size if kind == tarfile.REGTYPE else 0
        if kind == tarfile.DIRTYPE and not name.endswith("/"):
            name += "/"
    if not (
        len(name) <= 100
        and len(link) <= 100
        and name.isascii()
        and link.isascii()
        and 0 <= uid < 8**7
        and 0 <= gid < 8**7
        and 0 <= size < 8**11
        and 0 <= mtime < 8**11
    ):
        return None
    name_bytes, link_bytes = name.encode(), link.encode()
    fields = (mode & 0o7777, uid, gid, size, mtime)
    numbers = b"%07o\0%07o\0%07o\0%011o\0%011o\0" % fields
    # The checksum counts its own field as eight spaces; the rest of the
    # block is zeros but for the type and the fixed tail.
    checksum = sum(name_bytes) + sum(link_bytes) + sum(numbers) + _USTAR_FIXED[kind]
    return b"".join(
        (
            name_bytes.ljust(100, b"\0"),
            numbers,
            b"%06o\0 " % checksum,
            kind,
            link_bytes.ljust(100, b"\0"),
            _USTAR_TAIL,
        )
    )


def _header(name: str, entry: Entry | None, mtime: int) -> bytes:
    """Return the header (PAX records first, if any) tarfile writes."""
    block = _ustar_header(name, entry, mtime)
    if block is None:
        info = _tarinfo(name, entry, mtime)
        block = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    return block


def _tar_end(offset: int) -> bytes:
    """Return what ends a tar of ``offset`` bytes: two zero blocks, padding."""
    return bytes(2 * _BLOCK + -(offset + 2 * _BLOCK) % _RECORD)


class _TarWriter:
    """Writes tar members to a compressor, cut as tarfile cuts them.

    A compressor's output depends on how its input is cut into writes, so
    every write is the one tarfile would make: the header, file data in
    pieces of tarfile's copy buffer, the padding.
    """

    def __init__(self, out: Callable[[Any], Any]) -> None:
        self.out = out
        self.offset = 0

    def write(self, data) -> None:
        self.offset += len(data)
        self.out(data)

    def header(self, name: str, entry: Entry | None, mtime: int) -> None:
        self.write(_header(name, entry, mtime))

    def pad(self) -> None:
        """End a member's data at a block boundary."""
        if self.offset % _BLOCK:
            self.write(bytes(-self.offset % _BLOCK))

    def close(self) -> None:
        self.write(bytes(2 * _BLOCK))
        if self.offset % _RECORD:
            self.write(bytes(-self.offset % _RECORD))


class _Spool:
    """Gathers an uncompressed layer in large buffers for other threads.

    File data is read straight into the buffer being filled (``room`` then
    ``advance``); a full buffer goes to a thread that hashes it, then to
    one that writes it, while this one reads on. hashlib and file writes
    release the GIL for data this large, so the three overlap.
    """

    def __init__(self, out: BinaryIO) -> None:
        self.sha = hashlib.sha256()
        self.count = 0
        self.error: BaseException | None = None
        self.full: queue.SimpleQueue = queue.SimpleQueue()
        hashed: queue.SimpleQueue = queue.SimpleQueue()
        self.free: queue.SimpleQueue = queue.SimpleQueue()
        for _ in range(_SPOOLS - 1):
            self.free.put(memoryview(bytearray(_SPOOL)))
        self.buffer = memoryview(bytearray(_SPOOL))
        self.used = 0
        stages = ((self.full, self.sha.update, hashed), (hashed, out.write, self.free))
        self.threads = [
            threading.Thread(target=self._stage, args=stage, daemon=True)
            for stage in stages
        ]
        for thread in self.threads:
            thread.start()

    def _stage(self, source: queue.SimpleQueue, work, target: queue.SimpleQueue):
        """Do ``work`` on each buffer from ``source``, then pass it on."""
        while (item := source.get()) is not None:
            buffer, size = item
            if self.error is None:
                try:
                    work(buffer[:size])
                except Exception as exc:  # raised again by the reading thread
                    self.error = exc
            target.put(buffer if target is self.free else item)
        if target is not self.free:
            target.put(None)

    def room(self, size: int) -> memoryview:
        """Return the free part of the buffer, ``size`` bytes at least."""
        if _SPOOL - self.used < size:
            self.send()
        return self.buffer[self.used :]

    def advance(self, count: int) -> None:
        """Keep ``count`` bytes put at the start of the last ``room``."""
        self.used += count
        self.count += count

    def write(self, data: bytes) -> None:
        size = len(data)
        if size <= _SPOOL - self.used:
            self.buffer[self.used : self.used + size] = data
            self.advance(size)
            return
        done = 0
        while done < size:
            room = self.room(1)
            part = min(size - done, len(room))
            room[:part] = data[done : done + part]
            self.advance(part)
            done += part

    def send(self) -> None:
        """Hand the buffer to the hashing thread and take a free one."""
        if self.used:
            self.full.put((self.buffer, self.used))
            self.buffer = self.free.get()
            self.used = 0
        self.check()

    def close(self) -> None:
        """Write what is left and wait for it."""
        try:
            self.send()
        finally:
            self.stop()
        self.check()

    def check(self) -> None:
        """Raise what a thread raised; a failed write as an OutputError,
        which no reader of a file takes for its own."""
        error = self.error
        if isinstance(error, OSError):
            detail = error.strerror or str(error)
            raise OutputError(f"cannot write the layer: {detail}") from error
        if error is not None:
            raise error

    def stop(self) -> None:
        if self.threads[-1].is_alive():
            self.full.put(None)
            for thread in self.threads:
                thread.join()


def _fill(handle: BinaryIO, view: memoryview) -> int:
    """Read into all of ``view`` unless the file ends first; return the count."""
    done = 0
    while done < len(view):
        count = handle.readinto(view[done:])
        if not count:
            break
        done += count
    return done


def _compressor(compression: str, out: BinaryIO):
    if compression == "gzip":
        # No file name and a zero time in the header: same input, same bytes.
        # Level 1 of ISA-L deflates several times faster than zlib at its
        # default level, for output a few percent larger.
        return _GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=1)
    if compression == "zstd":
        try:
            from compression import zstd  # type: ignore[import-not-found]
        except ImportError:
            from backports import zstd
        return zstd.ZstdFile(out, mode="w")
    if compression == "none":
        return None
    raise UsageError(f"unknown compression {compression!r}: gzip, zstd or none")


def _tarinfo(name: str, entry: Entry | None, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = mtime
    info.uname = info.gname = ""
    if entry is None:  # a whiteout, or the entry making a directory opaque
        info.type = tarfile.REGTYPE
        info.mode = _WHITEOUT_MODE
        return info
    info.mode = entry.mode
    info.uid, info.gid = entry.uid, entry.gid
    kind = entry.type
    if kind is EntryType.FILE:
        info.type = tarfile.REGTYPE
        info.size = entry.size
    elif kind is EntryType.DIR:
        info.type = tarfile.DIRTYPE
    elif kind is EntryType.SYMLINK:
        info.type = tarfile.SYMTYPE
        info.linkname = entry.linkname
    elif kind is EntryType.HARDLINK:
        info.type = tarfile.LNKTYPE
        info.linkname = entry.linkname
    elif kind in (EntryType.CHAR, EntryType.BLOCK):
        info.type = tarfile.CHRTYPE if kind is EntryType.CHAR else tarfile.BLKTYPE
        info.devmajor, info.devminor = entry.devmajor, entry.devminor
    else:
        info.type = tarfile.FIFOTYPE
    for key, value in sorted((entry.xattrs or {}).items()):
        info.pax_headers["SCHILY.xattr." + key] = value.decode(
            "utf-8", "surrogateescape"
        )
    return info


def _layer_members(
    plan: CommitPlan, epoch: int | None
) -> list[tuple[str, Entry | None, int]]:
    cs = plan.changeset
    stamp = plan.upper.mtime if epoch is None else min(plan.upper.mtime, epoch)
    members: list[tuple[str, Entry | None, int]] = []
    for entry in cs.entries:
        mtime = entry.mtime if epoch is None else min(entry.mtime, epoch)
        members.append((entry.path, entry, mtime))
    for path in cs.whiteouts:
        members.append((whiteout.whiteout_name(path), None, stamp))
    for directory in cs.opaque_dirs:
        members.append((whiteout.opaque_name(directory), None, stamp))
    # Path order keeps parents before children and hard link targets (the
    # first name of each inode) before their links. With "/" made the
    # lowest character, names compare component by component.
    members.sort(key=lambda m: m[0].replace("/", "\0"))
    return members


def write_layer(
    plan: CommitPlan,
    out: BinaryIO,
    *,
    compression: str = "gzip",
    epoch: int | None = None,
    keep_hashes: bool = False,
) -> LayerResult:
    """Write the committed changeset of a plan as a layer blob to ``out``.

    Each file is read once. A file whose size, mtime or ctime differs from
    its listing, or whose length or known hash differs from what was read,
    changed while it was being committed: that is refused. With
    ``keep_hashes``, the sha256 of each file's content is kept on its
    entry (a verification compares them).
    """
    members = _layer_members(plan, epoch)
    if compression == "none":
        spool = _Spool(out)
        try:
            for name, entry, mtime in members:
                spool.write(_header(name, entry, mtime))
                if entry is not None and entry.type is EntryType.FILE:
                    _spool_file(plan.upper, entry, spool, keep_hashes)
            spool.write(_tar_end(spool.count))
            spool.close()
        finally:
            spool.stop()
        diff_id = digest = "sha256:" + spool.sha.hexdigest()
        size = uncompressed = spool.count
    else:
        blob = _Hashing(out)
        compressor = _compressor(compression, blob)
        tar_out = _Hashing(compressor)
        writer = _TarWriter(tar_out.write)
        buffer = memoryview(bytearray(_CHUNK))
        for name, entry, mtime in members:
            writer.header(name, entry, mtime)
            if entry is not None and entry.type is EntryType.FILE:
                _copy_file(plan.upper, entry, writer, buffer, keep_hashes)
        writer.close()
        compressor.close()
        diff_id, digest = tar_out.digest(), blob.digest()
        size, uncompressed = blob.count, tar_out.count
    log.info(
        "wrote layer %s: %d entries, %d bytes uncompressed",
        diff_id[:19],
        len(members),
        uncompressed,
    )
    return LayerResult(
        diff_id=diff_id,
        digest=digest,
        size=size,
        uncompressed_size=uncompressed,
        compression=compression,
        entries=len(members),
    )


def _spool_file(upper: UpperDir, entry: Entry, spool: _Spool, keep_hash: bool) -> None:
    """Read one file's data into the layer, checking it did not change.

    A file of a directory is read through its descriptor alone: one read
    for the data and the end of the file (a byte more than its size is
    asked for), one fstat to compare with its listing.
    """
    digest = hashlib.sha256() if keep_hash or entry.sha256 is not None else None
    where = upper.disk_path(entry.path)
    with _reading(upper, entry):
        if where is not None:
            fd = os.open(where, os.O_RDONLY | os.O_CLOEXEC)
            try:
                left, grew = _spool_data(
                    lambda view: os.readv(fd, (view,)), entry.size, spool, digest
                )
                grew = _changed(upper, entry, fd, grew)
            finally:
                os.close(fd)
        else:
            with upper.open(entry.path) as data:
                left, grew = _spool_data(data.readinto, entry.size, spool, digest)
                grew = _changed(upper, entry, data, grew)
    _check_read(upper, entry, grew or bool(left), digest)
    spool.write(bytes(-entry.size % _BLOCK))


def _spool_data(
    read: Callable[[memoryview], int],
    size: int,
    spool: _Spool,
    digest: Any,
) -> tuple[int, bool]:
    """Read ``size`` bytes into the spool; return what is missing and
    whether there was more."""
    left = size
    while True:
        room = spool.room(min(left + 1, _WHOLE))
        want = min(left + 1, len(room))
        count = read(room[:want])
        if count > left:
            return left, True
        if count:
            if digest is not None:
                digest.update(room[:count])
            spool.advance(count)
            left -= count
        if not count or (not left and count < want):
            return left, False


def _stamp(st: os.stat_result) -> Stamp:
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _changed(upper: UpperDir, entry: Entry, file: int | Any, grew: bool) -> bool:
    """Tell whether a file read had more data or changed since its listing.

    ``file`` is a descriptor or an open file; only files of a directory
    have a listing to compare with.
    """
    stamp = upper.stamps.get(entry.path)
    if grew or stamp is None:
        return grew
    return _stamp(os.fstat(file if isinstance(file, int) else file.fileno())) != stamp


@contextmanager
def _reading(upper: UpperDir, entry: Entry) -> Iterator[None]:
    """Turn an error reading a file of the upper dir into one naming it."""
    try:
        yield
    except OSError as exc:
        raise LayerdiffError(
            f"cannot read: {exc}", source=upper.source, entry=entry.path
        ) from exc


def _check_read(upper: UpperDir, entry: Entry, changed: bool, digest: Any) -> None:
    """Refuse a file read differently from its listing; keep its hash."""
    found = digest.hexdigest() if digest is not None else None
    if changed or (entry.sha256 is not None and found != entry.sha256):
        # The layer would hold bytes that match neither the file as it was
        # listed nor as it is now.
        raise LayerdiffError(
            "the file changed while it was being read",
            source=upper.source,
            entry=entry.path,
            hint="commit again once the container is stopped",
        )
    if found is not None:
        entry.sha256 = found


def _copy_file(
    upper: UpperDir,
    entry: Entry,
    writer: _TarWriter,
    buffer: memoryview,
    keep_hash: bool,
) -> None:
    """Copy one file's data into a compressed layer, checking it did not change."""
    digest = hashlib.sha256() if keep_hash or entry.sha256 is not None else None
    left = entry.size
    with _reading(upper, entry):
        with upper.open(entry.path) as data:
            while left > 0:
                want = min(left, _TAR_PIECE)
                count = _fill(data, buffer[:want])
                if count:
                    chunk = buffer[:count]
                    if digest is not None:
                        digest.update(chunk)
                    writer.write(chunk)
                left -= count
                if count < want:
                    break
            grew = _changed(upper, entry, data, bool(data.read(1)))
    _check_read(upper, entry, grew or bool(left), digest)
    writer.pad()


_CHANGE_KEYS = {
    "CMD": "Cmd",
    "ENTRYPOINT": "Entrypoint",
    "ENV": "Env",
    "EXPOSE": "ExposedPorts",
    "LABEL": "Labels",
    "USER": "User",
    "VOLUME": "Volumes",
    "WORKDIR": "WorkingDir",
}


def _words(value: str) -> list[str]:
    value = value.strip()
    return _exec_form(value) or value.split()


def apply_changes(runtime: dict[str, Any], changes: Iterable[str]) -> dict[str, Any]:
    """Apply ``docker commit --change`` instructions to a runtime config."""
    runtime = copy.deepcopy(runtime)
    for text in changes:
        instruction, _, value = text.strip().partition(" ")
        instruction = instruction.upper()
        value = value.strip()
        if instruction not in _CHANGE_KEYS or not value:
            known = ", ".join(_CHANGE_KEYS)
            raise UsageError(f"--change {text!r}: expected one of {known} and a value")
        key = _CHANGE_KEYS[instruction]
        if instruction in ("CMD", "ENTRYPOINT"):
            form = _exec_form(value)  # [] is a valid, empty exec form
            runtime[key] = form if form is not None else ["/bin/sh", "-c", value]
        elif instruction == "ENV":
            pairs = _pairs(value)
            env = [e for e in runtime.get("Env") or []]
            for name, setting in pairs:
                env = [e for e in env if e.partition("=")[0] != name]
                env.append(f"{name}={setting}")
            runtime["Env"] = env
        elif instruction == "LABEL":
            labels = dict(runtime.get("Labels") or {})
            labels.update(_pairs(value))
            runtime["Labels"] = labels
        elif instruction == "EXPOSE":
            ports = dict(runtime.get("ExposedPorts") or {})
            for port in value.split():
                ports.update(dict.fromkeys(_ports(port, text), {}))
            runtime["ExposedPorts"] = ports
        elif instruction == "WORKDIR":
            # As docker does: a relative WORKDIR continues the previous one.
            previous = runtime.get(key) or "/"
            runtime[key] = posixpath.normpath(posixpath.join(previous, value))
        elif instruction == "VOLUME":
            volumes = dict(runtime.get("Volumes") or {})
            for volume in _words(value):
                volumes[volume] = {}
            runtime["Volumes"] = volumes
        else:
            runtime[key] = value
    return runtime


def _exec_form(value: str) -> list[str] | None:
    """Return the words of a JSON array of strings, else None (shell form)."""
    if not value.startswith("["):
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        return None  # docker too runs a malformed array through the shell
    if isinstance(parsed, list) and all(isinstance(i, str) for i in parsed):
        return parsed
    return None


_PORT = re.compile(r"(\d{1,5})(?:-(\d{1,5}))?(?:/(tcp|udp|sctp))?", re.IGNORECASE)


def _ports(word: str, text: str) -> list[str]:
    """Return the config keys of an EXPOSE word: ``80/tcp``; a range, each."""
    match = _PORT.fullmatch(word)
    numbers = [int(n) for n in match.group(1, 2) if n] if match else []
    if (
        not numbers
        or not all(1 <= n <= 65535 for n in numbers)
        or (len(numbers) == 2 and numbers[0] > numbers[1])
    ):
        raise UsageError(
            f"--change {text!r}: {word!r} is not a port or port range "
            "(1-65535), optionally with /tcp, /udp or /sctp"
        )
    protocol = (match.group(3) or "tcp").lower()
    return [f"{port}/{protocol}" for port in range(numbers[0], numbers[-1] + 1)]


def _pairs(value: str) -> list[tuple[str, str]]:
    words = shlex.split(value)
    if len(words) >= 2 and "=" not in words[0]:
        return [(words[0], " ".join(words[1:]))]  # the old "ENV NAME value" form
    pairs = []
    for word in words:
        name, sep, setting = word.partition("=")
        if not sep or not name:
            raise UsageError(f"expected NAME=VALUE, got {word!r}")
        pairs.append((name, setting))
    return pairs


def _timestamp(seconds: int) -> str:
    moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def new_config(
    base_config: dict[str, Any],
    layer: LayerResult,
    *,
    created: int,
    changes: Iterable[str] = (),
    message: str | None = None,
    author: str | None = None,
    created_by: str = "layerdiff commit",
    base_diff_ids: list[str] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the new config and its new history step.

    ``base_diff_ids`` are the diff_ids read from the base layers; they
    replace the base config's list, so a base without a config (bare layer
    tars, the legacy docker save layout) still yields a complete image: a
    history step per base layer it lacks, and the host's os and
    architecture where the base names none.
    """
    config = copy.deepcopy(base_config)
    config.pop("container", None)
    config.pop("container_config", None)
    runtime = apply_changes(config.get("config") or {}, changes)
    config["config"] = runtime
    rootfs = config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
    rootfs["type"] = "layers"
    below = rootfs.get("diff_ids") or []
    if base_diff_ids is not None:
        below = base_diff_ids
    rootfs["diff_ids"] = list(below) + [layer.diff_id]
    step: dict[str, Any] = {"created": _timestamp(created), "created_by": created_by}
    if message:
        step["comment"] = message
    if author:
        step["author"] = author
        config["author"] = author
    history = [h for h in config.get("history") or [] if isinstance(h, dict)]
    with_layer = sum(1 for h in history if not h.get("empty_layer"))
    missing = [
        {"created": _timestamp(created), "comment": f"base layer {n + 1}"}
        for n in range(with_layer, len(below))
    ]
    config["history"] = history + missing + [step]
    config["created"] = _timestamp(created)
    if "os" not in config or "architecture" not in config:
        from .archive import host_platform

        system, _, arch = host_platform().partition("/")
        config.setdefault("os", system)
        arch, _, variant = arch.partition("/")
        config.setdefault("architecture", arch)
        if variant:
            config.setdefault("variant", variant)
    return config, step


def _json_bytes(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class BaseLayer:
    """A layer of the base image to copy: where its blob is and its digests."""

    location: Any
    digest: str
    diff_id: str
    size: int
    compression: str


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mtime: int) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = mtime
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _add_file(tar: tarfile.TarFile, name: str, opener, size: int, mtime: int):
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = mtime
    info.mode = 0o644
    with opener() as handle:
        tar.addfile(info, handle)


def _copy_range(source: int, target: int, size: int) -> None:
    """Copy ``size`` bytes from the start of ``source`` at ``target``'s offset.

    In the kernel where it can (copy_file_range, else sendfile), so the
    bytes of a large layer do not pass through this process. The copy goes
    in pieces, each sent on to the disk at once: the fsync of the output
    then waits for little more than the last piece.
    """
    done = 0
    for call in (os.copy_file_range, os.sendfile, None):
        try:
            while done < size:
                want = min(_COPY_PIECE, size - done)
                if call is None:
                    chunk = os.pread(source, min(_CHUNK, want), done)
                    count = os.write(target, chunk)
                elif call is os.sendfile:
                    count = os.sendfile(target, source, done, want)
                else:
                    count = call(source, target, want, offset_src=done)
                if not count:
                    raise OSError(f"{size - done} bytes short of {size}")
                done += count
                start_writeback(target)
            return
        except OSError as exc:
            if call is None or exc.errno not in _NO_RANGE_COPY:
                raise


def _add_blob(tar: tarfile.TarFile, name: str, path: str, size: int, mtime: int):
    """Add the file at ``path`` as a member, copying its bytes in the kernel."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = mtime
    info.mode = 0o644
    header = info.tobuf(tar.format, tar.encoding, tar.errors)
    out = tar.fileobj
    out.write(header)
    out.flush()
    with open(path, "rb") as data:
        _copy_range(data.fileno(), out.fileno(), size)
    out.seek(0, os.SEEK_END)  # the buffered writer goes on after the copy
    padding = -size % tarfile.BLOCKSIZE
    out.write(bytes(padding))
    tar.offset += len(header) + size + padding


def _add_dir(tar: tarfile.TarFile, name: str, mtime: int) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    info.mtime = mtime
    tar.addfile(info)


@dataclass
class ImageResult:
    """What ``write_image`` wrote."""

    format: str
    manifest_digest: str
    config_digest: str
    config: dict[str, Any]
    manifest: dict[str, Any] = field(default_factory=dict)


def base_layers(img: Image, view_layers) -> list[BaseLayer]:
    """Pair the base image's layer refs with the digests read from them."""
    result = []
    for ref, report in zip(img.layers, view_layers):
        if ref.location is None:
            raise UsageError(
                f"base layer {ref.index + 1} is not in the archive; "
                "cannot write a new image without it",
                source=img.source,
            )
        result.append(
            BaseLayer(
                ref.location,
                report.digest,
                report.diff_id,
                report.size,
                report.compression,
            )
        )
    return result


def write_image(
    output: str,
    *,
    fmt: str,
    base: list[BaseLayer],
    layer_blob: str,
    layer: LayerResult,
    config: dict[str, Any],
    tag: str | None,
    created: int,
) -> ImageResult:
    """Write the base layers, the new layer and the config as one archive."""
    config_bytes = _json_bytes(config)
    config_digest = _sha(config_bytes)
    layers: list[tuple[Any, str, int, str]] = [
        (b.location.open, b.digest, b.size, b.compression) for b in base
    ]
    layers.append((layer_blob, layer.digest, layer.size, layer.compression))
    blobs: dict[str, tuple[Any, int]] = {}
    for opener, digest, size, _ in layers:
        blobs.setdefault(digest, (opener, size))

    with (
        atomic_output(output) as handle,
        tarfile.open(
            fileobj=handle, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8"
        ) as tar,
    ):
        if fmt == "oci":
            media = _DIR_MEDIA
            manifest = {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": config_digest,
                    "size": len(config_bytes),
                },
                "layers": [
                    {"mediaType": media[c], "digest": d, "size": s}
                    for _, d, s, c in layers
                ],
            }
            manifest_bytes = _json_bytes(manifest)
            descriptor: dict[str, Any] = {
                "mediaType": manifest["mediaType"],
                "digest": _sha(manifest_bytes),
                "size": len(manifest_bytes),
            }
            if tag:
                descriptor["annotations"] = {"org.opencontainers.image.ref.name": tag}
            index = {"schemaVersion": 2, "manifests": [descriptor]}
            _add_dir(tar, "blobs", created)
            _add_dir(tar, "blobs/sha256", created)
            names = sorted(
                [(d, o, s) for d, (o, s) in blobs.items()]
                + [(config_digest, None, 0), (_sha(manifest_bytes), None, 0)]
            )
            for digest, opener, size in names:
                name = "blobs/sha256/" + digest[7:]
                if digest == config_digest:
                    _add_bytes(tar, name, config_bytes, created)
                elif opener is None:
                    _add_bytes(tar, name, manifest_bytes, created)
                elif isinstance(opener, str):
                    _add_blob(tar, name, opener, size, created)
                else:
                    _add_file(tar, name, opener, size, created)
            _add_bytes(tar, "index.json", _json_bytes(index), created)
            _add_bytes(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}', created)
            manifest_digest = _sha(manifest_bytes)
        else:
            names = []
            _add_dir(tar, "blobs", created)
            _add_dir(tar, "blobs/sha256", created)
            for digest, (opener, size) in sorted(blobs.items()):
                name = "blobs/sha256/" + digest[7:]
                if isinstance(opener, str):
                    _add_blob(tar, name, opener, size, created)
                else:
                    _add_file(tar, name, opener, size, created)
            config_name = "blobs/sha256/" + config_digest[7:]
            _add_bytes(tar, config_name, config_bytes, created)
            names = ["blobs/sha256/" + d[7:] for _, d, _, _ in layers]
            manifest = {
                "Config": config_name,
                "RepoTags": [tag] if tag else None,
                "Layers": names,
            }
            manifest_bytes = _json_bytes([manifest])
            _add_bytes(tar, "manifest.json", manifest_bytes, created)
            manifest_digest = _sha(manifest_bytes)
    return ImageResult(fmt, manifest_digest, config_digest, config, manifest)


def layer_to_temp(
    plan: CommitPlan,
    beside: str,
    *,
    compression: str,
    epoch: int | None,
    keep_hashes: bool = False,
) -> tuple[str, LayerResult]:
    """Write the layer blob to a temporary file next to the output ``beside``."""
    fd, name = temporary_in(beside, suffix=".layer")
    try:
        with os.fdopen(fd, "wb") as handle:
            result = write_layer(
                plan,
                handle,
                compression=compression,
                epoch=epoch,
                keep_hashes=keep_hashes,
            )
    except BaseException as exc:
        os.unlink(name)
        if isinstance(exc, OutputError):
            exc.located(source=beside)
        raise
    return name, result


def expected_view(base: MergedView | None, changeset: Changeset) -> MergedView:
    """Return the merged view the committed image must have."""
    from .classify import apply_layer

    view = copy.deepcopy(base) if base is not None else MergedView()
    layer = max((view.layers[n] for n in view.live_numbers()), default=-1) + 1
    apply_layer(view, changeset, layer)
    return view


def _signature(node: Node) -> tuple:
    entry = node.entry
    kind = node.data_type
    return (
        kind.value,
        entry.mode,
        entry.uid,
        entry.gid,
        node.size,
        node.sha256,
        entry.linkname if kind is EntryType.SYMLINK else "",
        (entry.devmajor, entry.devminor),
        tuple(sorted((entry.xattrs or {}).items())),
    )


def view_differences(expected: MergedView, actual: MergedView) -> list[str]:
    """Return the paths whose type, content or metadata differ, sorted."""
    paths_ = set(expected.nodes) | set(actual.nodes)
    paths_.discard("")
    found = []
    for path in sorted(paths_):
        one, two = expected.get(path), actual.get(path)
        if one is None or two is None or _signature(one) != _signature(two):
            found.append(path)
    return found


@dataclass
class CommitResult:
    """Everything a commit wrote, and what it left out."""

    output: str
    image: ImageResult
    layer: LayerResult
    history: dict[str, Any]
    left_out: list[ContainerChange]
    volume_writes: list[ContainerChange]
    layer_out: str | None = None
    verified: bool = False
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _base_format(img: Image) -> str:
    return "oci" if img.format == "oci-layout" else "docker"


def _read_back(staging: str, container: Container) -> list[str]:
    """Read a written image back; return how it differs from what was meant."""
    from .archive import open_image
    from .inspect import merged_view

    try:
        readback = open_image(staging)
        try:
            actual = merged_view(readback)
        finally:
            readback.close()
    except LayerdiffError as exc:
        return [f"the written image does not read back: {exc.message}"]
    expected = expected_view(container.base_view, container.plan.changeset)
    differing = view_differences(expected, actual)
    if not differing:
        return []
    shown = ", ".join("/" + p for p in differing[:5])
    return [f"{len(differing)} paths differ after reading back: {shown}"]


def commit_container(
    container: Container,
    output: str,
    *,
    fmt: str | None = None,
    compression: str | None = None,
    layer_out: str | None = None,
    changes: Iterable[str] = (),
    message: str | None = None,
    author: str | None = None,
    tag: str | None = None,
    verify: bool = False,
) -> CommitResult:
    """Write the base image plus the container's committed layer.

    With ``verify``, the layer is built twice and must be byte-identical,
    and the written image is read back: its merged view must equal the base
    with the committed changeset applied. A failed verification leaves no
    output and lists the problems in the result.
    """
    img = container.base_image
    if img is None or container.base_report is None:
        raise UsageError("commit needs --base IMAGE")
    plan = container.plan
    check_outputs({"-o": output, "--layer-out": layer_out}, container.inputs())
    fmt = fmt or _base_format(img)
    compression = compression or ("gzip" if fmt == "oci" else "none")
    if fmt == "docker" and compression == "zstd":
        raise UsageError(
            "docker load cannot read zstd layers from a docker save archive; "
            "use --format oci, or --compression gzip or none"
        )
    epoch = source_date_epoch()
    created = epoch if epoch is not None else plan.upper.mtime
    base = base_layers(img, container.base_report.layers)
    directory = os.path.dirname(os.path.abspath(output))
    problems: list[str] = []

    # A verification compares the files' hashes with the image read back.
    blob, layer = layer_to_temp(
        plan, output, compression=compression, epoch=epoch, keep_hashes=verify
    )
    try:
        if verify:
            again, second = layer_to_temp(
                plan, output, compression=compression, epoch=epoch
            )
            os.unlink(again)
            if (second.diff_id, second.digest) != (layer.diff_id, layer.digest):
                problems.append(
                    f"the layer is not reproducible: {layer.digest} then "
                    f"{second.digest}"
                )
        config, step = new_config(
            img.config,
            layer,
            created=created,
            changes=changes,
            message=message,
            author=author,
            base_diff_ids=[b.diff_id for b in base],
        )
        staging = os.path.join(directory, f".{os.path.basename(output)}.verify")
        written = write_image(
            staging if verify else output,
            fmt=fmt,
            base=base,
            layer_blob=blob,
            layer=layer,
            config=config,
            tag=tag,
            created=created,
        )
        if verify:
            try:
                problems += _read_back(staging, container)
                if problems:
                    os.unlink(staging)
                else:
                    replace(staging, output)
            except BaseException:
                if os.path.exists(staging):
                    os.unlink(staging)
                raise
        if layer_out and not problems:
            with atomic_output(layer_out) as handle, open(blob, "rb") as data:
                handle.flush()
                _copy_range(data.fileno(), handle.fileno(), layer.size)
    finally:
        os.unlink(blob)
    return CommitResult(
        output=output,
        image=written,
        layer=layer,
        history=step,
        left_out=plan.left_out,
        volume_writes=container.volume_writes,
        layer_out=layer_out,
        verified=verify and not problems,
        problems=problems,
        notes=list(container.notes),
    )
