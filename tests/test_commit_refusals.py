"""What changes and commit refuse, and how they say it: one line, exit 2."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from builders import layer, write_docker_save
from conftest import run_cli


def _run(*args, env=None, user=None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "layerdiff", *map(str, args)]
    if user:
        command = user + command
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )


def _one_line_error(done: subprocess.CompletedProcess, *words: str) -> None:
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    for word in words:
        assert word in lines[0]


@pytest.fixture
def base(tmp_path):
    data = layer().dir("etc").file("etc/passwd", b"root:x:0:0\n").tar_bytes()
    return write_docker_save(tmp_path / "base.tar", [data])


@pytest.fixture
def upper(tmp_path):
    directory = tmp_path / "upper"
    (directory / "etc").mkdir(parents=True)
    (directory / "etc/new").write_bytes(b"new\n")
    return directory


def test_a_bare_layer_base_yields_an_image_every_reader_accepts(tmp_path, upper):
    bare = tmp_path / "bare.tar"
    layer().dir("etc").file("etc/a", b"a").build(bare)
    out = tmp_path / "out.tar"

    result = run_cli("commit", upper, "--base", bare, "-o", out, "--verify")

    assert result.exit_code == 0, result.stderr
    inspected = run_cli("inspect", out, "--json")
    assert inspected.exit_code == 0, inspected.stderr
    assert len(inspected.json["layers"]) == 2
    config = run_cli("commit", upper, "--base", bare, "-o", tmp_path / "o2.tar",
                     "--json", "-").json["config"]  # fmt: skip
    assert len(config["rootfs"]["diff_ids"]) == 2
    assert len(config["history"]) == 2
    assert config["os"] == "linux" and config["architecture"]
    if shutil.which("skopeo"):
        shown = subprocess.run(
            ["skopeo", "inspect", f"docker-archive:{out}"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert shown.returncode == 0, shown.stderr
        assert len(json.loads(shown.stdout)["Layers"]) == 2


def test_a_failed_verification_exits_1_and_writes_nothing(
    tmp_path, upper, base, monkeypatch
):
    import layerdiff.commit

    monkeypatch.setattr(
        layerdiff.commit, "_read_back", lambda staging, container: ["1 path differs"]
    )
    out = tmp_path / "out.tar"

    result = run_cli("commit", upper, "--base", base, "-o", out, "--verify")

    assert result.exit_code == 1
    assert "verification failed: 1 path differs" in result.output
    assert not out.exists()


def test_an_entry_below_a_symlink_in_an_upper_tar_is_refused(tmp_path, base):
    upper_tar = tmp_path / "upper.tar"
    (layer().symlink("lnk", "/etc").file("lnk/passwd", b"evil\n")).build(upper_tar)

    done = _run("commit", upper_tar, "--base", base, "-o", tmp_path / "o.tar",
                "--verify")  # fmt: skip

    _one_line_error(done, "/lnk/passwd", "symlink /lnk")
    assert not (tmp_path / "o.tar").exists()


def test_a_hard_link_to_a_path_outside_the_layer_and_base_is_refused(tmp_path, base):
    upper_tar = tmp_path / "upper.tar"
    (layer().dir("etc").hardlink("h", "etc/shadow")).build(upper_tar)

    done = _run("commit", upper_tar, "--base", base, "-o", tmp_path / "o.tar")
    to_base = tmp_path / "to-base.tar"
    (layer().hardlink("h", "etc/passwd")).build(to_base)
    fine = run_cli("changes", to_base, "--base", base)

    _one_line_error(done, "'/h'", "/etc/shadow")
    assert fine.exit_code == 0, fine.stderr


def test_a_path_given_twice_in_an_upper_tar_is_written_once_last_one_wins(
    tmp_path, base
):
    import tarfile

    upper_tar = tmp_path / "upper.tar"
    layer().dir("etc").file("etc/x", b"first").file("etc/x", b"second!").build(
        upper_tar
    )
    blob = tmp_path / "layer.tar"

    result = run_cli("commit", upper_tar, "--base", base, "-o", tmp_path / "o.tar",
                     "--layer-out", blob, "--compression", "none")  # fmt: skip

    assert result.exit_code == 0, result.stderr
    with tarfile.open(blob) as tar:
        members = [m for m in tar.getmembers() if m.name == "etc/x"]
        assert len(members) == 1
        assert tar.extractfile(members[0]).read() == b"second!"


def test_the_same_file_for_two_outputs_is_refused(tmp_path, upper, base):
    out = tmp_path / "out.tar"

    same = run_cli("commit", upper, "--base", base, "-o", out, "--layer-out", out)
    json_too = run_cli("commit", upper, "--base", base, "-o", out, "--json", out)

    for result in (same, json_too):
        assert result.exit_code == 2
        assert "name the same file" in result.stderr
    assert not out.exists()


def test_output_over_the_base_is_refused_through_a_symlink(tmp_path, upper, base):
    alias = tmp_path / "alias.tar"
    alias.symlink_to(base)
    before = base.read_bytes()

    result = run_cli("commit", upper, "--base", base, "-o", alias)

    assert result.exit_code == 2
    assert base.read_bytes() == before


@pytest.mark.parametrize("target", ["missing-dir/x.tar", "a-dir"])
def test_an_output_that_cannot_be_written_is_one_line(tmp_path, upper, base, target):
    (tmp_path / "a-dir").mkdir()

    done = _run("commit", upper, "--base", base, "-o", tmp_path / target)

    _one_line_error(done, "cannot write here")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_an_out_of_range_source_date_epoch_is_one_line(tmp_path, upper, base):
    done = _run("commit", upper, "--base", base, "-o", tmp_path / "o.tar",
                env={"SOURCE_DATE_EPOCH": "99999999999999"})  # fmt: skip

    _one_line_error(done, "SOURCE_DATE_EPOCH", "out of range")


@pytest.fixture
def shared_dir():
    """A directory that a user without privileges can reach."""
    import tempfile

    directory = tempfile.mkdtemp(prefix="layerdiff-test-")
    os.chmod(directory, 0o755)
    try:
        yield Path(directory)
    finally:
        shutil.rmtree(directory)


def test_an_unreadable_file_in_the_upper_dir_is_one_line_naming_it(shared_dir):
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv(1) to read as an unprivileged user")
    drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    if _run("--version", user=drop).returncode != 0:
        pytest.skip("the package is not importable as an unprivileged user")
    base = shared_dir / "base.tar"
    # The base holds a file of the same size, so only the content can tell
    # whether it changed: the file must be read.
    layer().dir("etc").file("etc/secret", b"t").build(base)
    os.chmod(base, 0o644)
    upper = shared_dir / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc/secret").write_bytes(b"s")
    os.chmod(upper / "etc/secret", 0o600)

    done = _run("changes", upper, "--base", base, user=drop)
    _one_line_error(done, "/etc/secret", "cannot read")

    # A new file is read only when the layer is written.
    os.rename(upper / "etc/secret", upper / "etc/new")
    out = shared_dir / "out"
    out.mkdir(mode=0o777)
    os.chmod(out, 0o777)
    done = _run("commit", upper, "--base", base, "-o", out / "o.tar", user=drop)
    _one_line_error(done, "etc/new", "cannot read")
    assert list(out.iterdir()) == []


def test_zstd_layers_in_a_docker_archive_are_refused(tmp_path, upper, base):
    result = run_cli("commit", upper, "--base", base, "-o", tmp_path / "o.tar",
                     "--format", "docker", "--compression", "zstd")  # fmt: skip

    assert result.exit_code == 2
    assert "--format oci" in result.stderr


@pytest.mark.parametrize("port", ["abc", "0", "70000", "80/quic", "90-80"])
def test_expose_takes_port_numbers_only(tmp_path, upper, base, port):
    result = run_cli("commit", upper, "--base", base, "-o", tmp_path / "o.tar",
                     "-c", f"EXPOSE {port}")  # fmt: skip

    assert result.exit_code == 2
    assert repr(port) in result.stderr


def test_a_malformed_exec_form_runs_through_the_shell_as_docker_does():
    from layerdiff.commit import apply_changes

    runtime = apply_changes({}, ['CMD ["unterminated', "EXPOSE 53/UDP 8000-8010"])

    assert runtime["Cmd"] == ["/bin/sh", "-c", '["unterminated']
    assert runtime["ExposedPorts"] == {"53/udp": {}} | {
        f"{port}/tcp": {} for port in range(8000, 8011)
    }


def test_a_junk_upper_file_is_one_line(tmp_path, base):
    junk = tmp_path / "junk"
    junk.write_bytes(b"this is not a tar at all\n" * 40)

    done = _run("changes", junk, "--base", base)

    _one_line_error(done, "not a directory or a readable tar")


def test_base_and_lower_together_are_refused(tmp_path, upper, base):
    lower = tmp_path / "lower"
    lower.mkdir()

    result = run_cli("changes", upper, "--base", base, "--lower", lower)

    assert result.exit_code == 2
    assert "--base or --lower" in result.stderr


def test_a_missing_volume_source_is_warned_about_and_noted(tmp_path, upper, base):
    gone = tmp_path / "gone"

    done = _run("changes", upper, "--base", base, "--volume", f"{gone}:/data")
    committed = run_cli("commit", upper, "--base", base, "-o", tmp_path / "o.tar",
                        "--volume", f"{gone}:/data", "--json", "-")  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert "WARNING" in done.stderr and str(gone) in done.stderr
    assert any(str(gone) in note for note in committed.json["notes"])


def test_a_socket_is_a_row_that_is_not_committed(tmp_path, upper, base):
    if len(str(upper / "etc/app.sock")) > 100:
        pytest.skip("the temporary path is too long for a unix socket")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(upper / "etc/app.sock"))
    try:
        result = run_cli("changes", upper, "--base", base, "--json",
                         "--fail-on-uncommitted")  # fmt: skip
    finally:
        server.close()

    assert result.exit_code == 0, result.stderr
    rows = {row["path"]: row for row in result.json}
    assert rows["etc/app.sock"]["reason"] == "socket"
    assert rows["etc/app.sock"]["committed"] is False


def test_names_that_are_not_utf8_or_hold_newlines_stay_whole(tmp_path, base):
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc").joinpath(os.fsdecode(b"bad\xffname")).write_bytes(b"x")
    (upper / "etc/two\nlines").write_bytes(b"y")

    as_json = _run("changes", upper, "--base", base, "--json")
    table = _run("changes", upper, "--base", base)

    assert as_json.returncode == 0, as_json.stderr
    paths = {row["path"] for row in json.loads(as_json.stdout)}
    assert paths == {"etc", "etc/bad\\xffname", "etc/two\nlines"}
    rows = [line for line in table.stdout.splitlines() if "/etc/" in line]
    assert len(rows) == 2
    assert any("/etc/bad\\xffname" in row for row in rows)
    assert any("/etc/two\\nlines" in row for row in rows)


def test_docker_commit_forms_of_cmd_workdir_and_port_ranges():
    from layerdiff.commit import apply_changes

    runtime = apply_changes(
        {"WorkingDir": "/app"},
        ["CMD []", "WORKDIR sub", "EXPOSE 9000-9001/udp"],
    )

    assert runtime["Cmd"] == []
    assert runtime["WorkingDir"] == "/app/sub"
    assert set(runtime["ExposedPorts"]) == {"9000/udp", "9001/udp"}


def test_a_hard_link_to_a_left_out_stub_carries_the_data(tmp_path):
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "root").mkdir()
    (upper / "etc" / "hosts").write_bytes(b"")
    os.link(upper / "etc" / "hosts", upper / "root" / "x")
    os.link(upper / "etc" / "hosts", upper / "root" / "y")
    base = write_docker_save(tmp_path / "base.tar", [layer().dir("etc").tar_bytes()])
    out = tmp_path / "out.tar"

    result = run_cli("commit", upper, "--base", base, "-o", out, "--verify")
    listing = run_cli("files", out, "--json").json

    assert result.exit_code == 0, result.stderr
    kinds = {item["path"]: (item["type"], item["linkname"]) for item in listing}
    assert kinds["root/x"] == ("file", None)
    assert kinds["root/y"] == ("hardlink", "root/x")
    assert "etc/hosts" not in kinds


def test_a_fifo_as_upper_is_refused_without_opening_it(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    base = write_docker_save(tmp_path / "base.tar", [layer().dir("etc").tar_bytes()])

    result = run_cli("changes", fifo, "--base", base)

    assert result.exit_code == 2
    assert "regular" in result.stderr
