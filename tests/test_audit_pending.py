"""Auditing a container's pending commit: the image a commit would produce."""

from __future__ import annotations

import json
import os

import pytest
from builders import layer, write_docker_save
from conftest import run_cli
from overlays import bind, hash_tree, overlay, require_overlay, unpack


def base_layer():
    return (
        layer()
        .dir("etc")
        .file("etc/app.conf", b"v1\n")
        .dir("usr")
        .dir("usr/bin")
        .file("usr/bin/tool", b"#!/bin/sh\n", mode=0o755)
        .dir("root")
    )


@pytest.fixture
def container(tmp_path):
    """A base image and an overlay on its rootfs, changed through the merged
    dir as a process in the container would: a private key, a setuid
    binary, a pip cache, and a write into a volume bound at /data."""
    require_overlay()
    data = base_layer().tar_bytes()
    image = write_docker_save(tmp_path / "base.tar", [data])
    lower = tmp_path / "lower"
    unpack(data, lower)
    volume = tmp_path / "volume"
    volume.mkdir()
    with overlay(lower, tmp_path / "ovl") as (upper, merged):
        (merged / "root/.ssh").mkdir(mode=0o700)
        (merged / "root/.ssh/id_ed25519").write_bytes(b"-----BEGIN KEY-----\n")
        (merged / "usr/bin/tool").chmod(0o4755)
        cache = merged / "root/.cache/pip/http/a"
        cache.mkdir(parents=True)
        (cache / "wheel").write_bytes(b"w" * 2000)
        (merged / "data").mkdir()
        with bind(volume, merged / "data"):
            (merged / "data/rows.db").write_bytes(b"r" * 300)
            yield image, upper, merged, volume


def rules(result) -> dict[str, dict]:
    return {f["rule"]: f for f in result.json["findings"]}


def test_pending_commit_audit_finds_what_the_container_wrote(container):
    image, upper, _merged, volume = container

    result = run_cli(
        "audit", "--upper", upper, "--base", image, "--volume", f"{volume}:/data",
        "--json",
    )  # fmt: skip

    assert result.exit_code == 1, result.stderr
    found = rules(result)
    assert result.json["image"]["format"] == "pending-commit"
    assert result.json["image"]["layers"] == 2
    assert (found["private-key"]["path"], found["private-key"]["layer"]) == (
        "root/.ssh/id_ed25519",
        2,
    )
    assert (found["setuid-file"]["path"], found["setuid-file"]["layer"]) == (
        "usr/bin/tool",
        2,
    )
    assert found["package-cache"]["path"] == "root/.cache/pip"
    assert found["package-cache"]["size"] == 2000
    lost = found["uncommitted-content"]
    assert (lost["path"], lost["size"], lost["layer"]) == ("data/rows.db", 300, None)
    assert "volume at /data" in lost["message"]
    assert any("stub" in note and "/data" in note for note in result.json["notes"])


def test_pending_commit_audit_reads_the_merged_root_too(container):
    image, _upper, merged, volume = container

    result = run_cli(
        "audit", "--merged", merged, "--base", image, "--volume", f"{volume}:/data",
        "--json",
    )  # fmt: skip

    assert result.exit_code == 1, result.stderr
    found = rules(result)
    assert found["private-key"]["layer"] == 2
    assert found["setuid-file"]["path"] == "usr/bin/tool"
    assert found["uncommitted-content"]["path"].startswith("data")


@pytest.mark.parametrize(
    "fail_on, disabled, code",
    [
        ("error", [], 1),  # the private key
        ("error", ["private-key"], 0),
        ("warning", ["private-key"], 1),  # the pip cache, the volume write
        ("warning", ["private-key", "package-cache", "uncommitted-content"], 0),
        ("info", ["private-key", "package-cache", "uncommitted-content"], 1),
        ("none", [], 0),
    ],
)
def test_pending_commit_audit_exit_code_follows_fail_on(
    container, fail_on, disabled, code
):
    image, upper, _merged, volume = container
    switched_off = [arg for rule in disabled for arg in ("--disable", rule)]

    result = run_cli(
        "audit", "--upper", upper, "--base", image, "--volume", f"{volume}:/data",
        "--fail-on", fail_on, *switched_off,
    )  # fmt: skip

    assert result.exit_code == code, result.output + result.stderr


def test_pending_commit_audit_writes_nothing_and_leaves_the_upper_dir(
    container, tmp_path
):
    image, upper, _merged, volume = container
    upper_before = hash_tree(upper)
    everything_before = hash_tree(tmp_path)
    cache_home = os.environ["XDG_CACHE_HOME"]

    for fmt in ("--json", "--sarif", "--markdown", "--verbose"):
        result = run_cli(
            "audit", "--upper", upper, "--base", image, "--volume",
            f"{volume}:/data", "--no-cache", fmt,
        )  # fmt: skip
        assert result.exit_code == 1, result.stderr

    assert hash_tree(upper) == upper_before
    assert hash_tree(tmp_path) == everything_before
    assert not any(files for _, _, files in os.walk(cache_home))


