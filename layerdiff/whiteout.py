"""Whiteouts and opaque directories, in OCI and overlayfs forms.

OCI image-spec, layer chapter: an entry named ``.wh.NAME`` deletes NAME and
everything under it from the layers below; an entry ``.wh..wh..opq`` inside
a directory makes that directory opaque, hiding all its lower children.
Other names starting with ``.wh.`` are reserved. Overlayfs instead writes a
whiteout as a character device 0/0 and marks an opaque directory with the
xattr ``trusted.overlay.opaque`` (``user.overlay.opaque`` with userxattr).
"""

from __future__ import annotations

from . import paths
from .errors import UnsafePathError

__all__ = [
    "WH_PREFIX",
    "OPAQUE_NAME",
    "OVERLAY_XATTR_PREFIXES",
    "OPAQUE_XATTRS",
    "parse_name",
    "whiteout_name",
    "opaque_name",
    "is_overlay_bookkeeping",
]

WH_PREFIX = ".wh."
OPAQUE_NAME = ".wh..wh..opq"
OVERLAY_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")
OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")


def parse_name(path: str) -> tuple[str, str] | None:
    """Classify a normalised entry path by its whiteout meaning.

    Returns None for an ordinary entry, ``("whiteout", target)`` for a
    whiteout, ``("opaque", directory)`` for an opaque marker and
    ``("reserved", path)`` for any other ``.wh.`` name. A whiteout of ``.``,
    ``..`` or of nothing would delete its own directory or its parent, so
    it raises UnsafePathError.
    """
    base = paths.basename(path)
    if not base.startswith(WH_PREFIX):
        return None
    directory = paths.parent(path)
    if base == OPAQUE_NAME:
        return ("opaque", directory)
    target = base[len(WH_PREFIX) :]
    if target in ("", ".", ".."):
        what = repr(target) if target else "an empty name"
        raise UnsafePathError(
            f"whiteout of {what} would delete its own directory or its parent",
            entry=path,
        )
    if target.startswith(WH_PREFIX):
        return ("reserved", path)
    return ("whiteout", paths.join(directory, target))


def whiteout_name(path: str) -> str:
    """Return the entry name of the OCI whiteout that deletes ``path``."""
    return paths.join(paths.parent(path), WH_PREFIX + paths.basename(path))


def opaque_name(directory: str) -> str:
    """Return the entry name of the OCI marker making ``directory`` opaque."""
    return paths.join(directory, OPAQUE_NAME)


def is_overlay_bookkeeping(xattr: str) -> bool:
    """Tell whether an xattr is overlayfs's own and must never be copied."""
    return xattr.startswith(OVERLAY_XATTR_PREFIXES)
