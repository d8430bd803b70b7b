"""Every output option is checked against every input before anything is read."""

from __future__ import annotations

import pytest
from builders import layer, write_docker_save
from conftest import run_cli


@pytest.fixture
def images(tmp_path):
    one = layer().file("a.txt", b"hello").tar_bytes()
    two = layer().file("b.txt", b"world").tar_bytes()
    old = write_docker_save(tmp_path / "old.tar", [one])
    new = write_docker_save(tmp_path / "new.tar", [one, two])
    baseline = tmp_path / "base.json"
    assert run_cli("baseline", new, "-o", baseline).exit_code == 0
    return old, new, baseline


def _unchanged(*paths):
    return {p: p.read_bytes() for p in paths}


@pytest.mark.parametrize(
    "args",
    [
        ("compare", "{old}", "{new}", "-o", "{new}"),
        ("compare", "{old}", "{new}", "--json", "-o", "{old}"),
        ("check", "{new}", "--max-size", "1GB", "--junit", "{new}"),
        (
            "check",
            "{new}",
            "--baseline",
            "{base}",
            "--max-growth",
            "1%",
            "-o",
            "{base}",
        ),
        (
            "check",
            "{new}",
            "--baseline",
            "{base}",
            "--max-growth",
            "1%",
            "--junit",
            "{base}",
        ),
        ("audit", "{new}", "--sarif", "-o", "{new}"),
        ("inspect", "{new}", "-o", "{new}"),
        ("files", "{new}", "--json", "-o", "{new}"),
        ("baseline", "{new}", "-o", "{new}"),
    ],
    ids=[
        "compare-o-new",
        "compare-json-o-old",
        "check-junit-image",
        "check-o-baseline",
        "check-junit-baseline",
        "audit",
        "inspect",
        "files",
        "baseline",
    ],
)
def test_an_output_naming_an_input_is_refused_and_the_input_kept(images, args):
    old, new, base = images
    before = _unchanged(old, new, base)
    args = [a.format(old=old, new=new, base=base) for a in args]

    result = run_cli(*args)

    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "would overwrite an input" in result.stderr
    assert _unchanged(old, new, base) == before


def test_an_output_naming_the_config_file_is_refused(images, tmp_path):
    _, new, _ = images
    config = tmp_path / "settings.toml"
    config.write_text('max-size = "1GB"\n')

    result = run_cli("check", new, "--config", config, "-o", config)

    assert result.exit_code == 2
    assert config.read_text() == 'max-size = "1GB"\n'


def test_an_output_naming_the_config_files_baseline_is_refused(images, tmp_path):
    _, new, base = images
    before = base.read_bytes()
    config = tmp_path / "settings.toml"
    config.write_text(f'baseline = "{base.name}"\nmax-growth = "1%"\n')

    result = run_cli("check", new, "--config", config, "--junit", base)

    assert result.exit_code == 2
    assert base.read_bytes() == before


def test_two_outputs_naming_one_file_are_refused(images, tmp_path):
    _, new, _ = images
    report = tmp_path / "report"

    result = run_cli("check", new, "--max-size", "1GB", "-o", report, "--junit", report)

    assert result.exit_code == 2
    assert "name the same file" in result.stderr
    assert not report.exists()


def _cli(*args: str, shell: str | None = None):
    import subprocess
    import sys

    if shell is not None:
        command = f"{sys.executable} -m layerdiff {shell}"
        return subprocess.run(
            ["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True
        )
    return subprocess.run(
        [sys.executable, "-m", "layerdiff", *args], capture_output=True, text=True
    )


def test_a_reader_that_stops_early_is_no_error(tmp_path):
    big = layer()
    for index in range(3000):  # far more JSON than a pipe holds
        big.file(f"d{index // 100}/f{index}", b"x")
    image = write_docker_save(tmp_path / "big.tar", [big.tar_bytes()])

    for command in ("files --json", "inspect --json"):
        done = _cli(shell=f"{command} --no-cache '{image}' | head -c 10 >/dev/null")

        assert (done.returncode, done.stderr) == (0, "")


def test_stdout_on_a_full_device_is_one_line_and_exit_2(images):
    import os

    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    _, new, _ = images

    done = _cli(shell=f"inspect --json --no-cache '{new}' > /dev/full")

    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "cannot write" in done.stderr


def test_a_failed_write_leaves_nothing_and_names_the_output(tmp_path):
    import errno

    from layerdiff.errors import OutputError
    from layerdiff.output import atomic_output

    target = tmp_path / "out.json"
    with pytest.raises(OutputError, match="cannot write"):
        with atomic_output(str(target)) as handle:
            handle.write(b"half")
            raise OSError(errno.ENOSPC, "No space left on device")

    assert list(tmp_path.iterdir()) == []
