"""Upper dir forms: kernel, xattr whiteouts, fuse-overlayfs/AUFS, refusals."""

from __future__ import annotations

import json
import os

import pytest
from builders import layer, write_docker_save
from conftest import run_cli

from layerdiff.commit import apply_changes
from layerdiff.errors import UnsupportedOverlayError, UsageError
from layerdiff.mounts import MountTable, parse_mount, read_inspect
from layerdiff.upperdir import read_upperdir


def need_root():
    if os.geteuid() != 0:
        pytest.skip("needs root to make 0/0 devices and trusted.* xattrs")


@pytest.fixture
def base(tmp_path):
    data = (
        layer()
        .dir("etc")
        .file("etc/keep", b"k")
        .file("etc/gone", b"g")
        .dir("opt")
        .dir("opt/replaced")
        .file("opt/replaced/old", b"old")
    ).tar_bytes()
    return write_docker_save(tmp_path / "base.tar", [data])


def kinds(result):
    return {(row["path"], row["kind"]) for row in result.json}


def test_fuse_overlayfs_marks_on_a_new_directory_do_not_make_it_a_replacement(
    tmp_path, base
):
    need_root()
    upper = tmp_path / "upper"
    (upper / "opt/new").mkdir(parents=True)
    (upper / "opt/replaced").mkdir()
    (upper / "etc").mkdir()
    for directory in ("opt/new", "opt/replaced"):
        os.setxattr(upper / directory, "trusted.overlay.opaque", b"y")
        (upper / directory / ".wh..wh..opq").write_bytes(b"")
        os.mknod(upper / directory / ".wh..opq", 0o600 | 0o020000, os.makedev(0, 0))
    (upper / "opt/new/f").write_bytes(b"f")
    (upper / "etc/.wh.gone").write_bytes(b"")

    result = run_cli("changes", upper, "--base", base, "--json")

    assert result.exit_code == 0, result.stderr
    assert kinds(result) == {
        ("etc", "C"),
        ("etc/gone", "D"),
        ("opt", "C"),
        ("opt/new", "A"),
        ("opt/new/f", "A"),
        ("opt/replaced", "C"),
        ("opt/replaced/old", "D"),
    }


def test_xattr_whiteouts_and_user_opaque_read_like_kernel_devices(tmp_path, base):
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "opt/replaced").mkdir(parents=True)
    (upper / "etc/gone").write_bytes(b"")
    os.setxattr(upper / "etc/gone", "user.overlay.whiteout", b"")
    os.setxattr(upper / "opt/replaced", "user.overlay.opaque", b"y")

    upper_read = read_upperdir(str(upper))

    assert upper_read.changeset.whiteouts == ["etc/gone"]
    assert upper_read.changeset.opaque_dirs == ["opt/replaced"]
    assert all(not e.xattrs for e in upper_read.changeset.entries)


def test_whiteout_devices_sharing_an_inode_are_not_hard_links(tmp_path):
    need_root()
    upper = tmp_path / "upper"
    upper.mkdir()
    os.mknod(upper / "one", 0o000 | 0o020000, os.makedev(0, 0))
    os.link(upper / "one", upper / "two")

    changeset = read_upperdir(str(upper)).changeset

    assert changeset.whiteouts == ["one", "two"]
    assert changeset.entries == []


@pytest.mark.parametrize(
    "xattr, what", [("user.overlay.redirect", "redirect"), ("user.overlay.metacopy", "metacopy")]
)  # fmt: skip
def test_redirect_and_metacopy_are_refused_naming_the_path(tmp_path, xattr, what):
    upper = tmp_path / "upper"
    (upper / "moved").mkdir(parents=True)
    os.setxattr(upper / "moved", xattr, b"/old")

    with pytest.raises(UnsupportedOverlayError) as caught:
        read_upperdir(str(upper))

    assert what in str(caught.value) and "'/moved'" in str(caught.value)
    assert "--merged" in caught.value.hint
    result = run_cli("changes", upper)
    assert result.exit_code == 2


def test_without_a_base_only_copied_up_paths_are_changes(tmp_path):
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc/copied").write_bytes(b"c")
    os.setxattr(upper / "etc/copied", "user.overlay.origin", b"x")
    (upper / "etc/new").write_bytes(b"n")

    result = run_cli("changes", upper, "--json")
    table = run_cli("changes", upper)

    rows = {row["path"]: row for row in result.json}
    assert rows["etc/copied"]["kind"] == "C"
    assert rows["etc/new"]["kind"] == "A"
    assert rows["etc/new"]["certain"] is False
    assert "cannot be told apart" in table.output


def test_stubs_are_left_out_unless_kept(tmp_path, base):
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc/hosts").write_bytes(b"")
    (upper / "run/secrets").mkdir(parents=True)
    (upper / "etc/real").write_bytes(b"data")

    dropped = run_cli("commit", upper, "--base", base, "-o", tmp_path / "a.tar",
                      "--json", "-")  # fmt: skip
    kept = run_cli("commit", upper, "--base", base, "-o", tmp_path / "b.tar",
                   "--json", "-", "--keep-stubs")  # fmt: skip

    assert dropped.exit_code == 0, dropped.stderr
    left = {(r["path"], r["reason"]) for r in dropped.json["left_out"]}
    assert left == {("etc/hosts", "stub"), ("run/secrets", "stub")}
    assert kept.json["left_out"] == []
    listed = run_cli("files", tmp_path / "b.tar", "--json")
    assert "etc/hosts" in {f["path"] for f in listed.json}


