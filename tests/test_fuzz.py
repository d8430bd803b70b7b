"""Fuzzing the readers: a mutated input either works or fails cleanly.

Whatever the bytes, ``inspect`` and ``files`` exit 0, or exit 2 with one
error line (and an optional hint); never a traceback, never a hang, never
a temporary file left behind. Inputs are a few kilobytes and --max-size is
small, so every run is bounded.
"""

from __future__ import annotations

import tempfile
from datetime import timedelta

import pytest
from hostile import Hang, assert_clean_error, invoke
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mutate import make_input, seeds

_SEEDS: dict[str, bytes] = {}


@pytest.fixture(scope="module")
def seed_inputs(tmp_path_factory):
    if not _SEEDS:
        _SEEDS.update(seeds(tmp_path_factory.mktemp("seeds")))
    return _SEEDS


def check_contract(data: bytes, name: str, command: str, workdir) -> str:
    """Run one command on ``data`` and return 'ok' or 'error'; raise otherwise."""
    target = workdir / f"input-{name}"
    target.write_bytes(data)
    args = [command, target, "--max-size", "4MB", "--json"]
    try:
        outcome = invoke(args, limit_seconds=30)
    finally:
        target.unlink()
    assert "Traceback" not in outcome.stderr
    if outcome.exit_code == 0:
        return "ok"
    assert_clean_error(outcome)
    return "error"


@settings(
    max_examples=200,
    deadline=timedelta(seconds=10),
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    which=st.integers(min_value=0, max_value=100),
    donor=st.integers(min_value=0, max_value=100),
    rng=st.randoms(use_true_random=False),
    command=st.sampled_from(["inspect", "files"]),
)
def test_mutated_inputs_work_or_fail_cleanly(
    seed_inputs, tmp_path, monkeypatch, which, donor, rng, command
):
    names = sorted(seed_inputs)
    name = names[which % len(names)]
    donor_data = seed_inputs[names[donor % len(names)]]
    data = make_input(name, seed_inputs[name], rng, donor_data)
    scratch = tmp_path / "tmp"
    scratch.mkdir(exist_ok=True)
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))

    try:
        check_contract(data, name, command, tmp_path)
    except Hang:
        pytest.fail(f"{command} hung on a mutated {name}")

    assert list(scratch.iterdir()) == []


@pytest.mark.parametrize("name", ["layer.tar", "docker.tar", "oci.tar", "raw.tar",
                                  "layer.tar.zst", "docker25.tar", "docker.tar.gz"])  # fmt: skip
def test_every_seed_is_valid(seed_inputs, tmp_path, name):
    assert check_contract(seed_inputs[name], name, "inspect", tmp_path) == "ok"
