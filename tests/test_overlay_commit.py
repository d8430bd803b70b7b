"""Changes and commits of real kernel overlay mounts, checked by reading back."""

from __future__ import annotations

import os
import shutil
import struct

import pytest
from builders import layer, write_docker_save
from conftest import run_cli
from overlays import (
    bind,
    hash_tree,
    overlay,
    require_overlay,
    tree_view,
    unpack,
    without,
)

from layerdiff import merged_view, open_image
from layerdiff.commit import view_differences

# cap_net_bind_service=ep, as setcap writes it (VFS_CAP_REVISION_2).
CAPABILITY = struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0)


def base_layer():
    return (
        layer()
        .dir("etc")
        .dir("etc/app")
        .file("etc/app/conf", b"v1\n")
        .file("etc/app/other", b"other\n")
        .symlink("etc/app/link", "conf")
        .dir("opt")
        .dir("opt/keep")
        .file("opt/keep/a", b"aaaa")
        .dir("opt/gone")
        .file("opt/gone/x", b"x" * 100)
        .dir("opt/gone/y")
        .file("opt/gone/y/z", b"z")
        .dir("opt/replace")
        .file("opt/replace/old1", b"1")
        .file("opt/replace/old2", b"2")
        .dir("srv")
        .dir("srv/dir-to-file")
        .file("srv/dir-to-file/inner", b"inner")
        .dir("usr")
        .dir("usr/bin")
        .file("usr/bin/tool", b"#!/bin/sh\n", mode=0o755)
        .hardlink("usr/bin/tool-link", "usr/bin/tool")
    )


@pytest.fixture
def volume(tmp_path):
    """An empty directory to mount into the container as a volume."""
    path = tmp_path / "volume"
    path.mkdir()
    return path


@pytest.fixture
def mounted(tmp_path):
    """A base image, its unpacked rootfs and an overlay mounted on it."""
    require_overlay()
    data = base_layer().tar_bytes()
    image = write_docker_save(tmp_path / "base.tar", [data])
    lower = tmp_path / "lower"
    unpack(data, lower)
    with overlay(lower, tmp_path / "ovl") as (upper, merged):
        yield image, upper, merged


def make_changes(merged, volume_source):
    (merged / "etc/app/new.txt").write_bytes(b"new\n")
    (merged / "etc/app/conf").write_bytes(b"v2\n")
    os.unlink(merged / "etc/app/other")
    shutil.rmtree(merged / "opt/gone")
    shutil.rmtree(merged / "opt/replace")
    os.mkdir(merged / "opt/replace")
    (merged / "opt/replace/new").write_bytes(b"fresh")
    shutil.rmtree(merged / "srv/dir-to-file")
    (merged / "srv/dir-to-file").write_bytes(b"now a file")
    os.link(merged / "etc/app/new.txt", merged / "etc/app/new-link")
    os.link(merged / "opt/keep/a", merged / "opt/keep/a2")
    os.chmod(merged / "opt/keep/a", 0o600)
    os.setxattr(merged / "opt/keep/a", "user.origin", b"test")
    os.setxattr(merged / "usr/bin/tool", "security.capability", CAPABILITY)
    os.mkdir(merged / "data")
    return bind(volume_source, merged / "data")


EXPECTED = {
    ("etc", "C"),
    ("etc/app", "C"),
    ("etc/app/conf", "C"),
    ("etc/app/new.txt", "A"),
    ("etc/app/new-link", "A"),
    ("etc/app/other", "D"),
    ("opt", "C"),
    ("opt/gone", "D"),
    ("opt/keep", "C"),
    ("opt/keep/a", "C"),
    ("opt/keep/a2", "A"),
    ("opt/replace", "C"),
    ("opt/replace/new", "A"),
    ("opt/replace/old1", "D"),
    ("opt/replace/old2", "D"),
    ("srv", "C"),
    ("srv/dir-to-file", "C"),
    ("usr", "C"),
    ("usr/bin", "C"),
    ("usr/bin/tool", "C"),
    ("data", "A"),
    ("data/written.txt", "A"),
}


