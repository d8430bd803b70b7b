"""A streaming tar reader: ustar, GNU and PAX, including sparse files.

It parses headers itself instead of using ``tarfile`` so that one pass over
a decompressed layer yields every member with the sha256 of its content,
never seeks, and never keeps more than one chunk in memory.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Callable, Iterator
from zlib import adler32

from .errors import LayerdiffError, LayerFormatError, SizeLimitError

__all__ = ["TarMember", "read_tar", "BLOCK"]

BLOCK = 512
_ZERO_BLOCK = bytes(BLOCK)
_ZEROS = bytes(1 << 16)
# PAX and GNU long-name headers are held in memory; real ones are a few
# kilobytes. The tar reader of the Go standard library, which docker and
# containerd use, refuses them past 1 MiB, so no image they accept is lost.
EXTENDED_LIMIT = 1 << 20


@dataclass(slots=True)
class TarMember:
    """One member of a tar stream, after PAX and GNU extensions apply."""

    name: str
    typeflag: str
    mode: int
    uid: int
    gid: int
    size: int
    mtime: int
    linkname: str
    uname: str
    gname: str
    devmajor: int
    devminor: int
    xattrs: dict[str, bytes] | None
    sha256: str | None
    offset: int


class _Reader:
    """Buffered access to a chunk source: exact reads, skips, hashing.

    ``buf[pos:]`` is what is buffered and not yet consumed; ``base`` is the
    stream offset of ``buf[0]``. read_tar works on these fields directly
    for headers and small contents that lie wholly in the buffer, and
    calls the methods for everything else.
    """

    __slots__ = ("_read_chunk", "base", "buf", "pos")

    def __init__(self, read_chunk: Callable[[], bytes]) -> None:
        self._read_chunk = read_chunk
        self.buf = b""
        self.pos = 0
        self.base = 0

    @property
    def offset(self) -> int:
        """Return how many bytes of the stream were consumed so far."""
        return self.base + self.pos

    def fill(self, need: int) -> bool:
        """Buffer at least ``need`` unconsumed bytes; False if the stream ends."""
        avail = len(self.buf) - self.pos
        if avail >= need:
            return True
        parts = [self.buf[self.pos :]]
        while avail < need:
            chunk = self._read_chunk()
            if not chunk:
                break
            parts.append(chunk)
            avail += len(chunk)
        self.base += self.pos
        self.buf = b"".join(parts)
        self.pos = 0
        return avail >= need

    def pending(self) -> int:
        """Return how many bytes are buffered but not consumed."""
        return len(self.buf) - self.pos

    def read(self, size: int) -> bytes | None:
        """Return exactly ``size`` bytes, or None when the stream ends first."""
        if not self.fill(size):
            return None
        data = self.buf[self.pos : self.pos + size]
        self.pos += size
        return data

    def consume(self, size: int, sink: Callable[[bytes], None] | None) -> bool:
        """Pass the next ``size`` bytes to ``sink`` (or drop them)."""
        while size > 0:
            avail = len(self.buf) - self.pos
            if avail == 0:
                self.base += len(self.buf)
                self.buf = self._read_chunk()
                self.pos = 0
                avail = len(self.buf)
                if avail == 0:
                    return False
            take = min(avail, size)
            if sink is not None:
                if self.pos == 0 and take == avail:
                    sink(self.buf)
                else:
                    sink(memoryview(self.buf)[self.pos : self.pos + take])
            self.pos += take
            size -= take
        return True


def _text(raw: bytes) -> str:
    return raw.partition(b"\x00")[0].decode("utf-8", "surrogateescape")


def _number(raw: bytes, field: str) -> int:
    if raw and raw[0] & 0x80:
        if raw[0] == 0xFF:
            raise LayerFormatError(f"negative {field} in a tar header")
        return int.from_bytes(bytes([raw[0] & 0x7F]) + raw[1:], "big")
    text = raw.split(b"\x00", 1)[0].strip(b" ")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise LayerFormatError(
            f"tar header {field} is not a number: {text[:20]!r}"
        ) from None


def _octal(raw: bytes, field: str) -> int:
    """Parse a numeric header field: plain octal at once, the rest by _number.

    ``int`` refuses NUL and any byte above 0x7f, so a field it accepts once
    its trailing NULs and spaces are gone holds no NUL terminator inside it
    and no base-256 number: _number would read it the same way.
    """
    try:
        return int(raw.rstrip(b" \x00"), 8)
    except ValueError:
        return _number(raw, field)


def _owner(raw: bytes) -> tuple[int, int, int]:
    """Parse the mode, uid and gid fields, which lie side by side."""
    return (
        _octal(raw[0:8], "mode") & 0o7777,
        _octal(raw[8:16], "uid"),
        _octal(raw[16:24], "gid"),
    )


def _owner_names(raw: bytes) -> tuple[str, str]:
    """Parse the uname and gname fields, which lie side by side."""
    return _text(raw[0:32]), _text(raw[32:64])


def _mtime(raw: bytes) -> int:
    return _octal(raw, "mtime")


def _remembered(cache: dict, raw: bytes, parse: Callable):
    """Return parse(raw) and remember it, while ``cache`` is small."""
    value = parse(raw)
    if len(cache) < _CACHE_LIMIT:
        cache[raw] = value
    return value


# Modes, owners, owner names and often times repeat from header to header;
# their parsed values are remembered per stream, up to this many of each,
# so that headers crafted to differ cost no more memory than this.
_CACHE_LIMIT = 4096
# name, mode+uid+gid, size, mtime, chksum, (typeflag), linkname, magic and
# version, uname+gname, devmajor, devminor, prefix
_HEADER = struct.Struct("100s24s12s12s8sx100s8s64s8s8s155s")
# Past this size a content is hashed through a memoryview, not a copy.
_COPY_LIMIT = 1 << 16


def _parse_pax(data: bytes) -> list[tuple[str, bytes]]:
    records = []
    pos = 0
    while pos < len(data):
        if data[pos] == 0:
            break
        space = data.find(b" ", pos)
        try:
            length = int(data[pos:space])
        except ValueError:
            raise LayerFormatError("malformed PAX extended header") from None
        if space < 0 or length <= 0 or pos + length > len(data):
            raise LayerFormatError("malformed PAX extended header")
        record = data[space + 1 : pos + length]
        if not record.endswith(b"\n") or b"=" not in record:
            raise LayerFormatError("malformed PAX extended header record")
        key, _, value = record[:-1].partition(b"=")
        records.append((key.decode("utf-8", "surrogateescape"), value))
        pos += length
    return records


_TYPES = {
    "0": "0", "\x00": "0", "7": "0", "1": "1", "2": "2", "3": "3",
    "4": "4", "5": "5", "6": "6", "S": "0",
}  # fmt: skip
_NO_PAX: dict[str, bytes] = {}  # shared by every member without PAX records


def _signed_checksum_matches(header: bytes, stored: int) -> bool:
    """Tell whether ``stored`` is the header's sum as signed chars.

    Some old tar writers summed the header that way.
    """
    signed = sum(b - 256 if b > 127 else b for b in header)
    signed -= sum(b - 256 if b > 127 else b for b in header[148:156])
    return stored == signed + 8 * 32


def read_tar(
    read_chunk: Callable[[], bytes],
    *,
    hash_content: bool = True,
    max_size: int | None = None,
) -> Iterator[TarMember]:
    """Yield the members of a tar stream given as a chunk source.

    Member content is hashed (sha256 of the file as extracted, holes of a
    sparse file included) and skipped. After the end-of-archive blocks the
    rest of the stream is read too, so that a caller's digests cover it.
    Raises LayerFormatError on a truncated stream or a corrupt header, and
    SizeLimitError when the holes of sparse files would expand past
    ``max_size`` bytes.
    """
    # For a layer of small files this loop is the whole cost of reading it,
    # per entry: it works in the reader's buffer, unpacks a header in one
    # call, parses repeated fields once and hashes a content in one call.
    reader = _Reader(read_chunk)
    global_pax: dict[str, bytes] = {}
    local_pax: list[tuple[str, bytes]] = []
    long_name: str | None = None
    long_link: str | None = None
    holes = 0
    owners: dict[bytes, tuple[int, int, int]] = {}
    owner_names: dict[bytes, tuple[str, str]] = {}
    mtimes: dict[bytes, int] = {}
    unpack = _HEADER.unpack_from
    sha256 = hashlib.sha256
    while True:
        buf = reader.buf
        pos = reader.pos
        if len(buf) - pos < BLOCK:
            offset = reader.offset
            if not reader.fill(BLOCK):
                if reader.pending():
                    raise LayerFormatError(
                        f"tar stream ends inside a header at offset {offset}"
                    )
                if local_pax or long_name or long_link:
                    raise LayerFormatError("tar stream ends after an extended header")
                return  # no end-of-archive blocks; tolerated, as GNU tar does
            buf = reader.buf
            pos = reader.pos
        offset = reader.base + pos
        if buf.startswith(_ZERO_BLOCK, pos):
            reader.pos = pos + BLOCK
            reader.consume(1 << 62, None)
            return
        (f_name, f_owner, f_size, f_mtime, f_sum, f_link, magic, f_names,
         f_major, f_minor, f_prefix) = unpack(buf, pos)  # fmt: skip
        header_end = pos + BLOCK
        try:
            stored = int(f_sum.rstrip(b" \x00"), 8)
        except ValueError:
            stored = _number(f_sum, "checksum")
        # The checksum field counts as eight spaces. Each adler32 sums at
        # most 200 bytes, under its modulus, so its low half is exactly one
        # plus the sum of the bytes.
        if stored != (
            (adler32(buf[pos : pos + 148]) & 0xFFFF)
            + (adler32(buf[pos + 156 : pos + 356]) & 0xFFFF)
            + (adler32(buf[pos + 356 : header_end]) & 0xFFFF)
            + (8 * 32 - 3)
        ) and not _signed_checksum_matches(buf[pos:header_end], stored):
            raise LayerFormatError(
                f"bad tar header checksum at offset {offset} "
                "(not a tar stream, or corrupt)"
            )
        typeflag = chr(buf[pos + 156])
        pos = reader.pos = header_end
        try:
            try:
                size = int(f_size.rstrip(b" \x00"), 8)
            except ValueError:
                size = _number(f_size, "size")
            if size < 0:
                # It would step the reader back onto this header, forever.
                raise LayerFormatError("negative size in a tar header")
        except LayerdiffError as exc:
            raise exc.located(entry=long_name or _text(f_name))
        padded = (size + BLOCK - 1) // BLOCK * BLOCK
        kind = _TYPES.get(typeflag)
        if kind is None:
            if typeflag in "xgLK":
                if size > EXTENDED_LIMIT:
                    raise LayerFormatError(
                        f"extended header of {size} bytes at offset {offset} is "
                        f"larger than the {EXTENDED_LIMIT >> 10} KiB allowed"
                    )
                data = reader.read(padded)
                if data is None:
                    raise LayerFormatError("tar stream ends inside an extended header")
                data = data[:size]
                if typeflag == "x":
                    local_pax.extend(_parse_pax(data))
                elif typeflag == "g":
                    global_pax.update(_parse_pax(data))
                elif typeflag == "L":
                    long_name = _text(data)
                else:
                    long_link = _text(data)
                continue
            if typeflag == "V":  # a volume label carries no file
                reader.consume(padded, None)
                continue
        name = f_name.partition(b"\x00")[0].decode("utf-8", "surrogateescape")
        if f_prefix[0] and magic[:5] == b"ustar" and magic[6:] == b"00":
            name = _text(f_prefix) + "/" + name
        if global_pax or local_pax:
            pax = dict(global_pax)
            pax.update(local_pax)
        else:
            pax = _NO_PAX
        if kind is None:
            raise LayerFormatError(
                f"unsupported tar entry type {typeflag!r} at offset {offset}",
                entry=long_name or pax_text(pax, "path") or name,
            )
        try:
            owner = owners.get(f_owner)
            if owner is None:
                owner = _remembered(owners, f_owner, _owner)
            mtime = mtimes.get(f_mtime)
            if mtime is None:
                mtime = _remembered(mtimes, f_mtime, _mtime)
            names = owner_names.get(f_names)
            if names is None:
                names = _remembered(owner_names, f_names, _owner_names)
            if kind in "34":
                major = _octal(f_major, "devmajor")
                minor = _octal(f_minor, "devminor")
            else:
                major = minor = 0
            member = TarMember(
                long_name or name,
                kind,
                owner[0],
                owner[1],
                owner[2],
                size,
                mtime,
                long_link or (_text(f_link) if f_link[0] else ""),
                names[0],
                names[1],
                major,
                minor,
                None,
                None,
                offset,
            )
            sparse = None
            if pax:
                _apply_pax(member, pax, local_pax)
                if typeflag != "S" and (
                    "GNU.sparse.major" in pax
                    or "GNU.sparse.map" in pax
                    or any(key == "GNU.sparse.offset" for key, _ in local_pax)
                ):
                    sparse = _pax_sparse_map(pax, local_pax, reader, member)
            if typeflag == "S":
                sparse = _gnu_sparse_map(buf[pos - BLOCK : pos], reader, member)
            if sparse is not None:
                # Holes cost no bytes in the stream but are hashed as zeros:
                # they count against the same limit as decompressed bytes.
                holes += max(member.size - sparse[0], 0)
                if max_size is not None and holes > max_size:
                    raise SizeLimitError(
                        f"sparse files expand to more than {max_size} bytes "
                        "(the --max-size limit)",
                        hint="raise the limit with --max-size if the layer is trusted",
                    )
            if sparse is not None:
                # The map was read from the reader: buf and pos are stale.
                if kind == "0":
                    _skip_content(reader, member, sparse[0], sparse[1], hash_content)
                elif not reader.consume(padded, None):
                    raise _truncated(member)
                if kind != "0" and kind != "1":
                    member.size = 0
            elif kind != "0":
                if padded <= len(buf) - pos:
                    reader.pos = pos + padded
                elif not reader.consume(padded, None):
                    raise _truncated(member)
                if kind != "1":
                    member.size = 0
            else:
                stored_size = member.size
                end = pos + stored_size + (-stored_size) % BLOCK
                if end <= len(buf) and stored_size >= 0:
                    # The content and its padding are buffered already.
                    if hash_content:
                        if stored_size <= _COPY_LIMIT:
                            content = buf[pos : pos + stored_size]
                        else:
                            content = memoryview(buf)[pos : pos + stored_size]
                        member.sha256 = sha256(content).hexdigest()
                    reader.pos = end
                else:
                    _skip_content(reader, member, stored_size, None, hash_content)
        except LayerdiffError as exc:
            raise exc.located(entry=long_name or pax_text(pax, "path") or name)
        if local_pax:
            local_pax = []
        long_name = long_link = None
        yield member


def _truncated(member: TarMember) -> LayerFormatError:
    return LayerFormatError(
        "tar stream is truncated inside the content of this entry",
        entry=member.name,
    )


def _skip_content(
    reader: _Reader,
    member: TarMember,
    stored_size: int,
    segments: list[tuple[int, int]] | None,
    hash_content: bool,
) -> None:
    """Consume a file's content and padding, hashing it if asked."""
    if hash_content:
        digest = hashlib.sha256()
        if segments is None:
            ok = reader.consume(stored_size, digest.update)
        else:
            ok = _hash_sparse(reader, segments, member.size, digest)
        member.sha256 = digest.hexdigest()
    else:
        ok = reader.consume(stored_size, None)
    if not (ok and reader.consume((-stored_size) % BLOCK, None)):
        raise _truncated(member)


