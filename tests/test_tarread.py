"""The streaming tar reader against Python's tarfile and GNU tar.

Archives are written by tarfile (ustar, GNU, PAX) and, where GNU tar is
installed, by GNU tar itself (long names, sparse files in every format).
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile

import pytest

from layerdiff.errors import LayerFormatError
from layerdiff.tarread import read_tar

GNU_TAR = shutil.which("tar")


def _is_gnu_tar() -> bool:
    if GNU_TAR is None:
        return False
    done = subprocess.run(
        [GNU_TAR, "--version"], capture_output=True, text=True, check=False
    )
    return "GNU tar" in done.stdout


needs_gnu_tar = pytest.mark.skipif(not _is_gnu_tar(), reason="GNU tar not installed")


def _members(data: bytes):
    chunks = iter([data[i : i + 1000] for i in range(0, len(data), 1000)])
    return list(read_tar(lambda: next(chunks, b"")))


def _tarfile_view(data: bytes) -> list[tuple]:
    """Name, type, size, uid, gid, mode, link and sha256, as tarfile reads."""
    result = []
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for info in tar:
            digest = None
            if info.isreg():
                digest = hashlib.sha256(tar.extractfile(info).read()).hexdigest()
            kind = {tarfile.AREGTYPE: "0", tarfile.CONTTYPE: "0"}.get(
                info.type, info.type.decode()
            )
            if info.issparse():
                kind = "0"
            size = info.size if kind in "01" else 0
            result.append((info.name, kind, size, info.uid, info.gid, info.mode,
                           info.linkname, digest))  # fmt: skip
    return result


def _our_view(data: bytes) -> list[tuple]:
    return [
        (
            m.name.rstrip("/"),
            m.typeflag,
            m.size,
            m.uid,
            m.gid,
            m.mode,
            m.linkname,
            m.sha256,
        )
        for m in _members(data)
    ]


def _write(fmt, members, **options) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt, **options) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def _file(name, data=b"", **fields):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 1_700_000_000
    for key, value in fields.items():
        setattr(info, key, value)
    return info, data


LONG_DIR = "/".join(["directory-with-a-long-name"] * 5)  # 134 characters


def test_ustar_prefix_field_joins_the_name():
    data = _write(tarfile.USTAR_FORMAT, [_file(f"{LONG_DIR}/file.txt", b"abc")])

    (member,) = _members(data)

    assert data[345:350] == b"direc"  # the prefix field is in use
    assert member.name == f"{LONG_DIR}/file.txt"
    assert _our_view(data) == _tarfile_view(data)


def test_gnu_long_names_and_long_link_targets():
    target = LONG_DIR + "/target"
    members = [
        _file(f"{LONG_DIR}/{'n' * 120}", b"data"),
        _file("link", type=tarfile.SYMTYPE, linkname=target),
        _file("hard", type=tarfile.LNKTYPE, linkname=f"{LONG_DIR}/{'n' * 120}"),
    ]
    data = _write(tarfile.GNU_FORMAT, members)

    ours = _members(data)

    assert b"././@LongLink" in data
    assert [m.name for m in ours] == [members[0][0].name, "link", "hard"]
    assert ours[1].linkname == target
    assert _our_view(data) == _tarfile_view(data)


def test_pax_records_carry_path_owner_size_and_xattrs():
    info, content = _file("é/" + "p" * 150, b"hello", uid=5, gid=6)
    info.pax_headers = {
        "SCHILY.xattr.user.comment": "hi",
        "SCHILY.xattr.security.capability": "\x01\x00\x00\x02",
        "uid": "3000000",
        "mtime": "1700000000.123456789",
    }
    data = _write(tarfile.PAX_FORMAT, [(info, content)])

    (member,) = _members(data)

    assert member.name == "é/" + "p" * 150
    assert member.uid == 3000000 and member.mtime == 1700000000
    assert member.xattrs == {
        "user.comment": b"hi",
        "security.capability": b"\x01\x00\x00\x02",
    }
    assert _our_view(data) == _tarfile_view(data)


def test_pax_global_header_applies_to_later_members_and_is_not_one():
    members = [_file("a", b"1"), _file("b", b"22")]
    data = _write(tarfile.PAX_FORMAT, members, pax_headers={"gid": "4242"})

    ours = _members(data)

    assert [m.name for m in ours] == ["a", "b"]
    assert [m.gid for m in ours] == [4242, 4242]
    assert _our_view(data) == _tarfile_view(data)


def test_base_256_numbers_for_owner_ids_and_mtime():
    info, content = _file("big", b"x", uid=9_000_000, gid=8_000_000)
    info.mtime = 2**34  # past the 11 octal digits of a ustar mtime
    data = _write(tarfile.GNU_FORMAT, [(info, content)])

    (member,) = _members(data)

    assert data[108] & 0x80 and data[136] & 0x80  # base-256 in use
    assert (member.uid, member.gid, member.mtime) == (9_000_000, 8_000_000, 2**34)
    assert _our_view(data) == _tarfile_view(data)


def test_every_entry_type_matches_tarfile():
    members = [
        _file("d", type=tarfile.DIRTYPE, mode=0o755),
        _file("d/f", b"content", mode=0o640),
        _file("d/s", type=tarfile.SYMTYPE, linkname="f"),
        _file("d/h", type=tarfile.LNKTYPE, linkname="d/f"),
        _file("d/c", type=tarfile.CHRTYPE, devmajor=1, devminor=3),
        _file("d/b", type=tarfile.BLKTYPE, devmajor=8, devminor=1),
        _file("d/p", type=tarfile.FIFOTYPE),
    ]
    data = _write(tarfile.PAX_FORMAT, members)

    ours = _members(data)

    assert [(m.typeflag, m.devmajor, m.devminor) for m in ours] == [
        ("5", 0, 0), ("0", 0, 0), ("2", 0, 0), ("1", 0, 0),
        ("3", 1, 3), ("4", 8, 1), ("6", 0, 0),
    ]  # fmt: skip
    assert _our_view(data) == _tarfile_view(data)


def test_a_bad_checksum_is_a_layer_format_error():
    data = bytearray(_write(tarfile.USTAR_FORMAT, [_file("a", b"1")]))
    data[0] ^= 0xFF

    with pytest.raises(LayerFormatError, match="checksum"):
        _members(bytes(data))


def test_a_stream_cut_inside_content_is_a_layer_format_error():
    data = _write(tarfile.USTAR_FORMAT, [_file("a", b"x" * 2000)])

    with pytest.raises(LayerFormatError, match="truncated"):
        _members(data[:1024])


def _with_size_field(block: bytes, field: bytes) -> bytes:
    """Return a header block with its size field replaced, checksum redone."""
    block = bytearray(block)
    block[124:136] = field
    block[148:156] = b" " * 8
    block[148:156] = f"{sum(block):06o}".encode() + b"\x00 "
    return bytes(block)


@pytest.mark.parametrize("typeflag", [tarfile.REGTYPE, tarfile.DIRTYPE, b"x"])
def test_a_negative_octal_size_is_refused_not_read_backwards(typeflag):
    info, _ = _file("a", type=typeflag)
    block = _with_size_field(info.tobuf(tarfile.USTAR_FORMAT), b"-0000001000\x00")
    data = block + _write(tarfile.USTAR_FORMAT, [_file("b", b"1")])

    with pytest.raises(LayerFormatError, match="negative size") as caught:
        _members(data)
    assert caught.value.entry in ("a", "a/")


def _sparse_source(tmp_path):
    path = tmp_path / "src" / "sparse.img"
    path.parent.mkdir()
    with open(path, "wb") as handle:
        handle.truncate(3 * 1024 * 1024 + 100)
        for offset, text in ((0, b"head"), (1 << 20, b"middle" * 1000),
                             (3 * 1024 * 1024, b"tail")):  # fmt: skip
            handle.seek(offset)
            handle.write(text)
    return path


def _gnu_listing(archive) -> list[tuple[str, int]]:
    out = subprocess.run(
        [GNU_TAR, "-tvf", str(archive)], capture_output=True, text=True, check=True
    ).stdout
    return [(line.split()[5], int(line.split()[2])) for line in out.splitlines()]


@needs_gnu_tar
@pytest.mark.parametrize(
    "options",
    [
        ["--format=gnu"],
        ["--format=pax", "--sparse-version=0.0"],
        ["--format=pax", "--sparse-version=0.1"],
        ["--format=pax", "--sparse-version=1.0"],
    ],
    ids=["gnu-S", "pax-0.0", "pax-0.1", "pax-1.0"],
)
def test_gnu_sparse_files_hash_like_the_file_they_came_from(tmp_path, options):
    source = _sparse_source(tmp_path)
    archive = tmp_path / "sparse.tar"
    subprocess.run(
        [GNU_TAR, "--sparse", *options, "-cf", str(archive), "-C",
         str(source.parent), "sparse.img", "--owner=0", "--group=0"],
        check=True,
    )  # fmt: skip
    data = archive.read_bytes()

    ours = _members(data)

    expected = hashlib.sha256(source.read_bytes()).hexdigest()
    assert [(m.name, m.size, m.sha256) for m in ours] == [
        ("sparse.img", source.stat().st_size, expected)
    ]
    assert len(data) < source.stat().st_size  # the holes were not stored
    assert _gnu_listing(archive) == [("sparse.img", source.stat().st_size)]
    assert _our_view(data) == _tarfile_view(data)


@needs_gnu_tar
def test_gnu_tar_long_names_list_the_same_as_gnu_tar(tmp_path):
    root = tmp_path / "tree"
    deep = root / LONG_DIR / ("f" * 110)
    deep.parent.mkdir(parents=True)
    deep.write_bytes(b"deep")
    os.symlink("../" * 2 + "x" * 120, root / "sym")
    archive = tmp_path / "gnu.tar"
    subprocess.run(
        [GNU_TAR, "--format=gnu", "-cf", str(archive), "-C", str(root), "."],
        check=True,
    )

    ours = _members(archive.read_bytes())

    listed = [name.rstrip("/") for name, _ in _gnu_listing(archive)]
    assert [m.name.rstrip("/") for m in ours] == listed
    assert f"./{LONG_DIR}/{'f' * 110}" in listed
    assert _our_view(archive.read_bytes()) == _tarfile_view(archive.read_bytes())
