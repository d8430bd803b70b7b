"""Reading an overlay upper dir, or a tar of one, as the changeset of a layer.

The kernel writes a whiteout as a character device 0/0 (all whiteouts of
one upper dir share a single inode, so they look like hard links of each
other; they are not). Newer kernels may instead write a zero-size regular
file carrying the ``overlay.whiteout`` xattr. An opaque directory carries
``trusted.overlay.opaque`` (``user.overlay.opaque`` with userxattr) set to
``y``. fuse-overlayfs and AUFS-style stores write ``.wh.NAME`` files, and
fuse-overlayfs marks every directory it creates as opaque, in up to three
ways at once: the xattr, a ``.wh..wh..opq`` file and a ``.wh..opq`` device.
A directory that is new is not a replaced one, so an opaque mark only
counts where the lower side has a directory at that path.

Overlay redirects (a renamed directory whose content stays in the lower
dir) and metacopy files (metadata only; the data is in a lower dir) cannot
be read from the upper dir alone: they are refused with a hint to read the
merged root instead.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from . import paths, whiteout
from .errors import LayerdiffError, UnsafePathError, UnsupportedOverlayError
from .model import Changeset, Entry, EntryType, Finding, Severity
from .tree import Inode, MergedView, Node

__all__ = [
    "UpperDir",
    "read_upperdir",
    "read_merged_root",
    "is_bookkeeping_xattr",
]

log = logging.getLogger(__name__)

Opener = Callable[[], BinaryIO]
# What a regular file's listing said: size, mtime and ctime in nanoseconds.
Stamp = tuple[int, int, int]

# Bookkeeping of overlayfs and fuse-overlayfs: never reported, never copied.
_BOOKKEEPING_PREFIXES = whiteout.OVERLAY_XATTR_PREFIXES + ("user.fuseoverlayfs.",)
_WHITEOUT_XATTRS = ("trusted.overlay.whiteout", "user.overlay.whiteout")
_REDIRECT_XATTRS = ("trusted.overlay.redirect", "user.overlay.redirect")
_METACOPY_XATTRS = ("trusted.overlay.metacopy", "user.overlay.metacopy")
_ORIGIN_XATTRS = (
    "trusted.overlay.origin",
    "user.overlay.origin",
    "user.fuseoverlayfs.origin",
)
_FUSE_OPAQUE_DEVICE = ".wh..opq"
_CHUNK = 1 << 20


def is_bookkeeping_xattr(name: str) -> bool:
    """Tell whether an xattr is the overlay's own and must not be copied."""
    return name.startswith(_BOOKKEEPING_PREFIXES)


@dataclass
class UpperDir:
    """An upper dir read as a changeset, with a way to open each file's data.

    ``copied_up`` holds paths that carry an overlay origin xattr: they were
    copied up from a lower dir, so they are modifications even when the
    lower side is unknown. ``lower_known`` tells whether opaque marks were
    checked against the lower side.

    File content is not read when the upper dir is: ``sha256`` reads a
    file the first time its hash is asked for and keeps it on the entry.
    ``stamps`` holds what the listing said of each file of a directory, so
    a later read can tell whether the file changed since.
    """

    source: str
    changeset: Changeset
    content: dict[str, Opener] = field(default_factory=dict)
    copied_up: set[str] = field(default_factory=set)
    lower_known: bool = False
    mtime: int = 0
    sockets: list[str] = field(default_factory=list)
    stamps: dict[str, Stamp] = field(default_factory=dict)
    # Hard links of a tar whose data is that of another entry.
    same_data: dict[str, Entry] = field(default_factory=dict)

    def open(self, path: str) -> BinaryIO:
        """Open the data of the regular file at ``path``."""
        return self.content[path]()

    def disk_path(self, path: str) -> str | None:
        """Return where the file at ``path`` lies on disk, if it is read there.

        None for the files of a tar, whose data only ``open`` reaches.
        """
        opener = self.content.get(path)
        return opener.path if isinstance(opener, _FileOpener) else None

    def sha256(self, entry: Entry) -> str | None:
        """Return the sha256 of an entry's content, reading it if not known.

        None for what has no content of its own here (a directory, or a
        hard link of a directory walk).
        """
        if entry.sha256 is None:
            target = self.same_data.get(entry.path)
            if target is not None and entry.type is EntryType.HARDLINK:
                entry.sha256 = self.sha256(target)
            elif entry.type is EntryType.FILE and entry.path in self.content:
                opener = self.content[entry.path]
                entry.sha256 = _hash(opener, self.source, entry.path)
        return entry.sha256

    def hash_all(self) -> None:
        """Read and hash every file now (for a view that is kept)."""
        for entry in self.changeset.entries:
            self.sha256(entry)