def test_a_failed_commit_leaves_no_output(tmp_path, base):
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    out = tmp_path / "out.tar"

    result = run_cli("commit", upper, "--base", base, "-o", out, "-c", "BOGUS x")

    assert result.exit_code == 2
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_each_compression_reads_back_with_its_config_edits(tmp_path, base, compression):
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc/new").write_bytes(b"new")
    out = tmp_path / "out.tar"

    result = run_cli(
        "commit", upper, "--base", base, "-o", out, "--format", "oci",
        "--compression", compression, "--verify", "--json", "-",
        "-c", "CMD /app/run", "-c", "ENV A=1", "-c", "EXPOSE 80",
        "-c", "WORKDIR /app", "-m", "note", "-a", "me",
    )  # fmt: skip

    assert result.exit_code == 0, result.stderr
    assert result.json["layer"]["compression"] == compression
    inspected = run_cli("inspect", out, "--json")
    assert inspected.json["layers"][-1]["compression"] == compression
    assert inspected.json["layers"][-1]["created_by"] == "layerdiff commit"
    runtime = result.json["config"]["config"]
    assert runtime["Cmd"] == ["/bin/sh", "-c", "/app/run"]
    assert runtime["Env"] == ["A=1"]
    assert runtime["ExposedPorts"] == {"80/tcp": {}}
    assert result.json["history"] == {
        "author": "me",
        "comment": "note",
        "created": result.json["config"]["created"],
        "created_by": "layerdiff commit",
    }


def test_change_instructions_follow_docker_commit():
    runtime = apply_changes(
        {"Env": ["A=0", "B=1"]},
        [
            'ENTRYPOINT ["/bin/app", "--serve"]',
            "ENV A=2",
            'LABEL "name=my app" version=1',
            "USER nobody",
            'VOLUME ["/data"]',
        ],
    )

    assert runtime["Entrypoint"] == ["/bin/app", "--serve"]
    assert runtime["Env"] == ["B=1", "A=2"]
    assert runtime["Labels"] == {"name": "my app", "version": "1"}
    assert runtime["User"] == "nobody"
    assert runtime["Volumes"] == {"/data": {}}
    with pytest.raises(UsageError):
        apply_changes({}, ["RUN rm -rf /"])


def test_docker_inspect_json_gives_upper_lowers_and_mounts(tmp_path):
    data = [
        {
            "GraphDriver": {
                "Data": {"UpperDir": "/u", "LowerDir": "/l1:/l2", "MergedDir": "/m"}
            },
            "Mounts": [
                {"Type": "volume", "Source": "/v/_data", "Destination": "/data"},
                {"Type": "bind", "Source": "/h", "Destination": "/etc/hosts"},
                {"Type": "bind", "Source": "/src", "Destination": "/mnt/src"},
                {"Type": "tmpfs", "Source": "", "Destination": "/scratch"},
            ],
            "HostConfig": {"Tmpfs": {"/run": ""}},
        }
    ]
    path = tmp_path / "inspect.json"
    path.write_text(json.dumps(data))

    table = read_inspect(str(path))

    assert (table.upper_dir, table.lower_dirs) == ("/u", ["/l1", "/l2"])
    reasons = {m.destination: m.reason for m in table.mounts}
    assert reasons == {
        "data": "volume",
        "etc/hosts": "runtime-file",
        "mnt/src": "bind-mount",
        "scratch": "virtual-fs",
        "run": "virtual-fs",
    }


def test_oci_runtime_config_mounts_are_classified(tmp_path):
    config = {
        "ociVersion": "1.0.2",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm"},
            {"destination": "/etc/resolv.conf", "type": "bind", "source": "/r"},
            {"destination": "/var/lib/data", "type": "bind",
             "source": "/var/lib/containers/storage/volumes/v/_data"},
            {"destination": "/srv", "type": "bind", "source": "/home/srv"},
        ],
    }  # fmt: skip
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))

    table = MountTable.defaults()
    table.merge(read_inspect(str(path)))

    assert table.covering("dev/shm/x").reason == "virtual-fs"
    assert table.covering("etc/resolv.conf").reason == "runtime-file"
    assert table.covering("var/lib/data/f").reason == "volume"
    assert table.covering("srv/a/b").reason == "bind-mount"
    assert table.covering("etc/passwd") is None


def test_mount_flags_need_absolute_destinations():
    assert parse_mount("/data", volume=True).reason == "volume"
    assert parse_mount("/host:/data", volume=False).source == "/host"
    with pytest.raises(UsageError):
        parse_mount("data", volume=True)
    with pytest.raises(UsageError):
        parse_mount("/only", volume=False)


def test_stubs_alone_do_not_fail_the_uncommitted_check(tmp_path, base):
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc/hostname").write_bytes(b"")

    result = run_cli("changes", upper, "--base", base, "--fail-on-uncommitted")

    assert result.exit_code == 0
    assert "stub" in result.output


def test_upper_content_under_a_mount_point_is_committed_but_flagged(tmp_path, base):
    upper = tmp_path / "upper"
    (upper / "data").mkdir(parents=True)
    (upper / "data/hidden").write_bytes(b"written before the volume")

    result = run_cli("changes", upper, "--base", base, "--volume", "/data", "--json")

    rows = {row["path"]: row for row in result.json}
    hidden = rows["data/hidden"]
    assert (hidden["committed"], hidden["reason"]) == (True, "under-mount-point")
    assert (rows["data"]["committed"], rows["data"]["reason"]) == (
        True,
        "under-mount-point",
    )
