"""Writing outputs atomically: a temporary file renamed into place.

An interrupted or failed run leaves nothing half-written: the temporary
file lives next to the target (so the rename stays on one filesystem) and
is removed on any error, including KeyboardInterrupt.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from typing import BinaryIO, Iterator

from .errors import OutputError

__all__ = ["atomic_output", "same_file"]


@contextmanager
def atomic_output(path: str, mode: int = 0o644) -> Iterator[BinaryIO]:
    """Yield a binary file that becomes ``path`` only if the block succeeds."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, temporary = tempfile.mkstemp(
            prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory
        )
    except OSError as exc:
        raise OutputError(f"cannot write here: {exc.strerror}", source=path) from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise


def same_file(output: str, inputs: list[str]) -> bool:
    """Tell whether ``output`` is, or is inside, one of the inputs."""
    target = os.path.realpath(output)
    for source in inputs:
        real = os.path.realpath(source)
        if target == real or target.startswith(real.rstrip("/") + "/"):
            return True
    return False
