"""Writing outputs atomically: a temporary file renamed into place.

An interrupted or failed run leaves nothing half-written: the temporary
file lives next to the target (so the rename stays on one filesystem) and
is removed on any error, including KeyboardInterrupt.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import BinaryIO

from .errors import OutputError, UsageError

__all__ = [
    "atomic_output",
    "same_file",
    "check_outputs",
    "temporary_in",
    "replace",
    "start_writeback",
]


@contextmanager
def atomic_output(path: str, mode: int = 0o644) -> Iterator[BinaryIO]:
    """Yield a binary file that becomes ``path`` only if the block succeeds."""
    fd, temporary = temporary_in(path, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        replace(temporary, path)
    except BaseException as exc:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):  # a full disk, a directory gone
            raise OutputError(
                f"cannot write: {exc.strerror or exc}", source=path
            ) from exc
        raise


def start_writeback(fd: int) -> None:
    """Start writing a file's changed pages to disk, without waiting.

    A hint for a large output written before its fsync: the disk works
    while the rest is written. Linux only; elsewhere it does nothing.
    """
    call = _sync_file_range()
    if call is not None:
        call(fd, 0, 0, _SYNC_FILE_RANGE_WRITE)  # a failed hint costs nothing


_SYNC_FILE_RANGE_WRITE = 2


@functools.cache
def _sync_file_range():
    try:
        import ctypes

        call = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (ImportError, OSError, AttributeError):
        return None
    call.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    return call


def temporary_in(path: str, *, suffix: str = "") -> tuple[int, str]:
    """Create a temporary file next to ``path``; return its descriptor and name."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        return tempfile.mkstemp(
            prefix=f".{os.path.basename(path)}.", suffix=suffix, dir=directory
        )
    except OSError as exc:
        raise OutputError(f"cannot write here: {exc.strerror}", source=path) from exc


def replace(temporary: str, path: str) -> None:
    """Rename a finished temporary file to ``path``, or say why it cannot be."""
    try:
        os.replace(temporary, path)
    except OSError as exc:
        raise OutputError(f"cannot write here: {exc.strerror}", source=path) from exc


def _identity(path: str | int) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def _places(output: str) -> set[tuple[int, int]]:
    """Return the identities of ``output`` and of every directory holding it.

    The chain is followed with ``..`` from the nearest existing directory,
    not by resolving the name: ``/proc/PID/root`` is a link that reads as
    ``/`` for a process in another mount namespace, yet it is that
    process's root, not ours.
    """
    found = set()
    own = _identity(output)
    if own is not None:
        found.add(own)
    directory = os.path.dirname(os.path.abspath(output))
    while not os.path.isdir(directory) and directory != os.path.dirname(directory):
        directory = os.path.dirname(directory)
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return found
    try:
        for _ in range(4096):
            st = os.fstat(fd)
            here = (st.st_dev, st.st_ino)
            if here in found:
                break  # the root is its own parent
            found.add(here)
            parent = os.open("..", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = parent
    finally:
        os.close(fd)
    return found


def same_file(output: str, inputs: Iterable[str]) -> bool:
    """Tell whether ``output`` is, or is inside, one of the inputs.

    Files are compared by device and inode, so neither symlinks nor
    ``/proc/PID/root`` mislead it.
    """
    wanted = {i for i in map(_identity, inputs) if i is not None}
    return bool(wanted) and not wanted.isdisjoint(_places(output))


def check_outputs(outputs: dict[str, str | None], inputs: Iterable[str]) -> None:
    """Refuse outputs that would overwrite an input or each other.

    ``outputs`` maps each option to its file; ``None`` and ``-`` (stdout)
    are skipped.
    """
    inputs = [i for i in inputs if i]
    seen: dict[object, str] = {}
    for option, target in outputs.items():
        if not target or target == "-":
            continue
        if same_file(target, inputs):
            raise UsageError(
                f"{option} would overwrite an input or write inside it", source=target
            )
        keys = [os.path.abspath(target), _identity(target)]
        for key in keys:
            if key is not None and key in seen:
                raise UsageError(
                    f"{seen[key]} and {option} name the same file", source=target
                )
        for key in keys:
            if key is not None:
                seen[key] = option
