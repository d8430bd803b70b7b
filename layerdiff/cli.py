"""The command line: parse options, call the library, render, map errors."""

from __future__ import annotations

import ctypes
import enum
import functools
import logging
import os
import re
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import click

from . import render, render_ci
from .analyses.audit import DEFAULT_LARGE, audit_image
from .analyses.budget import check_budgets, read_baseline
from .analyses.compare import NOISE, compare_images
from .analyses.why import why_path
from .archive import Image, open_image
from .blobs import DEFAULT_MAX_SIZE
from .cache import LayerCache, default_cache_dir
from .config import budgets_from, find_config, load_settings
from .errors import LayerdiffError, UsageError
from .inspect import inspect_image
from .output import atomic_output, check_outputs
from .tree import MergedView

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
    """A one-line progress bar on stderr, only when stderr is a terminal.

    It appears once a run has taken a second, so quick runs stay silent,
    and is redrawn at most ten times a second however often it is told.
    """

    def __init__(self, label: str, delay: float = 1.0) -> None:
        self.label = label
        self.enabled = sys.stderr.isatty()
        self.shown = False
        self.start = time.monotonic()
        self.delay = delay
        self.drawn = 0.0

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        now = time.monotonic()
        if not self.shown and now - self.start < self.delay:
            return
        if now - self.drawn < 0.1 and done < total:
            return
        self.drawn = now
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
    click.option("--cache", "cache_dir", metavar="DIR", envvar="LAYERDIFF_CACHE",
                 help="Layer index cache directory (default: "
                      "$XDG_CACHE_HOME/layerdiff)."),
    click.option("--no-cache", is_flag=True,
                 help="Read every layer in full; neither use nor fill the cache."),
]  # fmt: skip


def _configure_logging(verbose: int, *, more_only: bool = False) -> None:
    """Send the library's logs to stderr; ``more_only`` never lowers detail."""
    level = logging.WARNING - 10 * min(verbose, 2)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("layerdiff: %(levelname)s: %(message)s"))
    logger = logging.getLogger("layerdiff")
    logger.handlers[:] = [handler]
    if more_only and logger.level:
        level = min(level, logger.level)
    logger.setLevel(level)
    logger.propagate = False


def _verbose_callback(ctx, param, value: int) -> None:
    if value:
        _configure_logging(value, more_only=True)


verbose_option = click.option(
    "-v",
    "--verbose",
    count=True,
    expose_value=False,
    callback=_verbose_callback,
    help="-v for INFO logs, -vv for DEBUG (also before the command).",
)


def _cache(cache_dir: str | None, no_cache: bool) -> LayerCache | None:
    if no_cache:
        return None
    return LayerCache(cache_dir or default_cache_dir())


@dataclass(frozen=True)
class ImageReading:
    """How a command opens and reads images: the options image_options adds."""

    image: str | None
    platform: str | None
    max_size: int | None
    jobs: int | None
    cache: LayerCache | None


def image_options(func=None, *, size_limit: bool = True):
    """Add --image, --platform, --max-size (unless ``size_limit`` is off), -j,
    --cache and --no-cache, given to the command as one ``reading``."""

    def decorate(func):
        @functools.wraps(func)
        def command(*args, image, platform, jobs, cache_dir, no_cache, **kwargs):
            max_size = _parse_size(kwargs.pop("max_size")) if size_limit else None
            cache = _cache(cache_dir, no_cache)
            reading = ImageReading(image, platform, max_size, jobs, cache)
            return func(*args, reading=reading, **kwargs)

        command = verbose_option(command)
        for option in reversed(_image_options):
            if not size_limit and option is _image_options[2]:
                continue
            command = option(command)
        return command

    return decorate(func) if func is not None else decorate


# Characters a hostile entry name may carry that must not reach a terminal
# or a file raw: C0 controls but newline and tab (JSON already escapes
# those inside strings), DEL, C1 controls, and the lone surrogates that
# stand for bytes that are not UTF-8 and cannot be encoded.
_UNPRINTABLE = re.compile("[\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f\\ud800-\\udfff]")


def _escape(match: re.Match) -> str:
    # A \uXXXX escape reads the same in a table and is valid inside a JSON
    # string, where json.loads turns it back into the same name.
    return f"\\u{ord(match.group()):04x}"