def test_changes_of_a_real_overlay_name_every_change_and_what_is_lost(
    mounted, tmp_path, volume
):
    image, upper, merged = mounted

    with make_changes(merged, volume):
        (merged / "data/written.txt").write_bytes(b"into the volume")
        result = run_cli(
            "changes", upper, "--base", image, "--volume", f"{volume}:/data", "--json"
        )

    assert result.exit_code == 0, result.stderr
    rows = {row["path"]: row for row in result.json}
    assert {(row["path"], row["kind"]) for row in result.json} == EXPECTED
    assert rows["etc/app/conf"]["change"] == "content"
    assert rows["srv/dir-to-file"]["change"] == "type"
    assert rows["opt/replace"]["change"] == "opaque"
    assert rows["data"]["reason"] == "stub" and not rows["data"]["committed"]
    written = rows["data/written.txt"]
    assert (written["committed"], written["reason"], written["size"]) == (
        False,
        "volume",
        15,
    )
    assert all(r["committed"] for p, r in rows.items() if not p.startswith("data"))


def test_fail_on_uncommitted_exits_1_when_a_volume_holds_writes(
    mounted, tmp_path, volume
):
    image, upper, merged = mounted

    with make_changes(merged, volume):
        (merged / "data/written.txt").write_bytes(b"lost")
        result = run_cli(
            "changes", upper, "--base", image, "--volume", f"{volume}:/data",
            "--fail-on-uncommitted",
        )  # fmt: skip

    assert result.exit_code == 1
    assert "volume" in result.output


@pytest.mark.parametrize("fmt", ["docker", "oci"])
def test_committed_image_reads_back_as_the_mounted_merged_view(
    mounted, tmp_path, volume, fmt
):
    image, upper, merged = mounted
    out = tmp_path / f"new-{fmt}.tar"

    with make_changes(merged, volume):
        (merged / "data/written.txt").write_bytes(b"into the volume")
        before = hash_tree(upper)
        result = run_cli(
            "commit", upper, "--base", image, "-o", out, "--format", fmt,
            "--volume", f"{volume}:/data", "--verify", "--json", "-",
        )  # fmt: skip
        after = hash_tree(upper)
        live = without(tree_view(merged), ["data"])

    assert result.exit_code == 0, result.stderr
    assert before == after
    assert result.json["verified"] is True
    left_out = {(r["path"], r["reason"]) for r in result.json["left_out"]}
    assert left_out == {("data", "stub")}
    img = open_image(str(out))
    try:
        committed = merged_view(img)
    finally:
        img.close()
    assert view_differences(live, committed) == []
    tool = committed.get("usr/bin/tool").entry
    assert tool.xattrs == {"security.capability": CAPABILITY}
    assert committed.get("opt/keep/a2").inode == committed.get("opt/keep/a").inode


def test_committed_layer_is_an_oci_changeset(mounted, tmp_path, volume):
    import tarfile

    image, upper, merged = mounted
    blob = tmp_path / "layer.tar"

    with make_changes(merged, volume):
        result = run_cli(
            "commit", upper, "--base", image, "-o", tmp_path / "out.tar",
            "--layer-out", blob, "--compression", "none", "--volume", "/data",
        )  # fmt: skip

    assert result.exit_code == 0, result.stderr
    with tarfile.open(blob) as tar:
        members = {m.name.rstrip("/"): m for m in tar.getmembers()}
    assert "etc/app/.wh.other" in members
    assert "opt/.wh.gone" in members
    assert "opt/replace/.wh..wh..opq" in members
    assert not any(".wh..opq" == name.rsplit("/", 1)[-1] for name in members)
    assert members["opt/keep/a2"].islnk()
    assert members["opt/keep/a2"].linkname == "opt/keep/a"
    assert members["opt/keep/a"].mode == 0o600
    assert members["opt/keep/a"].pax_headers["SCHILY.xattr.user.origin"] == "test"
    assert not any(
        key.startswith("SCHILY.xattr.trusted.overlay")
        for m in members.values()
        for key in m.pax_headers
    )
    assert all(m.uname == "" and m.gname == "" for m in members.values())
    assert "data" not in members


