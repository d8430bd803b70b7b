"""Shared fixtures: the CLI runner and the location of real sample archives."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from layerdiff.cli import main

REPO = Path(__file__).resolve().parent.parent
SAMPLES_REAL = Path(
    os.environ.get("LAYERDIFF_SAMPLES_REAL", REPO.parent / "shared" / "samples-real")
)


@dataclass
class Result:
    output: str
    stderr: str
    exit_code: int

    @property
    def json(self) -> Any:
        return json.loads(self.output)


def run_cli(*args: str) -> Result:
    """Run the command line in-process, as ``layerdiff`` would, and capture it."""
    from layerdiff.cli import ExitCode
    from layerdiff.errors import LayerdiffError

    runner = CliRunner()
    result = runner.invoke(main, [str(a) for a in args], catch_exceptions=True)
    code = result.exit_code
    stderr = result.stderr
    if isinstance(result.exception, LayerdiffError):
        code = ExitCode.ERROR
        stderr += f"layerdiff: {result.exception}\n"
    elif result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Result(result.stdout, stderr, int(code))


@pytest.fixture
def samples_real() -> Path:
    if not SAMPLES_REAL.is_dir():
        pytest.skip(f"real sample archives not found at {SAMPLES_REAL}")
    return SAMPLES_REAL


@pytest.fixture(autouse=True)
def _private_cache_home(tmp_path_factory, monkeypatch):
    # The CLI caches layer indexes in the user's cache directory by default;
    # tests must neither read nor fill the real one.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache-home")))
    monkeypatch.delenv("LAYERDIFF_CACHE", raising=False)
