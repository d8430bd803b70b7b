"""Counts in messages agree in number with what they count."""

from __future__ import annotations

from builders import layer, write_docker_save
from conftest import run_cli

from layerdiff.text import counted


def test_counted_uses_the_singular_for_one_only():
    assert counted(1, "path") == "1 path"
    assert counted(0, "path") == "0 paths"
    assert counted(2, "entry", "entries") == "2 entries"


def test_one_of_each_reads_singular_in_every_command(tmp_path):
    base = layer().dir("d").file("d/x", b"x").file("d/.env", b"S=1")
    top = layer().whiteout("d")
    img = write_docker_save(tmp_path / "i.tar", [base.tar_bytes(), top.tar_bytes()])
    one = write_docker_save(tmp_path / "one.tar", [layer().file("a").tar_bytes()])

    outputs = [
        run_cli("inspect", one).output,
        run_cli("inspect", one, "--layer", "1").output,
        run_cli("audit", img, "--fail-on", "none").output,
        run_cli("audit", one).output,
        run_cli("check", one, "--max-layers", "3").output,
        run_cli("compare", one, one).output,
    ]

    text = "\n".join(outputs)
    for wrong in ["1 layers", "1 entries", "1 paths", "1 files", "1 errors",
                  "1 warnings"]:  # fmt: skip
        assert wrong not in text
    assert "(2 paths below)" in outputs[2]
    assert "1 layer" in outputs[0] and "1 entry" in outputs[1]
