"""Hostile upper dirs: odd file types, odd names, files changing under us."""

from __future__ import annotations

import io
import json
import os
import socket
import stat
import tempfile

import pytest
from builders import layer, write_docker_save
from hostile import assert_clean_error, invoke, tree_digest

from layerdiff import upperdir
from layerdiff.changes import read_container
from layerdiff.commit import write_layer
from layerdiff.errors import LayerdiffError


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    return scratch


@pytest.fixture
def base(tmp_path):
    lower = layer().dir("etc").file("etc/a", b"1").file("etc/b", b"2")
    return write_docker_save(tmp_path / "base.tar", [lower.tar_bytes()])


def _odd_upper(root):
    """An upper dir holding every kind of file a container can leave."""
    up = root / "upper"
    (up / "etc").mkdir(parents=True)
    (up / "etc" / "new").write_bytes(b"x")
    os.mknod(up / "etc" / "b", stat.S_IFCHR | 0o600, os.makedev(0, 0))
    os.mknod(up / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mkfifo(up / "fifo")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(up / "sock"))
    os.symlink("/nowhere/../../x", up / "dangling")
    (up / os.fsdecode(b"caf\xe9")).write_bytes(b"y")
    (up / "etc" / "\x1b[2J").write_bytes(b"z")
    return up


@pytest.mark.parametrize("as_json", [False, True])
def test_changes_of_an_odd_upper_dir_print_cleanly(tmp_path, base, as_json):
    up = _odd_upper(tmp_path)
    before = tree_digest(tmp_path)

    outcome = invoke(["changes", up, "--base", base] + (["--json"] if as_json else []))

    assert outcome.exit_code == 0, outcome
    assert "\x1b" not in outcome.stdout
    if as_json:
        json.loads(outcome.stdout)
    assert tree_digest(tmp_path) == before


def test_commit_of_an_odd_upper_dir_reads_back(tmp_path, base, private_tmp):
    up = _odd_upper(tmp_path)
    out = tmp_path / "new.tar"

    outcome = invoke(["commit", up, "--base", base, "-o", out, "--json",
                      tmp_path / "commit.json"])  # fmt: skip
    listing = invoke(["files", out, "--json"])

    assert outcome.exit_code == 0, outcome
    assert json.loads((tmp_path / "commit.json").read_text())
    paths = {item["path"] for item in json.loads(listing.stdout)}
    assert {"null", "fifo", "dangling", "caf\\xe9"} <= paths
    assert "sock" not in paths
    assert list(private_tmp.iterdir()) == []


@pytest.mark.parametrize("name", [".wh..", ".wh...", ".wh."])
def test_upper_dir_whiteout_of_dot_names_is_refused(tmp_path, base, name):
    up = tmp_path / "upper"
    up.mkdir()
    (up / name).write_bytes(b"")

    outcome = invoke(["changes", up, "--base", base])

    assert_clean_error(outcome, "upper", name)


def test_commit_onto_its_base_is_refused_and_the_base_kept(tmp_path, base):
    up = _odd_upper(tmp_path)
    before = tree_digest(tmp_path)

    outcome = invoke(["commit", up, "--base", base, "-o", base])

    assert_clean_error(outcome, "base.tar")
    assert tree_digest(tmp_path) == before


@pytest.mark.parametrize("change", ["grow", "shrink", "rewrite"])
def test_file_changing_between_scan_and_commit_is_an_error(tmp_path, change):
    up = tmp_path / "upper"
    up.mkdir()
    target = up / "log"
    target.write_bytes(b"0123456789")
    container = read_container(str(up))
    new = {"grow": b"0123456789more", "shrink": b"0123", "rewrite": b"abcdefghij"}
    target.write_bytes(new[change])

    with pytest.raises(LayerdiffError) as caught:
        write_layer(container.plan, io.BytesIO(), compression="none")

    assert caught.value.entry == "log"
    assert str(up) in str(caught.value)


def test_file_removed_while_listing_is_left_out(tmp_path, monkeypatch):
    up = tmp_path / "upper"
    up.mkdir()
    (up / "stays").write_bytes(b"1")
    (up / "goes").write_bytes(b"2")
    real_lstat = os.lstat

    def vanishing(path, *args, **kwargs):
        if str(path).endswith("goes"):
            raise FileNotFoundError(2, "No such file or directory", str(path))
        return real_lstat(path, *args, **kwargs)

    monkeypatch.setattr(upperdir.os, "lstat", vanishing)
    read = upperdir.read_upperdir(str(up))

    assert [e.path for e in read.changeset.entries] == ["stays"]