# Options that name files the command writes, and those that name files or
# directories it reads. Every output is checked against every input, and
# against the other outputs, before anything is read.
_OUTPUT_PARAMS = ("output", "junit", "json_out", "layer_out")
_INPUT_PARAMS = ("sources", "old", "new", "baseline", "config_path", "upper",
                 "merged", "base", "lowers", "inspect_file")  # fmt: skip


def _refuse_overwrites(command: click.Command, params: dict) -> None:
    """Refuse an output that would overwrite an input or another output."""
    labels = {p.name: max(p.opts, key=len) for p in command.params if p.opts}
    outputs = {
        labels[name]: params[name]
        for name in _OUTPUT_PARAMS
        if isinstance(params.get(name), str)
    }
    if not outputs:
        return
    inputs: list[str] = []
    for name in _INPUT_PARAMS:
        value = params.get(name)
        if isinstance(value, str):
            inputs.append(value)
        elif isinstance(value, (list, tuple)):
            inputs.extend(v for v in value if isinstance(v, str))
    config = None
    if "config_path" in params:
        config = params["config_path"] or find_config()  # read by default
    if config is not None:
        inputs.append(config)
    check_outputs(outputs, inputs)
    if config is not None and params.get("baseline") is None:
        # A baseline named in the settings file is an input as well.
        baseline = load_settings(config).budgets.baseline
        if baseline is not None:
            check_outputs(outputs, [baseline])


class _Command(click.Command):
    def invoke(self, ctx: click.Context):
        _refuse_overwrites(self, ctx.params)
        return super().invoke(ctx)


class _Interrupted(Exception):
    """Ctrl-C or SIGTERM, carried past click, which would print a blank line."""


class _Group(click.Group):
    command_class = _Command

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise _Interrupted from None


def _emit(text: str | bytes, output: str | None) -> None:
    """Write a report to stdout (no ``output``, or ``-``), or atomically to it."""
    if isinstance(text, str):
        text = _UNPRINTABLE.sub(_escape, text)
    if output is None or output == "-":
        _echo(text if isinstance(text, str) else text.decode())
        return
    with atomic_output(output) as handle:
        handle.write(text.encode() if isinstance(text, str) else text)


class _StdoutClosed(Exception):
    """The reader of stdout went away; not an error of the run."""


def _echo(text: str) -> None:
    """Write to stdout; a closed pipe ends the run quietly (see run)."""
    try:
        click.echo(text, nl=False)
    except BrokenPipeError as exc:
        # Raised as another type: click would turn it into exit status 1.
        raise _StdoutClosed from exc


def _emit_json(data: object, output: str | None) -> None:
    """Write a report as JSON, piece by piece, to stdout or atomically."""
    if output is None or output == "-":
        render.write_json(data, lambda text: _echo(_UNPRINTABLE.sub(_escape, text)))
        return
    with atomic_output(output) as handle:
        render.write_json(
            data, lambda text: handle.write(_UNPRINTABLE.sub(_escape, text).encode())
        )


_output_option = click.option(
    "-o",
    "--output",
    metavar="FILE",
    help="Write the report to FILE, not stdout ('-': stdout).",
)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="layerdiff")
@click.option("-v", "--verbose", count=True, help="-v for INFO logs, -vv for DEBUG.")
def main(verbose: int) -> None:
    """Inspect container image layers, audit commits, guard image size."""
    _configure_logging(verbose)


