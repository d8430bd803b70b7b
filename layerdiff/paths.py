"""Normalising entry names of a layer into paths of the merged view.

A path in layerdiff is relative to the image root, uses ``/``, has no
leading ``./`` or ``/``, no trailing ``/`` and no empty, ``.`` or ``..``
component. The root itself is the empty string.
"""

from __future__ import annotations

from .errors import UnsafePathError

__all__ = ["normalize", "parent", "basename", "join", "display", "MAX_PATH"]

# Linux's PATH_MAX. A longer name cannot be opened as one path, and a name of
# thousands of components would make its implied parents cost memory in
# proportion to the square of its length.
MAX_PATH = 4096


def normalize(name: str) -> str:
    """Return the canonical path for a tar entry name.

    Raises UnsafePathError for a ``..`` component or a NUL byte: such a
    name would escape the root when the layer is extracted.
    """
    # Nearly every name in a layer is already canonical but for a trailing
    # '/': no component starts with '.' (so none is '.' or '..'), none is
    # empty, and there is no NUL. Those are returned without splitting.
    if (
        "/." not in name
        and "//" not in name
        and name[:1] not in "./"
        and "\x00" not in name
        and len(name) <= MAX_PATH
    ):
        return name[:-1] if name[-1:] == "/" else name
    if "\x00" in name:
        raise UnsafePathError("entry name contains a NUL byte", entry=name)
    if len(name) > MAX_PATH:
        raise UnsafePathError(
            f"entry name is {len(name)} characters, longer than the "
            f"{MAX_PATH} a path may have",
            entry=name[:64] + "...",
        )
    parts = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise UnsafePathError(
                "entry name has a '..' component and would escape the root",
                entry=name,
            )
        parts.append(part)
    return "/".join(parts)


def parent(path: str) -> str:
    """Return the parent directory of a normalised path ('' for the root)."""
    cut = path.rfind("/")
    return path[:cut] if cut >= 0 else ""


def basename(path: str) -> str:
    """Return the last component of a normalised path."""
    return path[path.rfind("/") + 1 :]


def join(directory: str, name: str) -> str:
    """Join a normalised directory and one component."""
    return f"{directory}/{name}" if directory else name


def display(path: str) -> str:
    """Return the path as users see it inside the container: with a '/'."""
    return "/" + path