def pax_text(pax: dict[str, bytes], key: str) -> str | None:
    value = pax.get(key)
    return None if value is None else value.decode("utf-8", "surrogateescape")


def _apply_pax(
    member: TarMember, pax: dict[str, bytes], records: list[tuple[str, bytes]]
) -> None:
    for key, value in pax.items():
        if key == "path":
            member.name = value.decode("utf-8", "surrogateescape")
        elif key == "linkpath":
            member.linkname = value.decode("utf-8", "surrogateescape")
        elif key in ("size", "uid", "gid"):
            try:
                setattr(member, key, int(value))
            except ValueError:
                raise LayerFormatError(f"PAX {key} is not a number") from None
        elif key == "mtime":
            try:
                member.mtime = int(float(value))
            except (ValueError, OverflowError):  # also "nan" and "inf"
                raise LayerFormatError("PAX mtime is not a number") from None
        elif key == "uname":
            member.uname = value.decode("utf-8", "surrogateescape")
        elif key == "gname":
            member.gname = value.decode("utf-8", "surrogateescape")
        elif key.startswith("SCHILY.xattr."):
            if member.xattrs is None:
                member.xattrs = {}
            member.xattrs[key[len("SCHILY.xattr.") :]] = value
    if member.size < 0:
        raise LayerFormatError("negative size in a PAX header", entry=member.name)


