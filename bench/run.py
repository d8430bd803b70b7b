#!/usr/bin/env python3
"""Time layerdiff against the hardware floor and peer tools, in one run.

Every case is timed here, next to its baseline command, so the ratios
compare runs on the same machine under the same load. Peak memory is the
largest resident set of any process of the command (from wait4).

    python bench/run.py                      # make /tmp/layerdiff-bench/*, run all
    python bench/run.py --sizes 1            # only the full-size image
    python bench/run.py --dive-image BIG.tar # also dive --ci on that archive

Cases:
  inspect cold     layerdiff inspect --json --no-cache, against
                   `gzip -dc LAYER | sha256sum` over every layer in turn
  inspect warm     the same with a filled layer cache (every layer shared)
  scale N          inspect cold at several sizes: time per entry and per byte
  dive             `dive --ci` on the same archive, when dive is on PATH
  inspect 1M       (--million) plain inspect of 1,000,000 small files: peak
                   memory per path of the merged view above the fixed base
                   (the peak of inspecting a tiny image)
  commit           `layerdiff commit` of a 1 GiB, 100k-file upper dir onto a
                   tiny base: gzip against `tar -cf - | gzip -1`, none
                   against `tar -cf - | cat`
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def run(command: list[str] | str, **options) -> tuple[float, int]:
    """Run a command to the end; return (seconds, peak RSS in bytes)."""
    shell = isinstance(command, str)
    start = time.perf_counter()
    process = subprocess.Popen(
        command,
        shell=shell,
        stdout=options.get("stdout", subprocess.DEVNULL),
        stderr=subprocess.DEVNULL if not options.get("show_errors") else None,
    )
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode not in options.get("ok", (0,)):
        raise SystemExit(f"bench: {command!r} exited with {process.returncode}")
    return elapsed, usage.ru_maxrss * 1024


def layerdiff(*args: str) -> list[str]:
    return [sys.executable, "-m", "layerdiff", *args]


def extract_layers(archive: str, directory: str) -> list[str]:
    """Unpack the layer blobs of a docker-save archive, for the floor."""
    os.makedirs(directory, exist_ok=True)
    paths = []
    with tarfile.open(archive) as tar:
        import json

        manifest = json.load(tar.extractfile("manifest.json"))
        for name in manifest[0]["Layers"]:
            target = os.path.join(directory, os.path.basename(name))
            if not os.path.exists(target):
                with open(target + ".part", "wb") as out:
                    shutil.copyfileobj(tar.extractfile(name), out, 1 << 20)
                os.replace(target + ".part", target)
            paths.append(target)
    return paths


def floor(layers: list[str]) -> tuple[float, int]:
    script = "; ".join(f"gzip -dc '{p}' | sha256sum >/dev/null" for p in layers)
    return run(script)


def entries_of(archive: str, cache: str) -> int:
    """Count entries (and fill the cache) in a child, not in this process.

    Forked children inherit this process's peak RSS in what wait4 reports,
    so the bench itself never loads a large report.
    """
    count = (
        "import json, sys; r = json.load(sys.stdin); "
        "print(sum(x['entries'] for x in r['layers']))"
    )
    script = (
        f"{sys.executable} -m layerdiff inspect --json --cache '{cache}' "
        f"'{archive}' | {sys.executable} -c \"{count}\""
    )
    out = subprocess.run(script, shell=True, check=True, capture_output=True)
    return int(out.stdout)


def view_size(archive: str) -> int:
    """Count the paths of the final merged view, in a child process."""
    script = (
        "import sys; from layerdiff import open_image, merged_view; "
        "img = open_image(sys.argv[1]); print(len(merged_view(img)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, archive], check=True, capture_output=True
    )
    return int(out.stdout)


def make_image(path: str, scale: float, **extra: str) -> str:
    if not os.path.exists(path):
        command = [sys.executable, os.path.join(HERE, "make_image.py"), path]
        command += ["--scale", str(scale)]
        for key, value in extra.items():
            command += [f"--{key.replace('_', '-')}", value]
        subprocess.run(command, check=True)
    return path


class Table:
    def __init__(self) -> None:
        self.rows: list[list[str]] = []

    def add(self, case, ours, theirs_label, theirs, peak, note="") -> None:
        ratio = f"{ours / theirs:.2f}" if theirs else "-"
        self.rows.append(
            [
                case,
                f"{ours:.2f} s",
                theirs_label,
                f"{theirs:.2f} s" if theirs else "-",
                ratio,
                f"{peak / 2**20:.0f} MiB",
                note,
            ]
        )
        print(" | ".join(self.rows[-1]), file=sys.stderr, flush=True)

    def render(self) -> str:
        head = ["case", "layerdiff", "baseline", "baseline time", "ratio", "peak RSS"]
        head.append("note")
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default="/tmp/layerdiff-bench")
    parser.add_argument(
        "--sizes",
        default="0.125,0.25,0.5,1",
        help="scales of the generated image (1 = 200k files, 1 GiB)",
    )
    parser.add_argument("--dive-image", help="a docker-save archive for dive --ci")
    parser.add_argument(
        "--million", action="store_true", help="also 1,000,000 small entries"
    )
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    table = Table()
    sizes = [float(s) for s in args.sizes.split(",")]
    # The fixed base of peak memory: inspecting a tiny image.
    tiny = os.path.join(HERE, "..", "samples", "sample-docker.tar")
    _, fixed = run(layerdiff("inspect", "--no-cache", tiny))

    scaling = []
    for scale in sizes:
        archive = make_image(os.path.join(args.work, f"image-{scale}.tar"), scale)
        layers = extract_layers(archive, os.path.join(args.work, f"layers-{scale}"))
        cache = os.path.join(args.work, f"cache-{scale}")
        shutil.rmtree(cache, ignore_errors=True)
        base_time, base_peak = floor(layers)
        cold, cold_peak = run(layerdiff("inspect", "--json", "--no-cache", archive))
        count = entries_of(archive, cache)  # also fills the cache
        size = sum(os.path.getsize(p) for p in layers)
        note = f"{count} entries, {size / 2**20:.0f} MiB gzip"
        table.add(f"inspect cold x{scale}", cold, "gzip -dc|sha256sum", base_time,
                  cold_peak, note)  # fmt: skip
        scaling.append((scale, view_size(archive), cold, base_time, cold_peak))
        if scale == max(sizes):
            warm, warm_peak = run(layerdiff("inspect", "--json", "--cache", cache,
                                            archive))  # fmt: skip
            table.add("inspect warm cache", warm, "gzip -dc|sha256sum", base_time,
                      warm_peak, "every layer from the cache")  # fmt: skip
            files, files_peak = run(layerdiff("files", "--json", "--no-cache", archive))
            table.add("files cold", files, "gzip -dc|sha256sum", base_time,
                      files_peak, note)  # fmt: skip
            if shutil.which("dive") and args.dive_image is None:
                dive, dive_peak = run(
                    ["dive", "--ci", "--source", "docker-archive", archive], ok=(0, 1)
                )
                table.add("inspect cold vs dive", cold, "dive --ci", dive,
                          dive_peak, "peak RSS is dive's")  # fmt: skip

    if args.dive_image:
        cache = os.path.join(args.work, "cache-dive")
        shutil.rmtree(cache, ignore_errors=True)
        ours, peak = run(layerdiff("inspect", "--json", "--no-cache", args.dive_image))
        count = entries_of(args.dive_image, cache)
        if shutil.which("dive"):
            dive, dive_peak = run(
                ["dive", "--ci", "--source", "docker-archive", args.dive_image],
                ok=(0, 1),
            )
            table.add("inspect vs dive", ours, "dive --ci", dive, peak,
                      f"{count} entries; dive peak {dive_peak / 2**20:.0f} MiB")  # fmt: skip
        else:
            table.add("inspect (dive absent)", ours, "-", 0, peak, f"{count} entries")

    if args.million:
        archive = make_image(
            os.path.join(args.work, "million.tar"), 5.0, size_scale="0.002"
        )
        cache = os.path.join(args.work, "cache-million")
        layers = extract_layers(archive, os.path.join(args.work, "layers-million"))
        base_time, _ = floor(layers)
        ours, peak = run(layerdiff("inspect", "--no-cache", archive))
        count = view_size(archive)
        table.add("inspect 1M entries", ours, "gzip -dc|sha256sum", base_time, peak,
                  f"{count} paths in the merged view, "
                  f"{(peak - fixed) / count:.0f} B/path above the "
                  f"{fixed / 2**20:.0f} MiB base")  # fmt: skip

    commit_bench(args.work, table)

    print(table.render())
    if len(scaling) >= 2:
        (_, n0, t0, f0, m0), (_, n1, t1, f1, m1) = scaling[0], scaling[-1]
        print()
        print("| scale | paths | layerdiff | floor | ratio | us/path | peak RSS "
              "| B/path above base |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|")
        for scale, count, ours, base, peak in scaling:
            print(f"| {scale} | {count} | {ours:.2f} s | {base:.2f} s | "
                  f"{ours / base:.2f} | {ours / count * 1e6:.1f} | "
                  f"{peak / 2**20:.0f} MiB | {(peak - fixed) / count:.0f} |")  # fmt: skip
        slope = (m1 - m0) / (n1 - n0)
        print(f"\nfixed base (inspect of a tiny image): {fixed / 2**20:.0f} MiB; "
              f"peak memory growth between the smallest and largest run: "
              f"{slope:.0f} bytes per path")  # fmt: skip


def make_upper(upper: str) -> str:
    """Write 100,000 files holding 1 GiB in 500 directories, once."""
    if not os.path.isdir(upper):
        import random

        rng = random.Random(7)
        os.makedirs(upper + ".part")
        for index in range(100_000):
            directory = os.path.join(upper + ".part", f"d{index // 200:03d}")
            os.makedirs(directory, exist_ok=True)
            with open(os.path.join(directory, f"f{index:06d}"), "wb") as handle:
                handle.write(rng.randbytes(10_737))
        os.replace(upper + ".part", upper)
    return upper


def commit_bench(work: str, table: Table) -> None:
    probe = subprocess.run(layerdiff("commit", "--help"), capture_output=True)
    if probe.returncode != 0:
        print("bench: no `layerdiff commit` command; commit case skipped",
              file=sys.stderr)  # fmt: skip
        return
    upper = make_upper(os.path.join(work, "upper"))
    # The smallest base there is, so that the new layer is all the work.
    base_image = os.path.join(HERE, "..", "samples", "sample-docker.tar")
    out = os.path.join(work, "commit-out.tar")
    for compression, baseline, label in (
        ("gzip", f"tar -C '{upper}' -cf - . | gzip -1 > /dev/null", "tar|gzip -1"),
        # Through a pipe: GNU tar skips reading files when it writes /dev/null.
        ("none", f"tar -C '{upper}' -cf - . | cat > /dev/null", "tar|cat"),
    ):
        base, _ = run(baseline)
        command = layerdiff("commit", upper, "--base", base_image, "-o", out)
        ours, peak = run(command + ["--compression", compression], show_errors=True)
        table.add(f"commit 1 GiB / 100k files, {compression}", ours, label, base,
                  peak)  # fmt: skip
        os.unlink(out)


if __name__ == "__main__":
    main()
