"""Names with control characters are shown escaped, and tables stay aligned."""

from __future__ import annotations

import re

import pytest
from builders import layer, write_docker_save
from conftest import run_cli

NAMES = ["nl\nname", "tab\tname", "esc\x1bname", "c1\x85name", "plain"]
SHOWN = [r"/nl\nname", r"/tab\tname", r"/esc\x1bname", r"/c1\u0085name", "/plain"]


@pytest.fixture
def image(tmp_path):
    top = layer()
    for name in NAMES:
        top.file(name, b"x" * 2000, mode=0o4755)
    base = layer().file("base", b"1")
    return write_docker_save(tmp_path / "img.tar", [base.tar_bytes(), top.tar_bytes()])


def _table_rows(text: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if re.fullmatch(r"[- ]+", line))
    rows = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        rows.append(line)
    return rows


def _columns(rule: str) -> list[int]:
    return [m.start() for m in re.finditer(r"-+", rule)]


@pytest.mark.parametrize(
    "args",
    [
        ("files",),
        ("inspect", "--layer", "2"),
        ("audit", "--large", "1KB", "--fail-on", "none"),
    ],
    ids=["files", "inspect-layer", "audit"],
)
def test_tables_escape_controls_and_keep_columns_aligned(image, args):
    result = run_cli(args[0], image, *args[1:])

    assert result.exit_code == 0, result.stderr
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", result.output)
    for name in SHOWN:
        assert name in result.output
    rows = _table_rows(result.output)
    starts = _columns(rows[0])
    for row in rows[1:]:
        for start in starts[1:]:
            assert row[start - 1] == " ", (row, start)


def test_compare_table_keeps_columns_aligned(image, tmp_path):
    old = write_docker_save(
        tmp_path / "old.tar", [layer().file("base", b"1").tar_bytes()]
    )

    result = run_cli("compare", old, image, "--depth", "0")

    text = result.output.split("\n\n")
    table = next(t for t in text if "status" in t)
    rows = _table_rows(table)
    starts = _columns(rows[0])
    for name in SHOWN:
        assert name in table
    for row in rows[1:]:
        for start in starts[1:]:
            assert row[start - 1] == " ", (row, start)


def test_markdown_escapes_a_newline_instead_of_joining_lines(image):
    result = run_cli("audit", image, "--large", "1KB", "--markdown")

    assert r"`/nl\nname`" in result.output
    assert r"`/c1\u0085name`" in result.output
