"""Test-only helpers: real kernel overlay mounts over a base image's rootfs."""

from __future__ import annotations

import hashlib
import os
import subprocess
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from layerdiff.classify import apply_layer
from layerdiff.tree import MergedView
from layerdiff.upperdir import read_merged_root


def require_overlay() -> None:
    """Skip the test unless this process may mount a kernel overlay."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount an overlay")
    with open("/proc/filesystems") as handle:
        if "overlay" not in handle.read():
            pytest.skip("the kernel has no overlay filesystem")


def unpack(layer_tar: bytes, root: Path) -> None:
    """Extract a layer into ``root`` as a container engine would.

    A hard link's own header carries a mode and owner that extraction must
    not apply to the shared inode (tarfile would chmod through the link).
    """
    import io

    root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(layer_tar)) as tar:
        members = tar.getmembers()
        owners = {m.name: (m.mode, m.uid, m.gid) for m in members if m.isfile()}

        def as_engine(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo:
            if member.islnk() and member.linkname in owners:
                mode, uid, gid = owners[member.linkname]
                return member.replace(mode=mode, uid=uid, gid=gid, deep=False)
            return member

        tar.extractall(root, filter=as_engine)


@contextmanager
def overlay(lower: Path, work: Path) -> Iterator[tuple[Path, Path]]:
    """Mount an overlay on ``lower`` with an empty upper dir; yield (upper, merged)."""
    upper, scratch, merged = work / "upper", work / "work", work / "merged"
    for directory in (upper, scratch, merged):
        directory.mkdir(parents=True)
    options = f"lowerdir={lower},upperdir={upper},workdir={scratch}"
    subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", options, str(merged)], check=True
    )
    try:
        yield upper, merged
    finally:
        subprocess.run(["umount", "-R", str(merged)], check=True)


@contextmanager
def bind(source: Path, target: Path) -> Iterator[None]:
    subprocess.run(["mount", "--bind", str(source), str(target)], check=True)
    try:
        yield
    finally:
        subprocess.run(["umount", str(target)], check=True)


def tree_view(root: Path) -> MergedView:
    """Return the merged view of a directory tree as it stands."""
    walked = read_merged_root(str(root), MergedView())
    walked.hash_all()  # content is read on demand; a view compares it
    view = MergedView()
    apply_layer(view, walked.changeset, 0)
    return view


def without(view: MergedView, excluded: list[str]) -> MergedView:
    """Remove the given paths and their subtrees from a view."""
    for path in excluded:
        view.remove(path, "deleted")
    return view


def hash_tree(root: Path) -> str:
    """Hash every name, stat field, xattr and byte under ``root``."""
    digest = hashlib.sha256()
    for directory, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(dirs + files):
            full = os.path.join(directory, name)
            st = os.lstat(full)
            digest.update(full.encode("utf-8", "surrogateescape"))
            fields = (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns)
            digest.update(repr((fields, st.st_rdev, st.st_nlink)).encode())
            for key in sorted(os.listxattr(full, follow_symlinks=False)):
                value = os.getxattr(full, key, follow_symlinks=False)
                digest.update(key.encode() + value)
            if os.path.isfile(full) and not os.path.islink(full):
                with open(full, "rb") as handle:
                    digest.update(handle.read())
    return digest.hexdigest()


_PIVOT = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
MS_REC, MS_PRIVATE, MNT_DETACH, PIVOT_ROOT = 1 << 14, 1 << 18, 2, 155
assert libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) == 0
os.chdir(sys.argv[1])
assert libc.syscall(PIVOT_ROOT, b".", b".") == 0
assert libc.umount2(b".", MNT_DETACH) == 0
os.chdir("/")
print("ready", flush=True)
sys.stdin.read()
"""


@contextmanager
def process_rooted_at(root: Path) -> Iterator[int]:
    """Run a process whose root is ``root`` in its own mount namespace.

    Its root is pivoted as a container runtime does, so ``/proc/PID/root``
    reads as ``/`` from here; yield its PID.
    """
    import platform
    import shutil
    import sys

    if shutil.which("unshare") is None or platform.machine() != "x86_64":
        pytest.skip("needs unshare(1) and the x86_64 pivot_root syscall number")
    child = subprocess.Popen(
        ["unshare", "--mount", sys.executable, "-c", _PIVOT, str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        if child.stdout.readline() != b"ready\n":
            pytest.skip("could not pivot a process into the overlay")
        yield child.pid
    finally:
        child.stdin.close()
        child.wait()