def test_commit_is_byte_identical_twice_and_clamps_to_source_date_epoch(
    mounted, tmp_path, volume, monkeypatch
):
    import tarfile

    image, upper, merged = mounted
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1600000000")

    with make_changes(merged, volume):
        outputs = []
        for name in ("one", "two"):
            out = tmp_path / f"{name}.tar"
            result = run_cli(
                "commit", upper, "--base", image, "-o", out, "--format", "oci",
                "--layer-out", tmp_path / f"{name}.layer",
            )  # fmt: skip
            assert result.exit_code == 0, result.stderr
            outputs.append(out.read_bytes())

    assert outputs[0] == outputs[1]
    with tarfile.open(tmp_path / "one.layer") as tar:
        assert max(m.mtime for m in tar.getmembers()) <= 1600000000


def test_commit_reads_a_tar_of_the_upper_dir_like_the_dir(mounted, tmp_path, volume):
    import subprocess

    image, upper, merged = mounted
    upper_tar = tmp_path / "upper.tar"

    with make_changes(merged, volume):
        subprocess.run(
            ["tar", "--xattrs", "--xattrs-include=*", "-C", str(upper), "-cf",
             str(upper_tar), "."],
            check=True,
        )  # fmt: skip
        from_dir = run_cli("changes", upper, "--base", image, "--json")
    from_tar = run_cli("changes", upper_tar, "--base", image, "--json")

    assert from_tar.exit_code == 0, from_tar.stderr
    assert from_tar.json == from_dir.json


def test_merged_root_mode_reports_volume_writes_and_commits_the_rest(
    mounted, tmp_path, volume
):
    image, _upper, merged = mounted
    out = tmp_path / "merged.tar"

    with make_changes(merged, volume):
        (merged / "data/written.txt").write_bytes(b"into the volume")
        shown = run_cli(
            "changes", "--merged", merged, "--base", image, "--volume", "/data",
            "--json",
        )  # fmt: skip
        result = run_cli(
            "commit", "--merged", merged, "--base", image, "--volume", "/data",
            "-o", out, "--verify",
        )  # fmt: skip
        live = without(tree_view(merged), ["data"])

    assert shown.exit_code == 0, shown.stderr
    rows = {row["path"]: row for row in shown.json}
    assert rows["data/written.txt"]["reason"] == "volume"
    assert not rows["data/written.txt"]["committed"]
    assert rows["etc/app/other"]["kind"] == "D"
    assert rows["etc/app/conf"]["kind"] == "C"
    assert result.exit_code == 0, result.stderr
    img = open_image(str(out))
    try:
        assert view_differences(live, merged_view(img)) == []
    finally:
        img.close()


def test_lower_dirs_tell_add_from_modify_like_the_base_image(mounted, tmp_path, volume):
    image, upper, merged = mounted
    lower = tmp_path / "lower"

    with make_changes(merged, volume):
        with_base = run_cli("changes", upper, "--base", image, "--json")
        with_lower = run_cli("changes", upper, "--lower", lower, "--json")

    assert with_lower.exit_code == 0, with_lower.stderr
    assert with_lower.json == with_base.json


def test_inspect_json_names_the_upper_dir_lower_dirs_and_volumes(
    mounted, tmp_path, volume
):
    import json

    _image, upper, merged = mounted
    inspect = tmp_path / "inspect.json"
    inspect.write_text(
        json.dumps(
            [
                {
                    "GraphDriver": {
                        "Data": {
                            "UpperDir": str(upper),
                            "LowerDir": str(tmp_path / "lower"),
                        }
                    },
                    "Mounts": [
                        {
                            "Type": "volume",
                            "Source": str(volume),
                            "Destination": "/data",
                        }
                    ],
                }
            ]
        )
    )

    with make_changes(merged, volume):
        (merged / "data/written.txt").write_bytes(b"into the volume")
        result = run_cli("changes", "--inspect", inspect, "--json")

    assert result.exit_code == 0, result.stderr
    assert {(r["path"], r["kind"]) for r in result.json} == EXPECTED
    lost = {r["path"]: r["reason"] for r in result.json if not r["committed"]}
    assert lost == {"data": "stub", "data/written.txt": "volume"}