def _gnu_sparse_map(
    header: bytes, reader: _Reader, member: TarMember
) -> tuple[int, list[tuple[int, int]]]:
    """Read an old-GNU sparse map; return (stored size, [(offset, length)])."""
    segments = []

    def take(block: bytes, start: int, count: int) -> None:
        for i in range(count):
            pos = start + i * 24
            offset = _number(block[pos : pos + 12], "sparse offset")
            length = _number(block[pos + 12 : pos + 24], "sparse length")
            if offset or length:
                segments.append((offset, length))

    take(header, 386, 4)
    extended = header[482]
    while extended:
        block = reader.read(BLOCK)
        if block is None:
            raise LayerFormatError("tar stream ends inside a sparse map")
        take(block, 0, 21)
        extended = block[504]
    stored = member.size
    member.size = _number(header[483:495], "sparse real size")
    return stored, segments


def _pax_sparse_map(
    pax: dict[str, bytes],
    records: list[tuple[str, bytes]],
    reader: _Reader,
    member: TarMember,
) -> tuple[int, list[tuple[int, int]]]:
    """Read a PAX sparse map (formats 0.0, 0.1 and 1.0)."""
    name = pax_text(pax, "GNU.sparse.name")
    if name:
        member.name = name
    stored = member.size
    numbers: list[int] = []
    if pax.get("GNU.sparse.major") == b"1":
        lines: list[int] = []
        used = 0
        while True:
            block = reader.read(BLOCK)
            if block is None:
                raise LayerFormatError("tar stream ends inside a sparse map")
            used += BLOCK
            text = block.split(b"\x00", 1)[0]
            lines_text = text.split(b"\n")
            lines.extend(_sparse_int(x) for x in lines_text[:-1] if x)
            if lines and len(lines) >= 1 + 2 * lines[0]:
                break
            if b"\x00" in block and not lines_text[-1]:
                raise LayerFormatError("malformed PAX sparse map")
        numbers = lines[1 : 1 + 2 * lines[0]]
        stored -= used
        real = pax.get("GNU.sparse.realsize")
    elif "GNU.sparse.map" in pax:
        numbers = [_sparse_int(x) for x in pax["GNU.sparse.map"].split(b",") if x]
        real = pax.get("GNU.sparse.size")
    else:
        keys = ("GNU.sparse.offset", "GNU.sparse.numbytes")
        numbers = [_sparse_int(v) for k, v in records if k in keys]
        real = pax.get("GNU.sparse.size")
    if real is not None:
        member.size = _sparse_int(real)
    return stored, list(zip(numbers[0::2], numbers[1::2]))


def _sparse_int(text: bytes) -> int:
    try:
        value = int(text)
    except ValueError:
        raise LayerFormatError(f"sparse map has a bad number: {text[:20]!r}") from None
    if value < 0:
        raise LayerFormatError("sparse map has a negative number")
    return value


def _hash_sparse(
    reader: _Reader, segments: list[tuple[int, int]], real_size: int, digest
) -> bool:
    position = 0

    def zeros(count: int) -> None:
        while count > 0:
            take = min(count, len(_ZEROS))
            digest.update(_ZEROS[:take])
            count -= take

    for offset, length in segments:
        if offset < position:
            raise LayerFormatError("sparse map segments overlap")
        if offset + length > real_size:
            raise LayerFormatError("sparse map segment lies past the end of the file")
        zeros(offset - position)
        if not reader.consume(length, digest.update):
            return False
        position = offset + length
    zeros(real_size - position)
    return True
