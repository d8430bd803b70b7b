"""The command line: parse options, call the library, render, map errors."""

from __future__ import annotations

import enum
import logging
import signal
import sys
import time
from contextlib import contextmanager
from typing import Iterator

import click

from . import render
from .archive import Image, open_image
from .cache import LayerCache, default_cache_dir
from .errors import LayerdiffError
from .inspect import inspect_image, merged_view

__all__ = ["main", "ExitCode"]


class ExitCode(enum.IntEnum):
    """Exit statuses, documented in the README."""

    OK = 0
    FINDINGS = 1  # the check asked for failed: findings, budget, differences
    ERROR = 2  # bad input, bad usage, or an output that cannot be written
    INTERRUPTED = 130


def _parse_size(text: str | None) -> int | None:
    if text is None:
        return None
    units = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6,
             "g": 10**9, "gb": 10**9, "t": 10**12, "tb": 10**12,
             "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}  # fmt: skip
    stripped = text.strip().lower().replace(" ", "")
    number = stripped.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = stripped[len(number) :]
    try:
        if unit not in units:
            raise ValueError
        return int(float(number) * units[unit])
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a size such as 500MB or 2GiB")


class _Progress:
    """A one-line progress bar on stderr, only when stderr is a terminal.

    It appears once a run has taken a second, so quick runs stay silent.
    """

    def __init__(self, label: str, delay: float = 1.0) -> None:
        self.label = label
        self.enabled = sys.stderr.isatty()
        self.shown = False
        self.start = time.monotonic()
        self.delay = delay

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        if not self.shown and time.monotonic() - self.start < self.delay:
            return
        width = 30
        filled = int(width * done / total)
        bar = "#" * filled + "." * (width - filled)
        done_text = render.human_size(done)
        total_text = render.human_size(total)
        sys.stderr.write(f"\r{self.label} [{bar}] {done_text}/{total_text}")
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


@contextmanager
def _opened(sources, image, platform, max_size) -> Iterator[Image]:
    img = open_image(list(sources), image=image, platform=platform, max_size=max_size)
    try:
        yield img
    finally:
        img.close()


def _layer_index(img: Image, layer: int | None) -> int | None:
    if layer is None:
        return None
    count = len(img.layers)
    index = layer - 1 if layer > 0 else count + layer
    if layer == 0 or not 0 <= index < count:
        raise click.BadParameter(
            f"the image has layers 1 to {count} (or -1 for the top); got {layer}",
            param_hint="--layer",
        )
    return index


_image_options = [
    click.option("--image", "image", metavar="NAME",
                 help="Which image of a multi-image archive (a tag, or #N)."),
    click.option("--platform", metavar="OS/ARCH[/VARIANT]",
                 help="Which platform of a multi-platform index "
                      "(default: the host's)."),
    click.option("--max-size", metavar="SIZE",
                 help="Refuse a layer that decompresses to more than SIZE."),
    click.option("-j", "--jobs", type=click.IntRange(1, 256), default=None,
                 help="Worker processes for reading layers (default: all cores)."),
    click.option("--cache", "cache_dir", metavar="DIR", envvar="LAYERDIFF_CACHE",
                 help="Layer index cache directory (default: "
                      "$XDG_CACHE_HOME/layerdiff)."),
    click.option("--no-cache", is_flag=True,
                 help="Read every layer in full; neither use nor fill the cache."),
]  # fmt: skip


def _cache(cache_dir: str | None, no_cache: bool) -> LayerCache | None:
    if no_cache:
        return None
    return LayerCache(cache_dir or default_cache_dir())


def image_options(func):
    for option in reversed(_image_options):
        func = option(func)
    return func


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="layerdiff")
@click.option("-v", "--verbose", count=True, help="-v for INFO logs, -vv for DEBUG.")
def main(verbose: int) -> None:
    """Inspect container image layers, audit commits, guard image size."""
    level = logging.WARNING - 10 * min(verbose, 2)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("layerdiff: %(levelname)s: %(message)s"))
    logger = logging.getLogger("layerdiff")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


@main.command()
@click.argument("sources", nargs=-1, required=True, metavar="IMAGE [LAYER...]")
@click.option("--layer", type=int, help="Show the changes of layer N (1 = bottom).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@image_options
def inspect(
    sources, layer, as_json, image, platform, max_size, jobs, cache_dir, no_cache
) -> None:
    """Show every layer: history step, sizes, changes and waste.

    IMAGE is a docker save archive, an OCI layout (directory or tar) or,
    given several times, bare layer tars from the bottom up.

    \b
    Example:
      layerdiff inspect app.tar
      layerdiff inspect app.tar --layer 3
    """
    with _opened(sources, image, platform, _parse_size(max_size)) as img:
        index = _layer_index(img, layer)
        progress = _Progress("reading layers")
        try:
            report = inspect_image(
                img,
                max_size=_parse_size(max_size),
                jobs=jobs,
                progress=progress,
                cache=_cache(cache_dir, no_cache),
            )
        finally:
            progress.close()
    if as_json:
        data = render.inspect_json(report)
        if index is not None:
            data["layers"] = [data["layers"][index]]
        click.echo(render.to_json(data), nl=False)
    elif index is not None:
        click.echo(render.render_layer(report, report.layers[index]), nl=False)
    else:
        click.echo(render.render_inspect(report), nl=False)


@main.command()
@click.argument("sources", nargs=-1, required=True, metavar="IMAGE [LAYER...]")
@click.option(
    "--layer", type=int, help="List the merged view as of layer N (default: the top)."
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@image_options
def files(
    sources, layer, as_json, image, platform, max_size, jobs, cache_dir, no_cache
) -> None:
    """List the files of the merged view, with the layer each comes from.

    \b
    Example:
      layerdiff files app.tar
      layerdiff files app.tar --layer 2 --json
    """
    with _opened(sources, image, platform, _parse_size(max_size)) as img:
        index = _layer_index(img, layer)
        progress = _Progress("reading layers")
        try:
            view = merged_view(
                img,
                upto=index,
                max_size=_parse_size(max_size),
                jobs=jobs,
                progress=progress,
                cache=_cache(cache_dir, no_cache),
            )
        finally:
            progress.close()
    if as_json:
        click.echo(render.to_json(render.files_json(view)), nl=False)
    else:
        click.echo(render.render_files(view), nl=False)


def _terminate(signum, frame) -> None:
    # SIGTERM unwinds like Ctrl-C, so temporary outputs are removed.
    raise KeyboardInterrupt


def run() -> None:
    """Entry point: run the CLI and turn library errors into exit codes."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        main.main(standalone_mode=False)
    except LayerdiffError as exc:
        click.echo(f"layerdiff: {exc}", err=True)
        if exc.hint:
            click.echo(f"  {exc.hint}", err=True)
        sys.exit(ExitCode.ERROR)
    except click.exceptions.Abort:
        click.echo("layerdiff: interrupted", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(ExitCode.ERROR)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("layerdiff: interrupted", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(ExitCode.OK)
