"""The library stays a library: only the command line pulls in click."""

from __future__ import annotations

import subprocess
import sys

CORE = [
    "layerdiff",
    "layerdiff.archive",
    "layerdiff.inspect",
    "layerdiff.upperdir",
    "layerdiff.changes",
    "layerdiff.commit",
    "layerdiff.cache",
    "layerdiff.analyses.audit",
    "layerdiff.analyses.budget",
    "layerdiff.analyses.compare",
    "layerdiff.analyses.why",
]


def test_core_modules_import_neither_click_nor_tabulate():
    probe = (
        "import importlib, sys\n"
        f"for name in {CORE!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in ('click', 'tabulate') if m in sys.modules))\n"
    )

    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )

    assert done.stdout.strip() == "[]"
