"""Exit statuses of the installed command, run as a separate process."""

from __future__ import annotations

import subprocess
import sys

from builders import layer


def _run(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "layerdiff", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_uncommitted_content_fails_the_run_when_asked(tmp_path):
    upper = tmp_path / "upper"
    upper.mkdir()
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "lost.txt").write_text("written into the volume")

    done = _run(
        "changes", upper, "--volume", f"{volume}:/data", "--fail-on-uncommitted"
    )

    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_a_clean_upper_dir_passes_the_same_check(tmp_path):
    upper = tmp_path / "upper"
    upper.mkdir()
    (upper / "kept.txt").write_text("committed")

    done = _run("changes", upper, "--volume", "/data", "--fail-on-uncommitted")

    assert done.returncode == 0, done.stderr


def test_a_corrupt_layer_is_exit_two_with_one_line(tmp_path):
    bad = tmp_path / "bad.tar"
    bad.write_bytes(layer().file("a", b"x" * 600).tar_bytes()[:700])

    done = _run("inspect", bad)

    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert "bad.tar" in done.stderr
