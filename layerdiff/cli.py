"""The command line: parse options, call the library, render, map errors."""

from __future__ import annotations

import enum
import logging
import signal
import sys
from contextlib import contextmanager
from typing import Iterator

import click

from . import render
from .archive import Image, open_image
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
                 help="Refuse a layer that decompresses to more than SIZE."),
    click.option("-j", "--jobs", type=click.IntRange(1, 256), default=None,
                 help="Worker processes for reading layers (default: all cores)."),
]  # fmt: skip


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
def inspect(sources, layer, as_json, image, platform, max_size, jobs) -> None:
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
                img, max_size=_parse_size(max_size), jobs=jobs, progress=progress
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
def files(sources, layer, as_json, image, platform, max_size, jobs) -> None:
    """List the files of the merged view, with the layer each comes from.

    \b
    Example:
      layerdiff files app.tar
      layerdiff files app.tar --layer 2 --json
    """
    with _opened(sources, image, platform, _parse_size(max_size)) as img:
        index = _layer_index(img, layer)
        view = merged_view(img, upto=index, max_size=_parse_size(max_size), jobs=jobs)
    if as_json:
        click.echo(render.to_json(render.files_json(view)), nl=False)
    else:
        click.echo(render.render_files(view), nl=False)


# Container upper dirs: what changed, what a commit loses, and the commit.

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


def container_options(func):
    for option in reversed(_container_options):
        func = option(func)
    return func


def _read_container(upper, merged, base, lowers, volumes, binds, inspect_file,
                    keep_stubs, image, platform):  # fmt: skip
    from . import mounts
    from .commit import read_container

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
        rows = plan.changes + container.volume_writes
    finally:
        container.close()
    if as_json:
        data = [row.to_json() for row in rows]
        click.echo(render.to_json(data), nl=False)
    else:
        click.echo(render.render_changes(rows, plan.lower_known), nl=False)
    if fail_on_uncommitted and any(not row.committed for row in rows):
        raise click.exceptions.Exit(ExitCode.FINDINGS)


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
        click.echo(render.to_json(data), nl=False)
    else:
        if json_out:
            from .output import atomic_output

            with atomic_output(json_out) as handle:
                handle.write(render.to_json(data).encode())
        click.echo(render.render_commit(result), nl=False)
    if verify and result.problems:
        raise click.exceptions.Exit(ExitCode.FINDINGS)


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
