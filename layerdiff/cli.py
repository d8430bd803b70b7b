"""The command line: parse options, call the library, render, map errors."""

from __future__ import annotations

import enum
import logging
import re
import signal
import sys
from contextlib import contextmanager
from typing import Iterator

import click

from . import render
from .archive import Image, open_image
from .blobs import DEFAULT_MAX_SIZE
from .errors import LayerdiffError, OutputError
from .inspect import inspect_image, merged_view
from .output import atomic_output, same_file

__all__ = ["main", "ExitCode"]


class ExitCode(enum.IntEnum):
    """Exit statuses, documented in the README."""

    OK = 0
    FINDINGS = 1  # the check asked for failed: findings, budget, differences
    ERROR = 2  # bad input, bad usage, or an output that cannot be written
    INTERRUPTED = 130


def _parse_size(text: str | None) -> int | None:
    if text is None or text.strip().lower() in ("none", "unlimited"):
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
    """A one-line progress bar on stderr, only when stderr is a terminal."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.enabled = sys.stderr.isatty()
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
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
                 default=f"{DEFAULT_MAX_SIZE >> 30}GiB", show_default=True,
                 help="Refuse a layer that decompresses to more than SIZE "
                      "('none' for no limit)."),
    click.option("-j", "--jobs", type=click.IntRange(1, 256), default=None,
                 help="Worker processes for reading layers (default: all cores)."),
]  # fmt: skip


_output_option = click.option(
    "-o", "--output", type=click.Path(dir_okay=False),
    help="Write the report to this file (atomically) instead of stdout.",
)  # fmt: skip

# Characters a hostile entry name may carry that must not reach a terminal
# raw: C0 controls but newline and tab, DEL, C1 controls, and the lone
# surrogates that stand for bytes that are not UTF-8 (or came from JSON).
_UNPRINTABLE = re.compile("[\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f\\ud800-\\udfff]")


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # one undecodable byte
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _check_output(output: str | None, sources) -> None:
    """Refuse, before any work, an output that would overwrite an input."""
    if output is not None and same_file(output, list(sources)):
        raise OutputError(
            "the output would overwrite an input or be written inside one",
            source=output,
            hint="choose an output path outside the inputs",
        )


def _emit(text: str, output: str | None) -> None:
    """Write a report to stdout, or atomically to the output file."""
    text = _UNPRINTABLE.sub(_escape, text)
    if output is None:
        click.echo(text, nl=False)
        return
    with atomic_output(output) as handle:
        handle.write(text.encode("utf-8"))


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
@_output_option
@image_options
def inspect(sources, layer, as_json, output, image, platform, max_size, jobs) -> None:
    """Show every layer: history step, sizes, changes and waste.

    IMAGE is a docker save archive, an OCI layout (directory or tar) or,
    given several times, bare layer tars from the bottom up.

    \b
    Example:
      layerdiff inspect app.tar
      layerdiff inspect app.tar --layer 3
    """
    _check_output(output, sources)
    with _opened(sources, image, platform, _parse_size(max_size)) as img:
        index = _layer_index(img, layer)
        progress = _Progress("reading layers")
        try:
            report = inspect_image(
                img, max_size=_parse_size(max_size), jobs=jobs, progress=progress
            )
        finally:
            progress.close()
    if as_json:
        data = render.inspect_json(report)
        if index is not None:
            data["layers"] = [data["layers"][index]]
        _emit(render.to_json(data), output)
    elif index is not None:
        _emit(render.render_layer(report, report.layers[index]), output)
    else:
        _emit(render.render_inspect(report), output)


@main.command()
@click.argument("sources", nargs=-1, required=True, metavar="IMAGE [LAYER...]")
@click.option(
    "--layer", type=int, help="List the merged view as of layer N (default: the top)."
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@_output_option
@image_options
def files(sources, layer, as_json, output, image, platform, max_size, jobs) -> None:
    """List the files of the merged view, with the layer each comes from.

    \b
    Example:
      layerdiff files app.tar
      layerdiff files app.tar --layer 2 --json
    """
    _check_output(output, sources)
    with _opened(sources, image, platform, _parse_size(max_size)) as img:
        index = _layer_index(img, layer)
        view = merged_view(img, upto=index, max_size=_parse_size(max_size), jobs=jobs)
    if as_json:
        _emit(render.to_json(render.files_json(view)), output)
    else:
        _emit(render.render_files(view), output)


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
        # One line, like every other error, and a hint where click has one.
        message = " ".join(exc.format_message().split())
        click.echo(f"layerdiff: {message}", err=True)
        context = getattr(exc, "ctx", None)
        if context is not None:
            click.echo(f"  see '{context.command_path} --help'", err=True)
        sys.exit(ExitCode.ERROR)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("layerdiff: interrupted", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(ExitCode.OK)
