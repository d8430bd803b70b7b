"""The JSON writer: byte for byte what the json module writes."""

from __future__ import annotations

import json

import pytest
from builders import layer, write_docker_save
from conftest import run_cli

from layerdiff.render import to_json


@pytest.mark.parametrize(
    "value",
    [
        {},
        [],
        {"b": [{}, [], {"x": 1.5}], "a": None},
        {"\u00e9\udcff": '\x00\n"', "n": -3, "t": True, "f": False},
        [0.1, float("nan"), float("-inf"), 1e300, 2**70],
        {1: 2},
        [{"z": 1, "a": "q"}, {"k": {"x": [1, "2"]}}],
    ],
)
def test_to_json_matches_the_json_module(value):
    expected = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)

    assert to_json(value) == expected + "\n"


def test_inspect_json_output_matches_the_json_module(tmp_path):
    base = layer().dir("etc").file("etc/a", b"1").xattr("etc/a", "user.k", b"v")
    top = layer().file("etc/a", b"2").whiteout("etc/b")
    image = write_docker_save(tmp_path / "i.tar", [base.tar_bytes(), top.tar_bytes()])

    result = run_cli("inspect", "--json", "--no-cache", image)

    expected = json.dumps(result.json, indent=2, sort_keys=True, ensure_ascii=False)
    assert result.output == expected + "\n"