def test_merged_root_lists_tmpfs_writes_as_lost_and_keeps_the_base_below(
    mounted, tmp_path
):
    import json
    import subprocess

    image, _upper, merged = mounted
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "ociVersion": "1.0.2",
                "mounts": [{"destination": "/srv", "type": "tmpfs", "source": "tmpfs"}],
            }
        )
    )
    out = tmp_path / "out.tar"
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(merged / "srv")], check=True)
    try:
        (merged / "srv/scratch").write_bytes(b"temporary")
        shown = run_cli(
            "changes", "--merged", merged, "--base", image, "--inspect", config,
            "--json",
        )  # fmt: skip
        result = run_cli(
            "commit", "--merged", merged, "--base", image, "--inspect", config,
            "-o", out, "--verify",
        )  # fmt: skip
    finally:
        subprocess.run(["umount", str(merged / "srv")], check=True)
    live = tree_view(merged)

    rows = {row["path"]: row for row in shown.json}
    assert rows["srv/scratch"]["reason"] == "virtual-fs"
    assert rows["srv/dir-to-file"]["kind"] == "D"
    assert not any(r["committed"] for p, r in rows.items() if p.startswith("srv"))
    assert result.exit_code == 0, result.stderr
    img = open_image(str(out))
    try:
        assert view_differences(live, merged_view(img)) == []
    finally:
        img.close()


def test_commit_from_proc_pid_root_of_a_pivoted_process_writes_outside_it(
    mounted, tmp_path
):
    from overlays import process_rooted_at

    image, _upper, merged = mounted
    out = tmp_path / "from-proc.tar"
    (merged / "etc/app/conf").write_bytes(b"v3\n")

    with process_rooted_at(merged) as pid:
        root = f"/proc/{pid}/root"
        assert os.path.realpath(root) == "/"
        result = run_cli(
            "commit", "--merged", root, "--base", image, "-o", out, "--verify",
            "--json", "-",
        )  # fmt: skip
        inside = run_cli(
            "commit", "--merged", root, "--base", image, "-o", f"{root}/out.tar"
        )  # fmt: skip

    assert result.exit_code == 0, result.stderr
    assert result.json["verified"] is True
    assert inside.exit_code == 2
    assert "would overwrite an input" in inside.stderr
    assert not (merged / "out.tar").exists()


def test_outputs_inside_the_upper_or_merged_dir_are_refused(mounted, tmp_path):
    image, upper, merged = mounted
    (merged / "etc/app/conf").write_bytes(b"v3\n")
    out = tmp_path / "out.tar"

    into_upper = run_cli("commit", upper, "--base", image, "-o", upper / "o.tar")
    json_in_upper = run_cli(
        "commit", upper, "--base", image, "-o", out, "--json", upper / "etc/c.json"
    )
    into_merged = run_cli(
        "commit", "--merged", merged, "--base", image, "-o", merged / "o.tar"
    )

    for result in (into_upper, json_in_upper, into_merged):
        assert result.exit_code == 2
        assert "would overwrite an input" in result.stderr
    assert not out.exists()
    assert sorted(p.name for p in (upper / "etc").iterdir()) == ["app"]


def test_merged_root_lists_parent_directories_and_runtime_files_lose_nothing(
    mounted, tmp_path
):
    image, _upper, merged = mounted
    hosts = tmp_path / "hosts"
    hosts.write_bytes(b"127.0.0.1 box\n")
    (merged / "etc/hosts").write_bytes(b"")

    with bind(hosts, merged / "etc/hosts"):
        (merged / "usr/bin/tool").write_bytes(b"#!/bin/sh\necho 2\n")
        result = run_cli(
            "changes", "--merged", merged, "--base", image, "--json",
            "--fail-on-uncommitted",
        )  # fmt: skip

    assert result.exit_code == 0, result.output
    rows = {row["path"]: row for row in result.json}
    assert (rows["usr"]["kind"], rows["usr/bin"]["kind"]) == ("C", "C")
    assert rows["etc"]["kind"] == "C"
    assert rows["etc/hosts"]["reason"] == "runtime-file"
    assert not rows["etc/hosts"]["committed"]
