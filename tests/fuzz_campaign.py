"""A long fuzz campaign, run by hand: mutate valid inputs for N minutes.

    python tests/fuzz_campaign.py --minutes 10 --seed 1 --keep crashes/

Each input is a seed from tests/mutate.py with one to four mutations, fed
to ``inspect`` or ``files`` in-process. Every run must exit 0, or exit 2
with one error line; anything else (an exception, a hang, more lines, a
temporary file left over) is a fault, saved with its traceback under
--keep, and counted once per distinct place it was raised.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hostile import Hang, invoke  # noqa: E402
from mutate import make_input, seeds  # noqa: E402


def _place(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "layerdiff" in f.filename] or frames
    last = ours[-1]
    return f"{type(exc).__name__} at {Path(last.filename).name}:{last.lineno}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, default=None)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="layerdiff-fuzz-"))
    inputs = seeds(work / "seeds")
    names = sorted(inputs)
    scratch = work / "tmp"
    scratch.mkdir()
    tempfile.tempdir = str(scratch)
    # The layer cache goes with the rest, never into the user's home.
    os.environ["XDG_CACHE_HOME"] = str(work / "cache")
    os.environ.pop("LAYERDIFF_CACHE", None)
    counts: Counter[str] = Counter()
    faults: dict[str, int] = {}
    deadline = time.monotonic() + args.minutes * 60

    while time.monotonic() < deadline:
        name = rng.choice(names)
        data = make_input(name, inputs[name], rng, inputs[rng.choice(names)])
        command = rng.choice(["inspect", "files"])
        target = work / f"input-{name}"
        target.write_bytes(data)
        verdict = None
        try:
            outcome = invoke(
                [command, target, "--max-size", "4MB", "--json"], limit_seconds=30
            )
            lines = outcome.error_lines
            if outcome.exit_code == 0:
                verdict = "ok"
            elif (
                outcome.exit_code == 2
                and lines
                and lines[0].startswith("layerdiff: ")
                and (len(lines) == 1 or (len(lines) == 2 and lines[1].startswith("  ")))
            ):
                verdict = "clean error"
            else:
                verdict = "fault"
                place = f"exit {outcome.exit_code}, {len(lines)} lines"
                detail = outcome.stderr
        except Hang:
            verdict, place, detail = "fault", "hang", ""
        except Exception as exc:  # a crash is what the campaign looks for
            verdict, place = "fault", _place(exc)
            detail = traceback.format_exc()
        if verdict != "fault" and list(scratch.iterdir()):
            verdict, place, detail = "fault", "temporary file left", ""
            for leftover in scratch.iterdir():
                leftover.unlink()
        counts[verdict] += 1
        if verdict == "fault":
            faults[place] = faults.get(place, 0) + 1
            if args.keep is not None and faults[place] == 1:
                args.keep.mkdir(parents=True, exist_ok=True)
                stem = f"fault{len(faults)}-{name}"
                (args.keep / stem).write_bytes(data)
                (args.keep / (stem + ".txt")).write_text(f"{command}\n{place}\n{detail}")

    shutil.rmtree(work)
    total = sum(counts.values())
    print(f"inputs tried: {total}")
    for verdict in ("ok", "clean error", "fault"):
        print(f"{verdict}: {counts[verdict]}")
    for place, count in sorted(faults.items()):
        print(f"  {count} x {place}")
    return 1 if faults else 0


if __name__ == "__main__":
    sys.exit(main())
