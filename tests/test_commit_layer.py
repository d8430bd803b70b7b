"""The bytes of a committed layer, written without compression, and what
reading the upper dir quickly must not change."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from layerdiff import commit, mounts
from layerdiff.changes import _covering, _under, read_container
from layerdiff.commit import _layer_members, _tarinfo, write_layer
from layerdiff.errors import LayerdiffError, OutputError

MTIME = 1_700_000_000
MiB = 1 << 20


def _tree(root):
    """An upper dir with files around every block and buffer boundary."""
    up = root / "upper"
    (up / "etc/app-conf").mkdir(parents=True)
    (up / "etc/app.d").mkdir()
    (up / "var/lib").mkdir(parents=True)
    sizes = [0, 1, 511, 512, 513, 10_737, MiB - 1, MiB, MiB + 1, 4 * MiB + 3]
    for index, size in enumerate(sizes):
        (up / f"var/lib/f{index:02d}").write_bytes(os.urandom(size))
    (up / "var/lib/big").write_bytes(os.urandom(9 * MiB + 100))
    (up / "etc/app-conf/x").write_bytes(b"dash sorts before the slash")
    (up / "etc/app.d/y").write_bytes(b"so does the dot")
    (up / "etc/app").write_bytes(b"a file next to them")
    (up / ("l" * 150)).write_bytes(b"a name longer than a ustar header holds")
    (up / "caf\u00e9").write_bytes(b"a name that is not ascii")
    (up / "link").symlink_to("etc/app")
    os.link(up / "etc/app", up / "var/lib/hard")
    for path in [up, *up.rglob("*")]:
        os.utime(path, (MTIME, MTIME), follow_symlinks=False)
    return up


def _tarfile_layer(plan) -> bytes:
    """The layer as tarfile itself writes it, member by member."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, entry, mtime in _layer_members(plan, None):
            info = _tarinfo(name, entry, mtime)
            if info.isreg() and info.size:
                with plan.upper.open(entry.path) as data:
                    tar.addfile(info, data)
            else:
                tar.addfile(info)
    return out.getvalue()


def test_an_uncompressed_layer_is_the_tar_tarfile_writes(tmp_path):
    container = read_container(str(_tree(tmp_path)))
    out = io.BytesIO()

    result = write_layer(container.plan, out, compression="none")

    expected = _tarfile_layer(container.plan)
    assert out.getvalue() == expected
    digest = "sha256:" + hashlib.sha256(expected).hexdigest()
    assert result.digest == result.diff_id == digest
    assert result.size == result.uncompressed_size == len(expected)


def test_a_gzip_layer_holds_the_same_tar_as_an_uncompressed_one(tmp_path):
    container = read_container(str(_tree(tmp_path)))
    plain, packed = io.BytesIO(), io.BytesIO()

    none = write_layer(container.plan, plain, compression="none")
    gz = write_layer(container.plan, packed, compression="gzip")

    assert gzip.decompress(packed.getvalue()) == plain.getvalue()
    assert gz.diff_id == none.diff_id


def test_writing_an_uncompressed_layer_opens_each_file_once(tmp_path, monkeypatch):
    up = _tree(tmp_path)
    container = read_container(str(up))
    opened: list[str] = []
    real = os.open

    def counting(path, *args, **kwargs):
        opened.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", counting)
    write_layer(container.plan, io.BytesIO(), compression="none")
    monkeypatch.undo()

    files = [str(p) for p in up.rglob("*") if p.is_file() and not p.is_symlink()]
    files.remove(str(up / "var/lib/hard"))  # a hard link: its data is etc/app's
    assert sorted(opened) == sorted(files)


@pytest.mark.parametrize("change", ["grow", "shrink", "rewrite"])
def test_a_file_changed_after_listing_is_refused(tmp_path, change):
    up = tmp_path / "upper"
    up.mkdir()
    target = up / "log"
    target.write_bytes(b"0123456789")
    listed = os.stat(target)
    container = read_container(str(up))
    if change == "grow":
        target.write_bytes(b"0123456789+")
    elif change == "shrink":
        target.write_bytes(b"012345678")
    else:
        target.write_bytes(b"abcdefghij")
    os.utime(target, ns=(listed.st_atime_ns, listed.st_mtime_ns))

    with pytest.raises(LayerdiffError, match="changed while it was being read"):
        write_layer(container.plan, io.BytesIO(), compression="none")


class _FullDisk(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        raise OSError(28, "No space left on device")


def test_a_failed_write_of_the_layer_is_an_output_error_not_a_read_error(tmp_path):
    container = read_container(str(_tree(tmp_path)))

    with pytest.raises(OutputError, match="cannot write the layer: No space left"):
        write_layer(container.plan, _FullDisk(), compression="none")


def test_a_read_error_stops_the_writing_threads(tmp_path, monkeypatch):
    container = read_container(str(_tree(tmp_path)))
    monkeypatch.setattr(commit, "_SPOOL", 4096)  # many hand-offs before the error
    gone = tmp_path / "upper/var/lib/f09"
    gone.unlink()
    before = {t.ident for t in threading.enumerate()}

    with pytest.raises(LayerdiffError, match="cannot read"):
        write_layer(container.plan, io.BytesIO(), compression="none")

    after = {t.ident for t in threading.enumerate()}
    assert after <= before


_NAME = st.text(alphabet="ab-./\u00e9 ", min_size=1, max_size=12).map(
    lambda s: "/".join(p for p in s.split("/") if p)
)


@given(st.lists(_NAME.filter(bool), min_size=2, max_size=8, unique=True))
def test_layer_members_are_in_component_order(names):
    ordered = sorted(names, key=lambda n: n.replace("/", "\0"))

    assert ordered == sorted(names, key=lambda n: n.split("/"))


_DEST = st.sampled_from(["", "a", "a/b", "a/b/c", "ab", "b", "a/bc"])


@given(
    st.lists(_DEST, max_size=5),
    st.sampled_from(["", "a", "a/b", "a/b/c", "a/b/c/d", "ab/c", "a/bc", "b/a", "c"]),
)
def test_covering_per_directory_finds_the_mount_the_table_finds(destinations, path):
    table = mounts.MountTable()
    for index, destination in enumerate(destinations):
        table.mounts.append(mounts.Mount(destination, f"reason-{index}"))

    assert _covering(table)(path) is table.covering(path)


@given(
    st.sets(_DEST),
    st.sampled_from(["", "a", "a/b", "a/b/c", "a/b/c/d", "ab/c", "a/bc", "b/a"]),
)
def test_under_tells_a_path_below_one_of_the_roots(roots, path):
    expected = path != "" and (
        "" in roots or any(path.startswith(root + "/") for root in roots if root)
    )

    assert _under(roots)(path) is expected
