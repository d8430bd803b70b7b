"""How often a commit reads each file, and the tar headers it writes itself."""

from __future__ import annotations

import io
import os
import tarfile

import pytest
from builders import layer, write_docker_save
from hypothesis import given
from hypothesis import strategies as st

from layerdiff import upperdir
from layerdiff.changes import read_container
from layerdiff.commit import _tarinfo, _ustar_header, write_layer
from layerdiff.errors import LayerdiffError
from layerdiff.model import Entry, EntryType


@pytest.fixture
def opens(monkeypatch):
    """Count the opens of each upper dir file, by path."""
    counted: dict[str, int] = {}
    real = upperdir._file_opener

    def counting(path):
        opener = real(path)

        def opened():
            counted[path] = counted.get(path, 0) + 1
            return opener()

        return opened

    monkeypatch.setattr(upperdir, "_file_opener", counting)
    return counted


def _upper(root):
    up = root / "upper"
    (up / "etc").mkdir(parents=True)
    (up / "etc/a").write_bytes(b"changed")  # same size as the base's
    (up / "etc/b").write_bytes(b"longer than the base")
    (up / "new").write_bytes(b"n" * 100_000)
    return up


def _base(root):
    lower = layer().dir("etc").file("etc/a", b"1234567").file("etc/b", b"2")
    return write_docker_save(root / "base.tar", [lower.tar_bytes()])


def test_changes_without_a_base_reads_no_file(tmp_path, opens):
    container = read_container(str(_upper(tmp_path)))

    assert opens == {}
    assert {c.path: c.kind for c in container.plan.changes}["etc/a"] == "A"


def test_changes_reads_only_files_whose_size_matches_the_base(tmp_path, opens):
    up = _upper(tmp_path)
    container = read_container(str(up), base=str(_base(tmp_path)))
    try:
        changes = {c.path: c.change for c in container.plan.changes}
    finally:
        container.close()

    assert opens == {str(up / "etc/a"): 1}
    assert changes["etc/a"] == changes["etc/b"] == "content"


def test_writing_the_layer_reads_each_file_once(tmp_path, opens):
    up = _upper(tmp_path)
    container = read_container(str(up), base=str(_base(tmp_path)))
    container.close()
    opens.clear()

    out = io.BytesIO()
    write_layer(container.plan, out, compression="none")

    assert opens == {str(up / name): 1 for name in ("etc/a", "etc/b", "new")}
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        assert tar.extractfile("new").read() == b"n" * 100_000


def test_a_file_rewritten_with_its_old_size_and_mtime_is_still_caught(tmp_path):
    up = tmp_path / "upper"
    up.mkdir()
    target = up / "log"
    target.write_bytes(b"0123456789")
    listed = os.stat(target)
    container = read_container(str(up))
    target.write_bytes(b"abcdefghij")
    os.utime(target, ns=(listed.st_atime_ns, listed.st_mtime_ns))

    with pytest.raises(LayerdiffError, match="changed while it was being read"):
        write_layer(container.plan, io.BytesIO(), compression="gzip")


def test_keep_hashes_leaves_each_files_sha256_on_its_entry(tmp_path):
    up = _upper(tmp_path)
    container = read_container(str(up))

    write_layer(container.plan, io.BytesIO(), compression="none", keep_hashes=True)

    entry = next(e for e in container.plan.changeset.entries if e.path == "new")
    assert entry.sha256 == container.plan.upper.sha256(entry)
    assert entry.sha256 is not None


_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\0"), max_size=120
)
_NUMBER = st.one_of(
    st.integers(0, 10), st.integers(8**7 - 2, 8**7 + 1), st.integers(0, 2**40)
)


@given(
    name=_TEXT.filter(bool),
    kind=st.sampled_from(list(EntryType) + [None]),
    mode=st.integers(0, 0o7777),
    uid=_NUMBER,
    gid=_NUMBER,
    size=_NUMBER,
    mtime=_NUMBER,
    link=_TEXT,
    xattrs=st.sampled_from([None, {"user.a": b"1"}]),
)
def test_headers_written_directly_equal_tarfiles_pax_headers(
    name, kind, mode, uid, gid, size, mtime, link, xattrs
):
    entry = None
    if kind is not None:
        entry = Entry(
            path=name,
            type=kind,
            mode=mode,
            uid=uid,
            gid=gid,
            size=size if kind is EntryType.FILE else 0,
            linkname=link if kind in (EntryType.SYMLINK, EntryType.HARDLINK) else "",
            xattrs=xattrs,
            devmajor=3,
            devminor=4,
        )
    expected = _tarinfo(name, entry, mtime).tobuf(
        tarfile.PAX_FORMAT, "utf-8", "surrogateescape"
    )

    ours = _ustar_header(name, entry, mtime)

    assert ours is None or ours == expected


@pytest.mark.parametrize(
    "entry",
    [
        None,
        Entry("usr/bin/tool", EntryType.FILE, 0o4755, 1000, 1000, 12345, 0),
        Entry("usr/lib", EntryType.DIR, 0o755),
        Entry("usr/lib/libz.so", EntryType.SYMLINK, 0o777, linkname="libz.so.1"),
        Entry("usr/bin/ln", EntryType.HARDLINK, 0o755, linkname="usr/bin/tool"),
        Entry("run/pipe", EntryType.FIFO, 0o600),
    ],
)
def test_ordinary_members_get_a_direct_header_equal_to_tarfiles(entry):
    name = entry.path if entry is not None else "etc/.wh.gone"
    expected = _tarinfo(name, entry, 1_700_000_000).tobuf(
        tarfile.PAX_FORMAT, "utf-8", "surrogateescape"
    )

    assert _ustar_header(name, entry, 1_700_000_000) == expected