@main.command()
@click.argument("sources", nargs=-1, required=True, metavar="IMAGE [LAYER...]")
@click.option("--layer", type=int, help="Show the changes of layer N (1 = bottom).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@_output_option
@image_options
def inspect(
    sources, layer, as_json, output, reading
) -> None:  # fmt: skip
    """Show every layer: history step, sizes, changes and waste.

    IMAGE is a docker save archive, an OCI layout (directory or tar) or,
    given several times, bare layer tars from the bottom up.

    \b
    Example:
      layerdiff inspect app.tar
      layerdiff inspect app.tar --layer 3
    """
    report, _ = _inspected(sources, reading, layer=layer)
    index = None
    if layer is not None:  # already checked against the layer count
        index = layer - 1 if layer > 0 else len(report.layers) + layer
    if as_json:
        data = render.inspect_json(report)
        if index is not None:
            data["layers"] = [data["layers"][index]]
        _emit_json(data, output)
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
def files(
    sources, layer, as_json, output, reading
) -> None:  # fmt: skip
    """List the files of the merged view, with the layer each comes from.

    \b
    Example:
      layerdiff files app.tar
      layerdiff files app.tar --layer 2 --json
    """
    _, view = _inspected(sources, reading, layer=layer, upto=True)
    if as_json:
        _emit_json(render.files_json(view), output)
    else:
        _emit(render.render_files(view), output)


# Options that describe a container: its upper dir or merged root, its lower
# side and its mounts (changes, commit, and audit of a pending commit).
_container_options = [
    click.option("--merged", "merged", metavar="DIR",
                 help="The container's merged root (such as /proc/PID/root) "
                      "instead of an upper dir; compared with the base."),
    click.option("--base", metavar="IMAGE",
                 help="The image the container runs (any archive inspect reads)."),
    click.option("--lower", "lowers", metavar="DIR", multiple=True,
                 help="An overlay lower dir, top first; repeat for each."),
    click.option("--volume", "volumes", metavar="[SRC:]PATH", multiple=True,
                 help="A volume mounted at PATH (SRC: its host directory)."),
    click.option("--mount", "binds", metavar="SRC:DST", multiple=True,
                 help="A bind mount of SRC at DST."),
    click.option("--inspect", "inspect_file", metavar="FILE",
                 help="docker/podman inspect JSON of the container, or an OCI "
                      "runtime config.json: upper, lower dirs and mounts."),
    click.option("--keep-stubs", is_flag=True,
                 help="Commit the empty files and mount-point directories that "
                      "runtimes leave behind."),
    click.option("--image", "image", metavar="NAME",
                 help="Which image of a multi-image base archive."),
    click.option("--platform", metavar="OS/ARCH[/VARIANT]",
                 help="Which platform of a multi-platform base."),
]  # fmt: skip


def container_options(func=None, *, base_selection: bool = True):
    """Add --merged, --base, --lower, --volume, --mount, --inspect and
    --keep-stubs, and --image and --platform unless ``base_selection`` is off
    (a command whose image options already name them)."""

    def decorate(func):
        for option in reversed(_container_options):
            if not base_selection and option in _container_options[-2:]:
                continue
            func = option(func)
        return func

    return decorate(func) if func is not None else decorate


# --- Audit, budgets, comparison and provenance -------------------------------


def _one_format(**flags: bool) -> str | None:
    chosen = [name for name, on in flags.items() if on]
    if len(chosen) > 1:
        raise click.UsageError(
            "choose one output format: " + ", ".join("--" + c for c in chosen)
        )
    return chosen[0] if chosen else None


def _inspected(sources, reading: ImageReading, *, layer=None, upto=False):
    """Open one image and return its inspect report and merged view.

    ``sources`` is one archive or layout, or several bare layer tars.
    ``layer`` (as the user numbers it) is checked before anything is read;
    with ``upto`` the reading stops after that layer.
    """
    sources = [sources] if isinstance(sources, str) else list(sources)
    with _opened(sources, reading.image, reading.platform, reading.max_size) as img:
        index = _layer_index(img, layer)
        view = MergedView()
        progress = _Progress(f"reading {', '.join(sources)}")
        try:
            report = inspect_image(
                img,
                max_size=reading.max_size,
                jobs=reading.jobs,
                progress=progress,
                view=view,
                cache=reading.cache,
                upto=index if upto else None,
            )
        finally:
            progress.close()
    return report, view


_sources_argument = click.argument(
    "sources", nargs=-1, required=True, metavar="IMAGE [LAYER...]"
)
_config_option = click.option(
    "--config",
    "config_path",
    metavar="FILE",
    help="Settings file (default: .layerdiff.toml, else [tool.layerdiff] in "
    "pyproject.toml, in the current directory).",
)


@main.command()
@click.argument("sources", nargs=-1, metavar="[IMAGE [LAYER...]]")
@click.option("--upper", "upper", metavar="UPPER",
              help="Audit the commit of this upper dir (or tar of one) "
                   "instead of an image.")  # fmt: skip
@container_options(base_selection=False)
@click.option(
    "--fail-on",
    type=click.Choice(["error", "warning", "info", "none"]),
    help="Exit 1 when a finding at or above this severity exists (default: error).",
)
@click.option("--large", metavar="SIZE",
              help="Report files of at least SIZE (default 50MB).")  # fmt: skip
@click.option("--disable", "disable", multiple=True, metavar="RULE",
              help="Switch a rule off by id; repeatable.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@click.option("--sarif", is_flag=True, help="Print a SARIF 2.1.0 log.")
@click.option("--markdown", is_flag=True, help="Print a pull-request comment.")
@_output_option
@_config_option
@image_options
def audit(
    sources, upper, merged, base, lowers, volumes, binds, inspect_file, keep_stubs,
    fail_on, large, disable, as_json, sarif, markdown, output, config_path, reading,
) -> None:  # fmt: skip
    """Find secrets, waste, risky permissions and broken layer rules.

    Secrets are found in every layer, deleted ones included: their bytes
    stay in the image. Exit 1 when a finding at or above --fail-on exists.

    With --upper, --merged or --inspect instead of IMAGE, audit the image a
    commit of the container would produce (its base plus the pending layer)
    without writing it, and report what the commit would leave out.

    \b
    Example:
      layerdiff audit app.tar
      layerdiff audit app.tar --fail-on warning --sarif -o audit.sarif
      layerdiff audit --upper /var/lib/docker/overlay2/ID/diff --base app.tar
    """
    fmt = _one_format(json=as_json, sarif=sarif, markdown=markdown)
    settings = load_settings(config_path)
    fail_on = fail_on or settings.fail_on or "error"
    threshold = _parse_size(large) if large else settings.large or DEFAULT_LARGE
    pending = upper is not None or merged is not None or inspect_file is not None
    container_flags = base or lowers or volumes or binds or keep_stubs
    if pending and sources:
        raise UsageError(
            "give either IMAGE or --upper/--merged/--inspect, not both",
            hint="the base image of a pending commit is named with --base",
        )
    if not pending and container_flags:
        raise UsageError(
            "--base, --lower, --volume, --mount and --keep-stubs describe a "
            "container: give --upper, --merged or --inspect as well"
        )
    if not pending and not sources:
        raise UsageError(
            "nothing to audit: give IMAGE, or --upper, --merged or --inspect "
            "for a container's pending commit"
        )
    uncommitted, notes = [], []
    if pending:
        report, view, uncommitted, notes = _pending(
            upper, merged, base, lowers, volumes, binds, inspect_file, keep_stubs,
            reading.image, reading.platform, max_size=reading.max_size,
            jobs=reading.jobs, cache=reading.cache,
        )  # fmt: skip
    else:
        report, view = _inspected(sources, reading)
    result = audit_image(
        report,
        view,
        large=threshold,
        disabled=set(disable) | settings.disable,
        uncommitted=uncommitted,
        notes=notes,
    )
    if fmt == "json":
        _emit_json(render.audit_json(report, result, fail_on), output)
    elif fmt == "sarif":
        _emit(render_ci.audit_sarif(report, result), output)
    elif fmt == "markdown":
        _emit(render_ci.audit_markdown(report, result, fail_on), output)
    else:
        _emit(render.render_audit(report, result, fail_on), output)
    if result.fails(fail_on):
        sys.exit(ExitCode.FINDINGS)


def _pending(*container_args, **reading):
    """Read a container and return the image its commit would produce."""
    from .pending import pending_image

    container = _read_container(*container_args, **reading)
    try:
        pending = pending_image(container)
    finally:
        container.close()
    return pending.report, pending.view, pending.uncommitted, pending.notes


@main.command()
@_sources_argument
@click.option(
    "--max-size",
    "budget_size",
    metavar="SIZE",
    help="Largest uncompressed image size, e.g. 200MB.",
)
@click.option(
    "--max-layer-size",
    metavar="SIZE",
    help="Largest uncompressed size of any one layer.",
)
@click.option("--max-layers", metavar="N", help="Most layers allowed.")
@click.option(
    "--max-wasted",
    metavar="SIZE",
    help="Most bytes shipped but unused (shadowed, deleted, copied).",
)
@click.option(
    "--min-efficiency",
    metavar="RATIO",
    help="Least share of shipped file bytes used, e.g. 95%.",
)
@click.option(
    "--baseline",
    metavar="FILE",
    help="inspect --json (or baseline) output of an earlier build.",
)
@click.option(
    "--max-growth", metavar="5%|10MB", help="Most growth allowed over the baseline."
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("--markdown", is_flag=True, help="Print a markdown summary.")
@click.option("--junit", metavar="FILE", help="Also write a JUnit XML report.")
@_output_option
@_config_option
@image_options(size_limit=False)
def check(
    sources, budget_size, max_layer_size, max_layers, max_wasted, min_efficiency,
    baseline, max_growth, as_json, markdown, junit, output, config_path, reading,
) -> None:  # fmt: skip
    """Check size budgets, and growth against a baseline, for CI.

    Exit 0 when every budget holds, 1 when one is exceeded, 2 on bad input.

    \b
    Example:
      layerdiff check app.tar --max-size 200MB --max-layers 12
      layerdiff check app.tar --baseline base.json --max-growth 5% --junit r.xml
    """
    fmt = _one_format(json=as_json, markdown=markdown)
    settings = load_settings(config_path)
    given = budgets_from(
        {
            "max-size": budget_size,
            "max-layer-size": max_layer_size,
            "max-layers": max_layers,
            "max-wasted": max_wasted,
            "min-efficiency": min_efficiency,
            "max-growth": max_growth,
            "baseline": baseline,
        }
    )
    budgets = settings.budgets.merged(given)
    if budgets.baseline is not None and budgets.max_growth is None:
        raise UsageError(
            "a baseline needs a growth budget: add --max-growth (e.g. 5% or 10MB) "
            "or max-growth in the config file"
        )
    if not budgets.any_set():
        raise UsageError(
            "no budget given: use --max-size, --max-layer-size, --max-layers, "
            "--max-wasted, --min-efficiency, --max-growth or a config file"
        )
    recorded = read_baseline(budgets.baseline) if budgets.baseline else None
    report, view = _inspected(sources, reading)
    result = check_budgets(report, budgets, view=view, baseline=recorded)
    if junit:
        _emit(render_ci.check_junit(report, result), junit)
    if fmt == "json":
        _emit_json(render.check_json(report, result), output)
    elif fmt == "markdown":
        _emit(render_ci.check_markdown(report, result), output)
    else:
        _emit(render.render_check(report, result), output)
    if not result.passed:
        sys.exit(ExitCode.FINDINGS)


@main.command()
@_sources_argument
@click.option("-o", "--output", metavar="FILE", required=True,
              help="Where to write the baseline JSON ('-': stdout).")  # fmt: skip
@image_options
def baseline(sources, output, reading) -> None:
    """Record an image's sizes as a baseline for check --max-growth.

    The baseline is the same JSON as inspect --json.

    \b
    Example:
      layerdiff baseline app.tar -o layerdiff-baseline.json
    """
    report, _ = _inspected(sources, reading)
    _emit_json(render.inspect_json(report), output)


@main.command()
@click.argument("old", metavar="OLD")
@click.argument("new", metavar="NEW")
@click.option(
    "--depth",
    type=click.IntRange(0, 64),
    default=2,
    show_default=True,
    help="Roll differences up to directories this deep.",
)
@click.option(
    "--ignore",
    multiple=True,
    metavar="GLOB",
    help="Leave out paths matching GLOB (and what is below); repeatable.",
)
@click.option(
    "--ignore-noise",
    is_flag=True,
    help="Leave out logs, caches and other paths every build changes.",
)
@click.option(
    "--limit",
    type=click.IntRange(0),
    default=50,
    show_default=True,
    help="Paths to list (0: all).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
@_output_option
@_config_option
@image_options
def compare(
    old, new, depth, ignore, ignore_noise, limit, as_json, output, config_path,
    reading,
) -> None:  # fmt: skip
    """Compare two images: paths added, removed and changed, and their layers.

    Exit 0 when the images are identical (after --ignore), 1 when not.

    \b
    Example:
      layerdiff compare app-1.0.tar app-1.1.tar --ignore-noise
      layerdiff compare old.tar new.tar --depth 3 --ignore '/usr/share/doc/*'
    """
    settings = load_settings(config_path)
    patterns = list(settings.ignore) + list(ignore)
    if ignore_noise or settings.ignore_noise:
        patterns += NOISE
    old_report, old_view = _inspected(old, reading)
    new_report, new_view = _inspected(new, reading)
    result = compare_images(
        old_report, old_view, new_report, new_view, depth=depth, ignore=patterns
    )
    shown = None if as_json or limit == 0 else limit
    if as_json:
        _emit(
            render.to_json(
                render.compare_json(old_report, new_report, result, limit=shown)
            ),
            output,
        )
    else:
        _emit(
            render.render_compare(old_report, new_report, result, limit=shown), output
        )
    if not result.identical:
        sys.exit(ExitCode.FINDINGS)


@main.command()
@click.argument("sources", nargs=-1, required=True, metavar="IMAGE [LAYER...]")
@click.argument("path")
@click.option("--json", "as_json", is_flag=True, help="Print the provenance as JSON.")
@image_options
def why(sources, path, as_json, reading) -> None:
    """Show which layers added, replaced, re-owned or deleted one path.

    Works for deleted paths too: it names the layer that still holds them.
    With bare layer tars, give them bottom first and the path last.

    \b
    Example:
      layerdiff why app.tar /usr/lib/libssl.so.3
      layerdiff why base.tar app.tar /etc/app.conf
    """
    report, view = _inspected(sources, reading)
    result = why_path(report, view, path)
    if as_json:
        _emit_json(render.why_json(report, result), None)
    else:
        _emit(render.render_why(report, result), None)


# --- Container upper dirs: changes and commit ----------------------------------


def _read_container(upper, merged, base, lowers, volumes, binds, inspect_file,
                    keep_stubs, image, platform, **reading):  # fmt: skip
    from . import mounts
    from .changes import read_container

    table = mounts.MountTable.defaults()
    if inspect_file:
        table.merge(mounts.read_inspect(inspect_file))
    for text in volumes:
        table.add(mounts.parse_mount(text, volume=True))
    for text in binds:
        table.add(mounts.parse_mount(text, volume=False))
    return read_container(
        upper,
        merged=merged,
        base=base,
        lowers=lowers,
        table=table,
        keep_stubs=keep_stubs,
        image=image,
        platform=platform,
        **reading,
    )


@main.command()
@click.argument("upper", required=False, metavar="[UPPER]")
@container_options
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.option("--fail-on-uncommitted", is_flag=True,
              help="Exit 1 when a commit would lose anything.")  # fmt: skip
def changes(upper, merged, base, lowers, volumes, binds, inspect_file, keep_stubs,
            image, platform, as_json, fail_on_uncommitted) -> None:  # fmt: skip
    """Show what a container changed and whether a commit captures it.

    UPPER is an overlay upper dir or a tar of one (tar --xattrs).

    \b
    Example:
      layerdiff changes /var/lib/docker/overlay2/ID/diff --base app.tar
      layerdiff changes --inspect inspect.json --base app.tar --json
    """
    container = _read_container(upper, merged, base, lowers, volumes, binds,
                                inspect_file, keep_stubs, image, platform)  # fmt: skip
    try:
        plan = container.plan
        rows = container.all_changes()
    finally:
        container.close()
    if as_json:
        data = [row.to_json() for row in rows]
        _emit_json(data, None)
    else:
        _emit(render.render_changes(rows, plan.lower_known), None)
    lost = [row for row in rows if row.loses_content]
    if fail_on_uncommitted and lost:
        sys.exit(ExitCode.FINDINGS)


@main.command()
@click.argument("upper", required=False, metavar="[UPPER]")
@container_options
@click.option(
    "-o", "--output", required=True, metavar="OUT", help="Where to write the new image."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["docker", "oci"]),
    help="Archive format (default: the base's).",
)
@click.option(
    "--compression",
    type=click.Choice(["gzip", "zstd", "none"]),
    help="Layer compression (default: gzip for oci, none for docker).",
)
@click.option("--layer-out", metavar="FILE", help="Also write the layer blob here.")
@click.option(
    "--json",
    "json_out",
    metavar="FILE",
    help="Write the commit's JSON to FILE ('-' for stdout).",
)
@click.option(
    "-c",
    "--change",
    "config_changes",
    multiple=True,
    metavar="INSTR",
    help="Edit the config as docker commit --change does: CMD, "
    "ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR.",
)
@click.option("-m", "--message", help="The history step's comment.")
@click.option("-a", "--author", help="The image author.")
@click.option("-t", "--tag", help="The name of the new image (repo:tag).")
@click.option("--verify", is_flag=True,
              help="Build the layer twice and compare, then read the image "
                   "back and check its merged view.")  # fmt: skip
def commit(upper, merged, base, lowers, volumes, binds, inspect_file, keep_stubs,
           image, platform, output, fmt, compression, layer_out, json_out,
           config_changes, message, author, tag, verify) -> None:  # fmt: skip
    """Write the base image plus one new layer made from an upper dir.

    \b
    Example:
      layerdiff commit UPPER --base app.tar -o app-new.tar
      layerdiff commit --inspect inspect.json --base app.tar -o new.tar \\
          --change 'CMD ["/app/run"]' --json -
    """
    from .commit import commit_container

    if base is None:
        raise click.UsageError("commit needs --base IMAGE")
    container = _read_container(upper, merged, base, lowers, volumes, binds,
                                inspect_file, keep_stubs, image, platform)  # fmt: skip
    try:
        outputs = {"-o": output, "--layer-out": layer_out, "--json": json_out}
        check_outputs(outputs, container.inputs())
        result = commit_container(
            container,
            output,
            fmt=fmt,
            compression=compression,
            layer_out=layer_out,
            changes=config_changes,
            message=message,
            author=author,
            tag=tag,
            verify=verify,
        )
    finally:
        container.close()
    data = render.commit_json(result)
    if json_out == "-":
        _emit_json(data, None)
    else:
        if json_out:
            _emit(render.to_json(data), json_out)
        _emit(render.render_commit(result), None)
    if verify and result.problems:
        sys.exit(ExitCode.FINDINGS)


def _terminate(signum, frame) -> None:
    # SIGTERM unwinds like Ctrl-C, so temporary outputs are removed.
    raise KeyboardInterrupt


def _interrupted() -> None:
    # One line; on a terminal it starts over the ^C the terminal echoed.
    start = "\r" if sys.stderr.isatty() else ""
    click.echo(f"{start}layerdiff: interrupted", err=True)
    sys.exit(ExitCode.INTERRUPTED)


def _fix_mmap_threshold() -> None:
    """Keep glibc from moving large arrays into its heap as they grow.

    glibc raises its mmap threshold each time a large block is freed, so
    the merged view's arrays, grown and copied many times, end up in the
    heap, where the holes they leave are never given back: on a million
    entries that was a sixth of the peak memory. A fixed threshold keeps
    them in their own mappings. Elsewhere than glibc this does nothing.
    """
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(-3, 128 << 10)  # M_MMAP_THRESHOLD, glibc's default
    except (OSError, AttributeError):
        pass


def run() -> None:
    """Entry point: run the CLI and turn library errors into exit codes."""
    signal.signal(signal.SIGTERM, _terminate)
    _fix_mmap_threshold()
    try:
        # Outside standalone mode click returns, rather than raises, the
        # code of a click Exit; it is the process's exit status all the same.
        code = main.main(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except LayerdiffError as exc:
        click.echo(f"layerdiff: {exc}", err=True)
        if exc.hint:
            click.echo(f"  {exc.hint}", err=True)
        sys.exit(ExitCode.ERROR)
    except (click.exceptions.Abort, _Interrupted, KeyboardInterrupt):
        _interrupted()
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
    except (BrokenPipeError, _StdoutClosed):
        # Nothing more can be written; keep the exit quiet, stdout included.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.stderr.close()
        sys.exit(ExitCode.OK)
    except OSError as exc:  # stdout on a full disk, say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        reason = exc.strerror or exc
        click.echo(f"layerdiff: cannot write the output: {reason}", err=True)
        sys.exit(ExitCode.ERROR)
