"""The merged view agrees with the kernel's overlayfs, entry for entry.

Each random stack of layers is written twice: as OCI layer tars, which
layerdiff reads, and as overlay lower dirs (whiteouts as 0/0 character
devices, opaque directories marked by xattr), which the kernel mounts
read-only. Walking the mount gives the kernel's merged view.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from strategies import stacks, write_overlay_dir

from layerdiff import open_image
from layerdiff.inspect import merged_view
from layerdiff.render import files_json


def _overlay_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "mounting overlayfs needs root"
    with tempfile.TemporaryDirectory(prefix="layerdiff-ovl-probe-") as tmp:
        lower = [os.path.join(tmp, name) for name in ("l1", "l2", "mnt")]
        for path in lower:
            os.mkdir(path)
        try:
            os.mknod(os.path.join(lower[0], "w"), stat.S_IFCHR, os.makedev(0, 0))
            os.setxattr(lower[0], "trusted.overlay.opaque", b"y")
        except OSError as exc:
            return f"cannot write overlay whiteouts here: {exc}"
        done = _mount(f"{lower[0]}:{lower[1]}", lower[2])
        if done.returncode != 0:
            return f"overlay mount failed: {done.stderr.strip()}"
        subprocess.run(["umount", lower[2]], check=True)
    return None


def _mount(lowerdirs: str, target: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", f"ro,lowerdir={lowerdirs}", target],
        capture_output=True,
        text=True,
        check=False,
    )


_REASON = _overlay_unavailable()
pytestmark = pytest.mark.skipif(_REASON is not None, reason=_REASON or "")


def _kernel_view(root: str) -> tuple[dict, set]:
    """Walk a mounted overlay; return entries and hard-link groups."""
    entries = {}
    inodes: dict[int, set[str]] = {}
    for directory, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(directory, name)
            rel = os.path.relpath(full, root)
            try:
                info = os.lstat(full)
            except FileNotFoundError:
                # A whiteout in a directory that only one layer has is
                # listed by readdir but not found by lookup: it is hidden.
                continue
            if stat.S_ISDIR(info.st_mode):
                kind = "dir"
            elif stat.S_ISLNK(info.st_mode):
                kind = "symlink"
            elif stat.S_ISREG(info.st_mode):
                kind = "file"
            else:
                kind = "other"
            item = {
                "type": kind,
                "mode": stat.S_IMODE(info.st_mode) if kind != "symlink" else None,
                "uid": info.st_uid,
                "gid": info.st_gid,
            }
            if kind == "symlink":
                item["linkname"] = os.readlink(full)
            if kind == "file":
                item["size"] = info.st_size
                item["sha256"] = hashlib.sha256(Path(full).read_bytes()).hexdigest()
                inodes.setdefault(info.st_ino, set()).add(rel)
            entries[rel] = item
    groups = {frozenset(g) for g in inodes.values() if len(g) > 1}
    return entries, groups


def _layerdiff_view(tars: list[str]) -> tuple[dict, set]:
    img = open_image(tars)
    try:
        view = merged_view(img)
    finally:
        img.close()
    entries = {}
    for item in files_json(view):
        kind = "file" if item["type"] == "hardlink" else item["type"]
        result = {
            "type": kind,
            "mode": item["mode"] if kind != "symlink" else None,
            "uid": item["uid"],
            "gid": item["gid"],
        }
        if kind == "symlink":
            result["linkname"] = item["linkname"]
        if kind == "file":
            result["size"] = item["size"]
            result["sha256"] = item["sha256"]
        entries[item["path"]] = result
    inodes: dict[int, set[str]] = {}
    for node in view.iter_nodes():
        if node.inode is not None:
            inodes.setdefault(node.inode.number, set()).add(node.entry.path)
    groups = {frozenset(g) for g in inodes.values() if len(g) > 1}
    return entries, groups


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(stacks(max_layers=5))
def test_merged_view_equals_the_kernels_overlay_mount(specs):
    with tempfile.TemporaryDirectory(prefix="layerdiff-ovl-") as tmp:
        tars, lowers = [], []
        for number, spec in enumerate(specs):
            tars.append(str(spec.builder().build(Path(tmp, f"layer{number}.tar"))))
            lower = os.path.join(tmp, f"lower{number}")
            write_overlay_dir(spec, lower)
            lowers.append(lower)
        # Overlayfs needs two lower dirs without an upper one; an empty
        # bottom dir changes nothing.
        empty = os.path.join(tmp, "empty")
        os.mkdir(empty)
        target = os.path.join(tmp, "merged")
        os.mkdir(target)
        done = _mount(":".join(reversed([empty] + lowers)), target)
        assert done.returncode == 0, done.stderr
        try:
            kernel = _kernel_view(target)
        finally:
            subprocess.run(["umount", target], check=True)

        ours = _layerdiff_view(tars)

    assert ours[0] == kernel[0]
    assert ours[1] == kernel[1]
