"""A cache of layer indexes, keyed by diff_id, shared by every image.

A layer's changeset (its entries, whiteouts, opaque directories, findings
and sizes) depends only on its uncompressed tar, which its diff_id names.
So an image that shares base layers with one read before only needs to
read its new layers.

What a cache hit may skip, and what it may not:

- The blob is still hashed, and its digest compared with the manifest's.
  That costs one sha256 pass over the compressed bytes, no inflating and no
  tar parsing.
- The cache file records the digest of the blob it was built from, whose
  decompressed bytes were checked against the diff_id at the time. When
  this blob hashes to the same digest it is the same bytes, so its diff_id
  holds too. When the digest differs (the same tar compressed another way,
  or a corrupt blob), the cached index is not used: the layer is read and
  verified in full, and the cache file is rewritten.
- Bare layer tars declare no diff_id, so they are never looked up.

Cache files are written to a temporary name and renamed into place, so
concurrent runs never see half a file; the last writer wins, and both
wrote the same index. Each file starts with a header naming the format
version and the sha256 and length of the body; a file that fails any check
is ignored, logged, and rebuilt. A file is never trusted to be well formed:
the body is JSON, never pickle.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import stat
import tempfile
from typing import BinaryIO

from isal.isal_zlib import compress, decompressobj

from .errors import DigestMismatchError, SizeLimitError, short_digest
from .model import Changeset, Entry, EntryTable, EntryType, Finding, Severity

__all__ = ["LayerCache", "default_cache_dir", "FORMAT_VERSION"]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_MAGIC = b"layerdiff-layer-index"
_HEADER_LIMIT = 256
# A layer of a million entries indexes to well under this, compressed.
_FILE_LIMIT = 1 << 30
_BODY_LIMIT = 4 << 30
_TYPES = {t.value: t for t in EntryType}
_SEVERITIES = {s.value: s for s in Severity}


def default_cache_dir() -> str:
    """Return the user's cache directory for layerdiff (XDG rules)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache"
    )
    return os.path.join(base, "layerdiff")


class _Corrupt(Exception):
    """A cache file that cannot be trusted; it is rebuilt."""


class _Unusable(Exception):
    """A cache path that is no regular file: a link, a fifo, a device."""


def _read(path: str) -> bytes:
    """Read a cache file, never following a link or blocking on a fifo.

    The read is bounded by the length the header declares, itself bounded
    by the file's size and ``_FILE_LIMIT``, so a damaged or planted file
    can neither hang the run nor fill memory.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _Unusable("it is a symbolic link") from None
        raise
    with os.fdopen(fd, "rb", buffering=0) as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _Unusable("it is not a regular file")
        if info.st_size > _FILE_LIMIT:
            raise _Unusable(f"it is {info.st_size} bytes, larger than any index")
        head = handle.read(_HEADER_LIMIT)
        end = head.find(b"\n")
        fields = head[:end].split(b" ") if end >= 0 else []
        if len(fields) != 4 or not fields[3].isdigit():
            return head  # _decode says what is wrong with it
        length = end + 1 + int(fields[3])
        if length != info.st_size:
            raise _Corrupt("truncated" if length > info.st_size else "trailing data")
        chunks = [head]
        left = length - len(head)
        while left > 0:
            chunk = handle.read(min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)


class LayerCache:
    """Layer indexes stored as files under ``directory``, one per diff_id."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        # Counted by the callers that read layers, for reports and tests.
        self.hits = 0
        self.misses = 0

    def path_for(self, diff_id: str) -> str | None:
        """Return the file for a diff_id, or None for a malformed one."""
        algorithm, _, hexpart = diff_id.partition(":")
        if algorithm != "sha256" or len(hexpart) != 64:
            return None
        if hexpart.strip("0123456789abcdef"):
            return None
        return os.path.join(
            self.directory, f"v{FORMAT_VERSION}", hexpart[:2], hexpart + ".json.z"
        )

    def load(self, diff_id: str) -> Changeset | None:
        """Return the cached changeset of a layer, or None on a miss.

        A missing, unreadable, corrupt or mismatched file is a miss.
        """
        path = self.path_for(diff_id)
        if path is None:
            return None
        try:
            data = _read(path)
            changeset = _decode(data)
            if changeset.diff_id != diff_id:
                raise _Corrupt("it holds another layer")
        except FileNotFoundError:
            return None
        except _Unusable as exc:
            log.info("layer cache: ignoring %s: %s", path, exc)
            return None
        except OSError as exc:
            log.warning("layer cache: cannot read %s: %s", path, exc.strerror)
            return None
        except _Corrupt as exc:
            log.warning("layer cache: ignoring %s: %s; rebuilding it", path, exc)
            return None
        return changeset

    def store(self, changeset: Changeset) -> None:
        """Write a changeset's index; failures are logged, never raised."""
        if not changeset.diff_id or not changeset.digest:
            return
        path = self.path_for(changeset.diff_id)
        if path is None:
            return
        data = _encode(changeset)
        directory = os.path.dirname(path)
        temporary = None
        try:
            os.makedirs(directory, exist_ok=True)
            fd, temporary = tempfile.mkstemp(prefix=".tmp-", dir=directory)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(temporary, path)
            temporary = None
        except OSError as exc:
            log.warning("layer cache: cannot write %s: %s", path, exc.strerror)
        finally:
            if temporary is not None:
                try:
                    os.unlink(temporary)
                except OSError:
                    pass

    def lookup(
        self,
        blob: BinaryIO,
        *,
        diff_id: str | None,
        digest: str | None,
        blob_size: int | None,
        max_size: int | None,
    ) -> Changeset | None:
        """Return the cached changeset if this blob is the one it was built from.

        The blob is hashed (not inflated) to prove that; on a hit it has
        been read to the end and its digest checked against ``digest``.
        """
        if not diff_id:
            return None
        changeset = self.load(diff_id)
        if changeset is None:
            return None
        hasher = hashlib.sha256()
        count = 0
        while True:
            want = 1 << 20
            if blob_size is not None:
                want = min(want, blob_size - count)
                if want <= 0:
                    break
            chunk = blob.read(want)
            if not chunk:
                break
            hasher.update(chunk)
            count += len(chunk)
        found = "sha256:" + hasher.hexdigest()
        if blob_size is not None and count != blob_size:
            raise DigestMismatchError(
                f"blob is {count} bytes, the manifest says {blob_size}"
            )
        if digest and digest != found:
            raise DigestMismatchError(
                f"blob digest does not match: expected {short_digest(digest)}, "
                f"the bytes hash to {short_digest(found)}",
                hint="the archive is corrupt or was edited after it was written",
            )
        if found != changeset.digest:
            # Same diff_id, other bytes: only a full read can prove the diff_id.
            return None
        if max_size is not None and changeset.uncompressed_size > max_size:
            raise SizeLimitError(
                f"layer decompresses to more than {max_size} bytes "
                "(the --max-size limit)"
            )
        log.info("read layer %s from the layer cache", short_digest(diff_id))
        return changeset


