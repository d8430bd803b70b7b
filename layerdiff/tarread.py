"""A streaming tar reader: ustar, GNU and PAX, including sparse files.

It parses headers itself instead of using ``tarfile`` so that one pass over
a decompressed layer yields every member with the sha256 of its content,
never seeks, and never keeps more than one chunk in memory.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable, Iterator

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
    """Buffered access to a chunk source: exact reads, skips, hashing."""

    def __init__(self, read_chunk: Callable[[], bytes]) -> None:
        self._read_chunk = read_chunk
        self._buf = b""
        self._pos = 0
        self.offset = 0  # bytes consumed so far

    def _fill(self, need: int) -> bool:
        avail = len(self._buf) - self._pos
        if avail >= need:
            return True
        parts = [self._buf[self._pos :]]
        while avail < need:
            chunk = self._read_chunk()
            if not chunk:
                self._buf = b"".join(parts)
                self._pos = 0
                return False
            parts.append(chunk)
            avail += len(chunk)
        self._buf = b"".join(parts)
        self._pos = 0
        return True

    def pending(self) -> int:
        """Return how many bytes are buffered but not consumed."""
        return len(self._buf) - self._pos

    def read(self, size: int) -> bytes | None:
        """Return exactly ``size`` bytes, or None when the stream ends first."""
        if not self._fill(size):
            return None
        data = self._buf[self._pos : self._pos + size]
        self._pos += size
        self.offset += size
        return data

    def consume(self, size: int, sink: Callable[[bytes], None] | None) -> bool:
        """Pass the next ``size`` bytes to ``sink`` (or drop them)."""
        while size > 0:
            avail = len(self._buf) - self._pos
            if avail == 0:
                self._buf = self._read_chunk()
                self._pos = 0
                avail = len(self._buf)
                if avail == 0:
                    return False
            take = min(avail, size)
            if sink is not None:
                if self._pos == 0 and take == avail:
                    sink(self._buf)
                else:
                    sink(memoryview(self._buf)[self._pos : self._pos + take])
            self._pos += take
            self.offset += take
            size -= take
        return True


def _text(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")


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
    reader = _Reader(read_chunk)
    global_pax: dict[str, bytes] = {}
    local_pax: list[tuple[str, bytes]] = []
    long_name: str | None = None
    long_link: str | None = None
    holes = 0
    while True:
        offset = reader.offset
        header = reader.read(BLOCK)
        if header is None:
            if reader.pending():
                raise LayerFormatError(
                    f"tar stream ends inside a header at offset {offset}"
                )
            if local_pax or long_name or long_link:
                raise LayerFormatError("tar stream ends after an extended header")
            return  # no end-of-archive blocks; tolerated, as GNU tar does
        if header == _ZERO_BLOCK:
            reader.consume(1 << 62, None)
            return
        stored = _number(header[148:156], "checksum")
        computed = sum(header) - sum(header[148:156]) + 8 * 32
        if stored != computed:
            signed = sum(b - 256 if b > 127 else b for b in header)
            signed -= sum(b - 256 if b > 127 else b for b in header[148:156])
            if stored != signed + 8 * 32:
                raise LayerFormatError(
                    f"bad tar header checksum at offset {offset} "
                    "(not a tar stream, or corrupt)"
                )
        typeflag = chr(header[156])
        try:
            size = _number(header[124:136], "size")
        except LayerdiffError as exc:
            raise exc.located(entry=long_name or _text(header[0:100]))
        padded = (size + BLOCK - 1) // BLOCK * BLOCK
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
        name = _text(header[0:100])
        if header[257:262] == b"ustar":
            prefix = _text(header[345:500]) if header[263:265] == b"00" else ""
            if prefix:
                name = prefix + "/" + name
        pax = dict(global_pax)
        pax.update(local_pax)
        kind = _TYPES.get(typeflag)
        if kind is None:
            raise LayerFormatError(
                f"unsupported tar entry type {typeflag!r} at offset {offset}",
                entry=long_name or pax_text(pax, "path") or name,
            )
        entry_name = long_name or pax_text(pax, "path") or name
        try:
            member = TarMember(
                name=long_name or name,
                typeflag=kind,
                mode=_number(header[100:108], "mode") & 0o7777,
                uid=_number(header[108:116], "uid"),
                gid=_number(header[116:124], "gid"),
                size=size,
                mtime=_number(header[136:148], "mtime"),
                linkname=long_link or _text(header[157:257]),
                uname=_text(header[265:297]),
                gname=_text(header[297:329]),
                devmajor=_number(header[329:337], "devmajor") if kind in "34" else 0,
                devminor=_number(header[337:345], "devminor") if kind in "34" else 0,
                xattrs=None,
                sha256=None,
                offset=offset,
            )
            if pax:
                _apply_pax(member, pax, local_pax)
            sparse = None
            if typeflag == "S":
                sparse = _gnu_sparse_map(header, reader, member)
            elif (
                "GNU.sparse.major" in pax
                or "GNU.sparse.map" in pax
                or any(key == "GNU.sparse.offset" for key, _ in local_pax)
            ):
                sparse = _pax_sparse_map(pax, local_pax, reader, member)
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
            local_pax = []
            long_name = long_link = None
            if kind == "0":
                stored_size = member.size if sparse is None else sparse[0]
                if hash_content:
                    digest = hashlib.sha256()
                    if sparse is None:
                        ok = reader.consume(stored_size, digest.update)
                    else:
                        ok = _hash_sparse(reader, sparse[1], member.size, digest)
                    member.sha256 = digest.hexdigest()
                else:
                    ok = reader.consume(stored_size, None)
                ok = ok and reader.consume((-stored_size) % BLOCK, None)
            else:
                ok = reader.consume(padded, None)
                member.size = 0 if kind != "1" else member.size
            if not ok:
                raise LayerFormatError(
                    "tar stream is truncated inside the content of this entry",
                    entry=member.name,
                )
        except LayerdiffError as exc:
            raise exc.located(entry=entry_name)
        yield member


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