@dataclass(slots=True)
class _Raw:
    """One item of an upper dir before whiteouts are interpreted."""

    path: str
    kind: EntryType
    mode: int
    uid: int
    gid: int
    size: int
    mtime: int
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    xattrs: dict[str, bytes] = field(default_factory=dict)
    inode: tuple[int, int] | None = None
    opener: Opener | None = None
    stamp: Stamp | None = None


def _hash(opener: Opener, source: str, path: str) -> str:
    digest = hashlib.sha256()
    try:
        with opener() as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    except (OSError, tarfile.TarError) as exc:
        detail = getattr(exc, "strerror", None) or str(exc)
        raise LayerdiffError(
            f"cannot read: {detail}", source=source, entry="/" + path
        ) from exc
    return digest.hexdigest()


class _FileOpener:
    """Opens one file of a directory, and says which (``UpperDir.disk_path``)."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self) -> BinaryIO:
        # Unbuffered: readers ask for large blocks, or exactly what they need.
        return open(self.path, "rb", buffering=0)


def _file_opener(path: str) -> Opener:
    return _FileOpener(path)


def _read_xattrs(path: str) -> dict[str, bytes]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    found = {}
    for name in names:
        try:
            found[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue  # vanished, or a namespace we may not read
    return found


# Sockets are missing: they cannot be stored in a layer.
_KINDS = {
    stat.S_IFREG: EntryType.FILE,
    stat.S_IFDIR: EntryType.DIR,
    stat.S_IFLNK: EntryType.SYMLINK,
    stat.S_IFCHR: EntryType.CHAR,
    stat.S_IFBLK: EntryType.BLOCK,
    stat.S_IFIFO: EntryType.FIFO,
}


def _raw_from_stat(full: str, path: str, st: os.stat_result) -> _Raw | None:
    kind = _KINDS.get(stat.S_IFMT(st.st_mode))
    if kind is None:
        return None
    raw = _Raw(
        path,
        kind,
        stat.S_IMODE(st.st_mode),
        st.st_uid,
        st.st_gid,
        st.st_size if kind is EntryType.FILE else 0,
        int(st.st_mtime),
        xattrs=_read_xattrs(full),
    )
    if kind is EntryType.FILE:
        raw.opener = _file_opener(full)
        raw.stamp = (st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if st.st_nlink > 1:
            raw.inode = (st.st_dev, st.st_ino)
    elif kind is EntryType.SYMLINK:
        raw.linkname = os.readlink(full)
    elif kind in (EntryType.CHAR, EntryType.BLOCK):
        raw.devmajor, raw.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    return raw


def _walk_directory(
    root: str,
    skip: Callable[[str], bool] | None = None,
    sockets: list[str] | None = None,
) -> Iterator[_Raw]:
    """Yield every item under ``root`` (not the root itself), parents first.

    Sockets cannot be stored in a layer: their paths go to ``sockets``.
    """
    stack = [""]
    while stack:
        directory = stack.pop()
        full_dir = os.path.join(root, directory) if directory else root
        try:
            with os.scandir(full_dir) as listing:
                names = sorted(item.name for item in listing)
        except OSError as exc:
            raise LayerdiffError(
                f"cannot list directory: {exc.strerror}", source=root, entry=directory
            ) from exc
        subdirs = []
        prefix = directory + "/" if directory else ""
        full_prefix = os.path.join(full_dir, "")
        for name in names:
            path = prefix + name
            if skip is not None and skip(path):
                continue
            full = full_prefix + name
            try:
                st = os.lstat(full)
                raw = _raw_from_stat(full, path, st)
            except FileNotFoundError:
                continue  # removed since the directory was listed: not there
            except OSError as exc:
                raise LayerdiffError(
                    f"cannot read: {exc.strerror}", source=root, entry="/" + path
                ) from exc
            if raw is None:
                log.info("%s: /%s is a socket; a layer cannot hold it", root, path)
                if sockets is not None:
                    sockets.append(path)
                continue
            yield raw
            if raw.kind is EntryType.DIR:
                subdirs.append(path)
        stack.extend(reversed(subdirs))


def _walk_tar(source: str) -> Iterator[_Raw]:
    """Yield every member of a tar of an upper dir (made with --xattrs)."""
    try:
        tar = tarfile.open(source, "r:*")
    except (OSError, tarfile.TarError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) else "not a tar archive"
        raise LayerdiffError(
            f"not a directory or a readable tar of an upper dir ({detail})",
            source=source,
        ) from exc
    try:
        yield from _tar_members(tar, source)
    except tarfile.TarError as exc:
        raise LayerdiffError(
            f"unreadable tar of an upper dir: {exc}", source=source
        ) from exc


def _tar_members(tar: tarfile.TarFile, source: str) -> Iterator[_Raw]:
    kinds = {
        tarfile.REGTYPE: EntryType.FILE,
        tarfile.AREGTYPE: EntryType.FILE,
        tarfile.CONTTYPE: EntryType.FILE,
        tarfile.DIRTYPE: EntryType.DIR,
        tarfile.SYMTYPE: EntryType.SYMLINK,
        tarfile.LNKTYPE: EntryType.HARDLINK,
        tarfile.CHRTYPE: EntryType.CHAR,
        tarfile.BLKTYPE: EntryType.BLOCK,
        tarfile.FIFOTYPE: EntryType.FIFO,
    }
    for info in tar:
        try:
            path = paths.normalize(info.name)
        except LayerdiffError as exc:
            raise exc.located(source=source)
        kind = kinds.get(info.type)
        if not path or kind is None:
            continue
        xattrs = {
            key[len("SCHILY.xattr.") :]: value.encode("utf-8", "surrogateescape")
            for key, value in info.pax_headers.items()
            if key.startswith("SCHILY.xattr.")
        }
        raw = _Raw(
            path=path,
            kind=kind,
            mode=info.mode & 0o7777,
            uid=info.uid,
            gid=info.gid,
            size=info.size if kind is EntryType.FILE else 0,
            mtime=int(info.mtime),
            devmajor=info.devmajor,
            devminor=info.devminor,
            xattrs=xattrs,
        )
        if kind is EntryType.HARDLINK:
            raw.linkname = paths.normalize(info.linkname)
        elif kind is EntryType.SYMLINK:
            raw.linkname = info.linkname
        elif kind is EntryType.FILE:
            raw.opener = _tar_opener(tar, info)
        yield raw


def _tar_opener(tar: tarfile.TarFile, info: tarfile.TarInfo) -> Opener:
    def opener() -> BinaryIO:
        handle = tar.extractfile(info)
        assert handle is not None
        return handle

    return opener


def _is_whiteout(raw: _Raw) -> bool:
    if raw.kind is EntryType.CHAR and raw.devmajor == 0 and raw.devminor == 0:
        return True
    return (
        raw.kind is EntryType.FILE
        and raw.size == 0
        and any(name in raw.xattrs for name in _WHITEOUT_XATTRS)
    )


def _refuse(raw: _Raw, source: str, what: str) -> UnsupportedOverlayError:
    return UnsupportedOverlayError(
        f"upper dir uses overlay {what}; its content is in a lower dir",
        source=source,
        entry="/" + raw.path,
        hint="read the container's merged root instead: --merged DIR "
        "(for example /proc/PID/root, or the MergedDir of inspect)",
    )


def read_upperdir(source: str, *, lower: MergedView | None = None) -> UpperDir:
    """Read an upper dir (a directory, or a tar of one) as a changeset.

    ``lower`` is the merged view below the upper dir; with it, an opaque
    mark on a directory that is new is dropped, so the changeset says what
    the upper dir really did.
    """
    upper = UpperDir(source, Changeset(), lower_known=lower is not None)
    if os.path.isdir(source):
        items = _walk_directory(source, sockets=upper.sockets)
    elif os.path.isfile(source):
        items = _walk_tar(source)
    elif os.path.exists(source):
        # A FIFO or a device would block or never end: never open one.
        raise LayerdiffError("not a directory or a regular tar file", source=source)
    else:
        raise LayerdiffError("no such upper dir or tar", source=source)

    changeset = upper.changeset
    opaque: set[str] = set()
    by_inode: dict[tuple[int, int], str] = {}
    named: dict[str, Entry] = {}
    for raw in items:
        if raw.mtime > upper.mtime:
            upper.mtime = raw.mtime
        xattrs = raw.xattrs  # most items have none: their checks are skipped
        if xattrs:
            for name in _REDIRECT_XATTRS:
                if name in xattrs:
                    raise _refuse(raw, source, "redirect (a renamed directory)")
            for name in _METACOPY_XATTRS:
                if name in xattrs:
                    raise _refuse(raw, source, "metacopy (a metadata-only copy-up)")
        base = paths.basename(raw.path)
        if (xattrs or raw.kind is EntryType.CHAR) and _is_whiteout(raw):
            if base == _FUSE_OPAQUE_DEVICE:
                opaque.add(paths.parent(raw.path))
            else:
                changeset.whiteouts.append(raw.path)
            continue
        if base.startswith(whiteout.WH_PREFIX):
            try:
                meaning = whiteout.parse_name(raw.path)
            except LayerdiffError as exc:
                raise exc.located(source=source)
            assert meaning is not None
            kind, target = meaning
            if kind == "opaque":
                opaque.add(target)
            elif kind == "whiteout":
                changeset.whiteouts.append(target)
            else:
                changeset.findings.append(
                    Finding(
                        "reserved-whiteout-name",
                        "name uses the reserved .wh. prefix but is not a "
                        "whiteout; it is left out",
                        Severity.WARNING,
                        path=raw.path,
                    )
                )
            continue
        if xattrs:
            if raw.kind is EntryType.DIR and any(
                xattrs.get(name) == b"y" for name in whiteout.OPAQUE_XATTRS
            ):
                opaque.add(raw.path)
            if any(name in xattrs for name in _ORIGIN_XATTRS):
                upper.copied_up.add(raw.path)
        entry = _entry_of(raw)
        if raw.inode is not None:
            # Names sharing an inode: the first in path order carries the
            # data, the others become hard links to it.
            first = by_inode.setdefault(raw.inode, raw.path)
            if first != raw.path:
                entry = _hardlink(entry, first)
        twice = raw.path in named
        if twice:
            # A tar may hold a path twice; extracting it, the last one wins.
            log.info("%s: /%s appears twice; the last one is used", source, raw.path)
            upper.content.pop(raw.path, None)
            upper.stamps.pop(raw.path, None)
        if entry.type is EntryType.FILE and raw.opener is not None:
            upper.content[raw.path] = raw.opener
            if raw.stamp is not None:
                upper.stamps[raw.path] = raw.stamp
        named[raw.path] = entry

    changeset.entries = list(named.values())
    _resolve_tar_hardlinks(upper)
    _check_links(upper, lower)
    present = {e.path: e for e in changeset.entries}
    for directory in sorted(opaque):
        entry = present.get(directory)
        if directory and (entry is None or entry.type is not EntryType.DIR):
            continue  # an opaque mark without its directory means nothing
        if lower is not None:
            below = lower.get(directory)
            if below is None or below.data_type is not EntryType.DIR:
                continue  # a new directory has nothing below it to hide
        changeset.opaque_dirs.append(directory)
    changeset.entries.sort(key=lambda e: (e.type is EntryType.HARDLINK, e.path))
    changeset.whiteouts.sort()
    log.info(
        "read upper dir %s: %d entries, %d whiteouts, %d opaque directories",
        source,
        len(changeset.entries),
        len(changeset.whiteouts),
        len(changeset.opaque_dirs),
    )
    return upper


def _entry_of(raw: _Raw) -> Entry:
    xattrs = raw.xattrs and {
        key: value
        for key, value in sorted(raw.xattrs.items())
        if not is_bookkeeping_xattr(key)
    }
    return Entry(
        path=raw.path,
        type=raw.kind,
        mode=raw.mode,
        uid=raw.uid,
        gid=raw.gid,
        size=raw.size,
        mtime=raw.mtime,
        linkname=raw.linkname,
        xattrs=xattrs or None,
        devmajor=raw.devmajor,
        devminor=raw.devminor,
    )


def _hardlink(entry: Entry, target: str) -> Entry:
    entry.type = EntryType.HARDLINK
    entry.linkname = target
    entry.size = 0
    return entry


def _resolve_tar_hardlinks(upper: UpperDir) -> None:
    """Make the first name of each inode carry the data, as for a directory.

    A tar names the first name it met as the file and the others as links
    to it; re-pointing them makes a tar of an upper dir read exactly like
    the upper dir itself.
    """
    entries = {e.path: e for e in upper.changeset.entries}
    groups: dict[str, list[Entry]] = {}
    for entry in upper.changeset.entries:
        if entry.type is EntryType.HARDLINK and entry.linkname in entries:
            groups.setdefault(entry.linkname, []).append(entry)
    for target, links in groups.items():
        data = entries[target]
        if data.type is not EntryType.FILE:
            continue
        first = min([data] + links, key=lambda e: e.path)
        if first is not data:
            first.type, data.type = EntryType.FILE, EntryType.HARDLINK
            first.size, data.size = data.size, 0
            first.linkname = ""
            upper.content[first.path] = upper.content.pop(data.path)
        for entry in [data] + links:
            if entry is not first:
                entry.linkname = first.path
                upper.same_data[entry.path] = first


def _check_links(upper: UpperDir, lower: MergedView | None) -> None:
    """Refuse entries that would reach outside the paths they name.

    An entry below a symlink (``lnk -> /etc`` then ``lnk/passwd``) would be
    written through the link by whoever extracts the layer, and a hard link
    must point at a file of this layer or of the lower side. A real upper
    dir has neither; a tar claiming to be one may.
    """
    entries = {e.path: e for e in upper.changeset.entries}
    safe: set[str] = set()  # directories with no symlink at or above them
    for entry in upper.changeset.entries:
        parent = paths.parent(entry.path)
        walked = []
        while parent and parent not in safe:
            walked.append(parent)
            above = entries.get(parent)
            below = lower.get(parent) if lower is not None and above is None else None
            if (above is not None and above.type is EntryType.SYMLINK) or (
                below is not None and below.data_type is EntryType.SYMLINK
            ):
                raise UnsafePathError(
                    f"lies below the symlink /{parent}; writing it would follow "
                    "the link",
                    source=upper.source,
                    entry="/" + entry.path,
                )
            parent = paths.parent(parent)
        safe.update(walked)
        if entry.type is not EntryType.HARDLINK:
            continue
        target = entries.get(entry.linkname)
        node = lower.get(entry.linkname) if lower is not None else None
        if target is None and node is not None:
            kind = node.data_type
        else:
            kind = target.type if target is not None else None
        if kind is None or kind is EntryType.DIR:
            raise UnsafePathError(
                f"hard link to /{entry.linkname}, which is not a file of this "
                "upper dir" + (" or of the base" if lower is not None else ""),
                source=upper.source,
                entry="/" + entry.path,
            )


def read_merged_root(
    source: str,
    base: MergedView,
    *,
    skip: Callable[[str], bool] | None = None,
) -> UpperDir:
    """Compare a container's merged root with the base and return the changes.

    Paths for which ``skip`` is true are not walked (virtual filesystems).
    A path of the base that is gone becomes a whiteout (only the topmost
    one of a deleted subtree); a path whose type, content or metadata
    differs becomes an entry. Directory mtimes are not compared: they move
    whenever a child changes. The directories holding a change become
    entries too, as an upper dir holds them (``docker diff`` lists them as
    changed).
    """
    if not os.path.isdir(source):
        raise LayerdiffError("the merged root is not a directory", source=source)

    upper = UpperDir(source, Changeset(), lower_known=True)
    changeset = upper.changeset
    seen: set[str] = set()
    by_inode: dict[tuple[int, int], str] = {}
    base_links: dict[str, str] = {}
    walked_dirs = {""}
    dirs: dict[str, Entry] = {}
    for raw in _walk_directory(source, skip, upper.sockets):
        seen.add(raw.path)
        if raw.kind is EntryType.DIR:
            walked_dirs.add(raw.path)
        upper.mtime = max(upper.mtime, raw.mtime)
        entry = _entry_of(raw)
        if raw.kind is EntryType.DIR:
            dirs[raw.path] = entry
        if raw.inode is not None:
            first = by_inode.setdefault(raw.inode, raw.path)
            if first != raw.path:
                base_links[raw.path] = first
        if entry.type is EntryType.FILE:
            upper.content[raw.path] = raw.opener
            if raw.stamp is not None:
                upper.stamps[raw.path] = raw.stamp
        below = base.get(raw.path)
        if below is not None and _unchanged(upper, below, entry):
            continue
        changeset.entries.append(entry)

    # A file newly linked to another name keeps the link, as overlay would.
    changed = {e.path for e in changeset.entries}
    for entry in changeset.entries:
        first = base_links.get(entry.path)
        if first is not None and first in changed:
            _hardlink(entry, first)

    for node in base.iter_nodes():
        path = node.entry.path
        if path in seen or (skip is not None and skip(path)):
            continue
        if paths.parent(path) in walked_dirs:
            changeset.whiteouts.append(path)
    changed = {e.path for e in changeset.entries}
    for path in sorted(changed | set(changeset.whiteouts) | set(upper.sockets)):
        parent = paths.parent(path)
        while parent and parent not in changed and parent in dirs:
            changed.add(parent)
            changeset.entries.append(dirs[parent])
            parent = paths.parent(parent)
    changeset.entries.sort(key=lambda e: (e.type is EntryType.HARDLINK, e.path))
    return upper


def _unchanged(upper: UpperDir, node: Node, entry: Entry) -> bool:
    if node.data_type is not entry.type:
        return False
    inode = None
    if entry.type is EntryType.FILE:
        if node.size != entry.size:
            return False  # no need to read the file to know
        inode = Inode(entry.size, -1, upper.sha256(entry))
    if not node.same_content(Node(entry, -1, inode)):
        return False
    # A directory's mtime moves whenever a child changes: not a change.
    return entry.same_metadata(node.entry, with_mtime=entry.type is not EntryType.DIR)