@pytest.fixture
def upper_tar(tmp_path):
    """A base image and a tar of an upper dir, as ``tar --xattrs`` makes one."""
    image = write_docker_save(tmp_path / "base.tar", [base_layer().tar_bytes()])
    upper = (
        layer()
        .dir("etc")
        .device("etc/app.conf", "char", 0, 0)  # a whiteout
        .dir("root")
        .dir("root/.aws")
        .file("root/.aws/credentials", b"[default]\n")
        .dir("usr")
        .dir("usr/bin")
        .file("usr/bin/tool", b"#!/bin/sh\n", mode=0o6755)
        .dir("tmp", mode=0o1777)
        .file("tmp/build.log", b"l" * 50)
        .dir("data")  # a mount point left empty
    ).build(tmp_path / "upper.tar")
    return image, upper


def test_pending_commit_audit_reads_a_tar_of_an_upper_dir(upper_tar):
    image, upper = upper_tar

    result = run_cli(
        "audit", "--upper", upper, "--base", image, "--volume", "/data", "--json"
    )

    assert result.exit_code == 1, result.stderr
    found = rules(result)
    assert found["cloud-credentials"]["layer"] == 2
    assert found["setuid-file"]["layer"] == 2
    assert found["setgid-file"]["layer"] == 2
    assert found["temporary-files"]["path"] == "tmp"
    assert found["deleted-later"]["path"] == "etc/app.conf"
    assert found["deleted-later"]["layer"] == 2
    assert "uncommitted-content" not in found
    assert any("/data" in note for note in result.json["notes"])


def test_pending_commit_audit_keeps_stubs_when_asked(upper_tar):
    image, upper = upper_tar

    result = run_cli(
        "audit", "--upper", upper, "--base", image, "--volume", "/data",
        "--keep-stubs", "--json",
    )  # fmt: skip

    assert not any("stub" in note for note in result.json["notes"])


def test_pending_commit_is_named_in_every_output_format(upper_tar):
    image, upper = upper_tar

    table = run_cli("audit", "--upper", upper, "--base", image)
    markdown = run_cli("audit", "--upper", upper, "--base", image, "--markdown")
    sarif = run_cli("audit", "--upper", upper, "--base", image, "--sarif")

    assert "Pending:  layer 2" in table.output
    assert "2 (pending commit)" in table.output
    assert "pending commit of" in markdown.output
    assert "| 2 (pending commit) |" in markdown.output
    names = {
        location["name"]
        for run in json.loads(sarif.output)["runs"]
        for item in run["results"]
        for location in item["locations"][0]["logicalLocations"]
    }
    assert "layer 2 (pending commit)" in names
    assert {table.exit_code, markdown.exit_code, sarif.exit_code} == {1}


def test_pending_commit_without_a_base_is_audited_alone(upper_tar):
    _, upper = upper_tar

    result = run_cli("audit", "--upper", upper, "--json", "--fail-on", "none")

    assert result.exit_code == 0, result.stderr
    found = rules(result)
    assert found["cloud-credentials"]["layer"] == 1
    assert "whiteout-missing-target" not in found
    assert any("no base given" in note for note in result.json["notes"])


def test_lower_dirs_are_audited_as_the_layers_below(tmp_path):
    lower = tmp_path / "lower"
    unpack(layer().dir("home").file("home/.bash_history", b"ls\n").tar_bytes(), lower)
    upper = layer().dir("etc").file("etc/new", b"n").build(tmp_path / "upper.tar")

    result = run_cli("audit", "--upper", upper, "--lower", lower, "--json")

    assert result.exit_code == 0, result.stderr
    found = rules(result)
    assert result.json["image"]["layers"] == 2
    assert (found["shell-history"]["layer"], found["shell-history"]["path"]) == (
        1,
        "home/.bash_history",
    )


@pytest.mark.parametrize(
    "args",
    [
        ["IMAGE", "--upper", "UPPER"],  # both an image and a container
        ["IMAGE", "--base", "IMAGE"],  # container options without a container
        [],  # nothing at all
    ],
)
def test_audit_refuses_an_unclear_input(upper_tar, args):
    image, upper = upper_tar
    named = [{"IMAGE": image, "UPPER": upper}.get(a, a) for a in args]

    result = run_cli("audit", *named)

    assert result.exit_code == 2
