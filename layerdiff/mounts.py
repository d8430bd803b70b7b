"""What a commit of a container will not capture, and why.

A commit packages the upper dir only. Writes into volumes and bind mounts
land outside it; the engine bind-mounts runtime files (``/etc/hosts`` and
friends) over the container's own; ``/proc``, ``/sys``, ``/dev`` and tmpfs
mounts are virtual filesystems. Mounts come from ``--volume`` and
``--mount`` flags, from the JSON of ``docker inspect`` / ``podman inspect``
of a container, or from an OCI runtime ``config.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from . import paths
from .errors import LayerdiffError, UsageError

__all__ = [
    "VOLUME",
    "BIND_MOUNT",
    "RUNTIME_FILE",
    "VIRTUAL_FS",
    "STUB",
    "UNDER_MOUNT_POINT",
    "RUNTIME_FILES",
    "Mount",
    "MountTable",
    "read_inspect",
    "parse_mount",
]

VOLUME = "volume"
BIND_MOUNT = "bind-mount"
RUNTIME_FILE = "runtime-file"
VIRTUAL_FS = "virtual-fs"
STUB = "stub"
UNDER_MOUNT_POINT = "under-mount-point"

# Bind-mounted by docker or podman into every container.
RUNTIME_FILES = (
    "etc/hosts",
    "etc/hostname",
    "etc/resolv.conf",
    "run/secrets",
    ".dockerenv",
    "run/.containerenv",
)
_VIRTUAL = ("proc", "sys", "dev")
_VIRTUAL_TYPES = {"proc", "sysfs", "tmpfs", "devpts", "mqueue", "cgroup", "cgroup2"}


@dataclass(frozen=True, slots=True)
class Mount:
    """A path of the container whose content lives outside the upper dir."""

    destination: str
    reason: str
    source: str | None = None


@dataclass
class MountTable:
    """Every mount of a container, plus the overlay dirs when inspect gave them."""

    mounts: list[Mount] = field(default_factory=list)
    upper_dir: str | None = None
    lower_dirs: list[str] = field(default_factory=list)
    merged_dir: str | None = None

    @classmethod
    def defaults(cls) -> MountTable:
        """Return the mounts every container has without being told."""
        table = cls()
        for path in RUNTIME_FILES:
            table.add(Mount(path, RUNTIME_FILE))
        for path in _VIRTUAL:
            table.add(Mount(path, VIRTUAL_FS))
        return table

    def add(self, mount: Mount) -> None:
        """Add a mount; a later one for the same destination replaces it."""
        self.mounts = [m for m in self.mounts if m.destination != mount.destination]
        self.mounts.append(mount)

    def merge(self, other: MountTable) -> None:
        for mount in other.mounts:
            self.add(mount)
        self.upper_dir = self.upper_dir or other.upper_dir
        self.lower_dirs = self.lower_dirs or other.lower_dirs
        self.merged_dir = self.merged_dir or other.merged_dir

    def covering(self, path: str) -> Mount | None:
        """Return the deepest mount at or above ``path``, if any."""
        best = None
        for mount in self.mounts:
            dest = mount.destination
            covers = path == dest or path.startswith(dest + "/") or dest == ""
            if covers and (best is None or len(dest) > len(best.destination)):
                best = mount
        return best

    def is_kernel_fs(self, path: str) -> bool:
        """Tell whether ``path`` lies in /proc, /sys or /dev, never walked.

        Their content is the kernel's, not the container's; a tmpfs mount
        elsewhere is walked, so what was written into it can be listed.
        """
        mount = self.covering(path)
        if mount is None or mount.reason != VIRTUAL_FS:
            return False
        top = path.split("/", 1)[0]
        return top in _VIRTUAL


def _destination(text: str, what: str) -> str:
    if not text.startswith("/"):
        raise UsageError(f"{what} must be an absolute path in the container: {text!r}")
    return paths.normalize(text)


def parse_mount(text: str, *, volume: bool) -> Mount:
    """Parse ``--volume PATH`` (or ``SRC:PATH``) and ``--mount SRC:DST``."""
    source, sep, dest = text.rpartition(":")
    if not sep:
        if not volume:
            raise UsageError(f"--mount takes SRC:DST, got {text!r}")
        return Mount(_destination(text, "--volume"), VOLUME)
    reason = VOLUME if volume else BIND_MOUNT
    return Mount(_destination(dest, "the mount destination"), reason, source or None)


def read_inspect(path: str) -> MountTable:
    """Read ``docker``/``podman inspect`` JSON or an OCI runtime config.json."""
    try:
        with open(path, "rb") as handle:
            data = json.load(handle)
    except OSError as exc:
        raise LayerdiffError(f"cannot read: {exc.strerror}", source=path) from exc
    except ValueError as exc:
        raise LayerdiffError(f"not JSON: {exc}", source=path) from exc
    if isinstance(data, list):
        if len(data) != 1 or not isinstance(data[0], dict):
            raise UsageError(
                f"inspect JSON describes {len(data)} containers; give one", source=path
            )
        data = data[0]
    if not isinstance(data, dict):
        raise UsageError("not the inspect JSON of a container", source=path)
    if "ociVersion" in data or ("mounts" in data and "Mounts" not in data):
        return _from_oci_config(data)
    if "Mounts" in data or "GraphDriver" in data:
        return _from_inspect(data)
    raise UsageError(
        "neither docker/podman inspect JSON of a container nor an OCI config.json",
        source=path,
    )


def _from_inspect(data: dict[str, Any]) -> MountTable:
    table = MountTable()
    graph = (data.get("GraphDriver") or {}).get("Data") or {}
    table.upper_dir = graph.get("UpperDir") or None
    lower = graph.get("LowerDir") or ""
    table.lower_dirs = [d for d in lower.split(":") if d]
    table.merged_dir = graph.get("MergedDir") or None
    for item in data.get("Mounts") or []:
        if not isinstance(item, dict) or not item.get("Destination"):
            continue
        kind = item.get("Type")
        reason = {"volume": VOLUME, "tmpfs": VIRTUAL_FS}.get(kind, BIND_MOUNT)
        dest = _destination(item["Destination"], "a mount destination")
        if reason == BIND_MOUNT and dest in RUNTIME_FILES:
            reason = RUNTIME_FILE
        source = item.get("Source") if reason != VIRTUAL_FS else None
        table.add(Mount(dest, reason, source or None))
    tmpfs = (data.get("HostConfig") or {}).get("Tmpfs") or {}
    for dest in tmpfs:
        table.add(Mount(_destination(dest, "a tmpfs destination"), VIRTUAL_FS))
    return table


def _from_oci_config(data: dict[str, Any]) -> MountTable:
    table = MountTable()
    for item in data.get("mounts") or []:
        if not isinstance(item, dict) or not item.get("destination"):
            continue
        dest = _destination(item["destination"], "a mount destination")
        kind = item.get("type") or ""
        source = item.get("source") or None
        if kind in _VIRTUAL_TYPES:
            reason = VIRTUAL_FS
            source = None
        elif dest in RUNTIME_FILES:
            reason = RUNTIME_FILE
        elif source and "/volumes/" in source:
            reason = VOLUME  # a named volume is a bind of the volume's _data
        else:
            reason = BIND_MOUNT
        table.add(Mount(dest, reason, source))
    return table
