"""Blobs as streams: compression sniffed by magic bytes, digests verified.

Real archives mislabel compression in media types, so the first bytes of
the blob decide: gzip starts 1f 8b, zstd 28 b5 2f fd, anything else is
read as a plain tar. Every byte read is hashed twice: as stored (the
digest) and as decompressed (the diff_id).
"""

from __future__ import annotations

import hashlib
from typing import BinaryIO

from .errors import LayerFormatError, SizeLimitError

try:  # isal inflates gzip about three times faster than zlib
    from isal.isal_zlib import decompressobj as _gzip_decompressobj
except ImportError:  # pragma: no cover - isal has wheels for common hosts
    from zlib import decompressobj as _gzip_decompressobj

try:
    from compression.zstd import ZstdDecompressor, ZstdError  # Python 3.14+
except ImportError:
    from backports.zstd import ZstdDecompressor, ZstdError

__all__ = ["sniff", "HashingReader", "LayerStream", "CHUNK", "DEFAULT_MAX_SIZE"]

CHUNK = 1 << 20
# How far one layer (or a compressed archive) may expand by default. The
# largest real layers (GPU toolkits) are a few tens of GB; a gzip or zstd
# bomb goes well past this within a few hundred MB of input, and the limit
# bounds the time spent on it and the disk used by a compressed archive.
DEFAULT_MAX_SIZE = 64 << 30
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def sniff(head: bytes) -> str:
    """Return 'gzip', 'zstd' or 'none' for the first bytes of a blob."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return "none"


class HashingReader:
    """Read a blob and keep the sha256 and count of every byte read."""

    def __init__(self, raw: BinaryIO, limit: int | None = None) -> None:
        self._raw = raw
        self._limit = limit
        self._head = b""
        self.hash = hashlib.sha256()
        self.count = 0

    def peek(self, size: int) -> bytes:
        """Return up to ``size`` first bytes without consuming them."""
        if len(self._head) < size:
            self._head += self._raw_read(size - len(self._head))
        return self._head[:size]

    def _raw_read(self, size: int) -> bytes:
        if self._limit is not None:
            size = min(size, self._limit - self.count - len(self._head))
            if size <= 0:
                return b""
        return self._raw.read(size)

    def read(self, size: int = CHUNK) -> bytes:
        if self._head:
            data, self._head = self._head, b""
        else:
            data = self._raw_read(size)
        self.hash.update(data)
        self.count += len(data)
        return data

    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


class LayerStream:
    """The decompressed bytes of one layer blob, read in chunks.

    ``read_chunk`` returns the next piece of the uncompressed tar, or b""
    at the end. Truncated or corrupt compressed data raises
    LayerFormatError; more than ``max_size`` decompressed bytes raise
    SizeLimitError before they are produced.
    """

    def __init__(self, blob: HashingReader, max_size: int | None = None) -> None:
        self.blob = blob
        self.compression = sniff(blob.peek(4))
        self.max_size = max_size
        self.diff_hash = hashlib.sha256()
        self.count = 0
        self._pending = b""
        self._dec = None
        self._started = False
        self._done = False

    def read_chunk(self) -> bytes:
        if self._done:
            return b""
        if self.compression == "none":
            data = self.blob.read(CHUNK)
        elif self.compression == "gzip":
            data = self._inflate_gzip()
        else:
            data = self._inflate_zstd()
        if not data:
            self._done = True
            return b""
        self.count += len(data)
        if self.max_size is not None and self.count > self.max_size:
            raise SizeLimitError(
                f"decompresses to more than {self.max_size} bytes "
                "(the --max-size limit)",
                hint="a decompression bomb, or a layer larger than expected: "
                "raise the limit with --max-size if the input is trusted",
            )
        self.diff_hash.update(data)
        return data

    def _next_input(self) -> bytes:
        if self._pending:
            data, self._pending = self._pending, b""
            return data
        return self.blob.read(CHUNK)

    def _inflate_gzip(self) -> bytes:
        while True:
            dec = self._dec
            if dec is not None and dec.unconsumed_tail:
                try:
                    out = dec.decompress(dec.unconsumed_tail, CHUNK)
                except Exception as exc:  # zlib.error / isal error
                    raise LayerFormatError(f"corrupt gzip data: {exc}") from exc
            else:
                data = self._next_input()
                if not data:
                    if dec is not None and not dec.eof:
                        raise LayerFormatError("gzip stream is truncated")
                    return b""
                if dec is None or dec.eof:
                    if not self._start_member(data, GZIP_MAGIC):
                        return b""
                    dec = self._dec = _gzip_decompressobj(31)
                try:
                    out = dec.decompress(data, CHUNK)
                except Exception as exc:  # zlib.error / isal error
                    raise LayerFormatError(f"corrupt gzip data: {exc}") from exc
            if dec.eof and dec.unused_data:
                self._pending = dec.unused_data
            if out:
                return out

    def _inflate_zstd(self) -> bytes:
        while True:
            dec = self._dec
            try:
                if dec is not None and not dec.eof and not dec.needs_input:
                    out = dec.decompress(b"", CHUNK)
                else:
                    data = self._next_input()
                    if not data:
                        if dec is not None and not dec.eof:
                            raise LayerFormatError("zstd stream is truncated")
                        return b""
                    if dec is None or dec.eof:
                        if not self._start_member(data, ZSTD_MAGIC):
                            return b""
                        dec = self._dec = ZstdDecompressor()
                    out = dec.decompress(data, CHUNK)
            except ZstdError as exc:
                raise LayerFormatError(f"corrupt zstd data: {exc}") from exc
            if dec.eof and dec.unused_data:
                self._pending = dec.unused_data
            if out:
                return out

    def _start_member(self, data: bytes, magic: bytes) -> bool:
        """Accept the start of a new compressed member, or trailing zeros."""
        if not self._started or data.startswith(magic[:2]):
            self._started = True
            return True
        rest = data
        while True:
            if rest.strip(b"\x00"):
                raise LayerFormatError(
                    f"unexpected bytes after the end of the {self.compression} stream"
                )
            rest = self.blob.read(CHUNK)
            if not rest:
                return False

    def drain(self) -> None:
        """Read to the end so that digest and diff_id cover every byte."""
        while self.read_chunk():
            pass

    def diff_id(self) -> str:
        return "sha256:" + self.diff_hash.hexdigest()