def _encode(changeset: Changeset) -> bytes:
    entries = [
        [
            e.path,
            e.type.value,
            e.mode,
            e.uid,
            e.gid,
            e.size,
            e.mtime,
            e.linkname,
            e.sha256,
            None
            if e.xattrs is None
            else {k: v.decode("latin-1") for k, v in e.xattrs.items()},
            e.devmajor,
            e.devminor,
            e.uname,
            e.gname,
        ]
        for e in changeset.entries
    ]
    findings = [
        [f.rule, f.message, f.severity.value, f.path, f.layer, f.size]
        for f in changeset.findings
    ]
    document = {
        "digest": changeset.digest,
        "diff_id": changeset.diff_id,
        "compression": changeset.compression,
        "size": changeset.size,
        "uncompressed_size": changeset.uncompressed_size,
        "entries": entries,
        "whiteouts": changeset.whiteouts,
        "opaque_dirs": changeset.opaque_dirs,
        "findings": findings,
    }
    body = compress(json.dumps(document, separators=(",", ":")).encode(), 1)
    header = b"%s %d sha256:%s %d\n" % (
        _MAGIC,
        FORMAT_VERSION,
        hashlib.sha256(body).hexdigest().encode(),
        len(body),
    )
    return header + body


def _decode(data: bytes) -> Changeset:
    end = data.find(b"\n", 0, _HEADER_LIMIT)
    if end < 0:
        raise _Corrupt("no header")
    fields = data[:end].split(b" ")
    if len(fields) != 4 or fields[0] != _MAGIC:
        raise _Corrupt("not a layer index file")
    if fields[1] != b"%d" % FORMAT_VERSION:
        raise _Corrupt(f"format version {fields[1]!r}, expected {FORMAT_VERSION}")
    body = data[end + 1 :]
    if fields[3] != b"%d" % len(body):
        raise _Corrupt("truncated")
    if fields[2] != b"sha256:" + hashlib.sha256(body).hexdigest().encode():
        raise _Corrupt("checksum does not match")
    try:
        inflater = decompressobj()
        text = inflater.decompress(body, _BODY_LIMIT)
        if inflater.unconsumed_tail:
            raise _Corrupt(f"body inflates to more than {_BODY_LIMIT >> 20} MiB")
        document = json.loads(text)
        changeset = Changeset(
            entries=EntryTable.from_entries(map(_entry, document["entries"])),
            whiteouts=_strings(document["whiteouts"]),
            opaque_dirs=_strings(document["opaque_dirs"]),
            findings=[_finding(item) for item in document["findings"]],
            digest=document["digest"],
            diff_id=document["diff_id"],
            compression=document["compression"],
            size=document["size"],
            uncompressed_size=document["uncompressed_size"],
        )
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise _Corrupt(f"malformed body ({exc.__class__.__name__})") from None
    if not isinstance(changeset.size, int) or not isinstance(
        changeset.uncompressed_size, int
    ):
        raise _Corrupt("malformed sizes")
    return changeset


def _strings(items) -> list[str]:
    if not all(isinstance(item, str) for item in items):
        raise TypeError("expected strings")
    return list(items)


def _entry(item) -> Entry:
    (path, kind, mode, uid, gid, size, mtime, linkname, sha256, xattrs,
     devmajor, devminor, uname, gname) = item  # fmt: skip
    if not isinstance(path, str) or not isinstance(size, int):
        raise TypeError("malformed entry")
    return Entry(
        path,
        _TYPES[kind],
        mode,
        uid,
        gid,
        size,
        mtime,
        linkname,
        sha256,
        None if xattrs is None else {k: v.encode("latin-1") for k, v in xattrs.items()},
        devmajor,
        devminor,
        uname,
        gname,
    )


def _finding(item) -> Finding:
    rule, message, severity, path, layer, size = item
    return Finding(rule, message, _SEVERITIES[severity], path, layer, size)
