#!/usr/bin/env python3
"""Build the bundled sample images, byte for byte the same on every run.

The image looks like a typical application build:

1. a base layer (a small root filesystem, busybox-style hard links);
2. a package-install step that adds files, rewrites one file's content,
   rewrites another's metadata only, deletes a file and a directory with
   whiteouts, replaces a directory (opaque) and adds a hard link;
3. a step that adds a start script;
4. after ``VOLUME /data``, a step that writes under /data;

with ``CMD`` and the other configuration steps as empty history steps.

It is written twice: ``sample-docker.tar`` (docker save, classic layout,
uncompressed layers) and ``sample-oci.tar`` (an OCI image layout as a tar,
gzip layers). Every mtime, owner and gzip header field is fixed, so a run
reproduces the committed files exactly. Only the standard library is used.

Usage: python samples/make_samples.py [OUTPUT_DIR]   (default: samples/)
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path

EPOCH = 1_704_067_200  # 2024-01-01T00:00:00Z
TAG = "localhost/layerdiff-sample:latest"


def _blob(seed: str, size: int) -> bytes:
    """Return ``size`` deterministic bytes that do not compress to nothing."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    # Half text-like, half random, as real binaries are.
    line = b"ELF sample payload for %s\n" % seed.encode()
    text = line * (size // len(line) + 1)
    mixed = bytearray()
    for i in range(0, size, 64):
        mixed += out[i : i + 32] + text[i : i + 32]
    return bytes(mixed[:size])


class _Layer:
    """A layer tar, member by member, with fixed owners and times."""

    def __init__(self, mtime: int) -> None:
        self.mtime = mtime
        self.members: list[tuple[tarfile.TarInfo, bytes | None]] = []

    def _info(self, name, kind, mode, uid=0, gid=0) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = mode
        info.uid, info.gid = uid, gid
        info.uname = info.gname = ""
        info.mtime = self.mtime
        return info

    def dir(self, name, mode=0o755, **owner):
        self.members.append(
            (self._info(name + "/", tarfile.DIRTYPE, mode, **owner), None)
        )
        return self

    def file(self, name, data: bytes, mode=0o644, xattrs=None, **owner):
        info = self._info(name, tarfile.REGTYPE, mode, **owner)
        info.size = len(data)
        for key, value in (xattrs or {}).items():
            info.pax_headers["SCHILY.xattr." + key] = value
        self.members.append((info, data))
        return self

    def symlink(self, name, target):
        info = self._info(name, tarfile.SYMTYPE, 0o777)
        info.linkname = target
        self.members.append((info, None))
        return self

    def hardlink(self, name, target, mode=0o755):
        info = self._info(name, tarfile.LNKTYPE, mode)
        info.linkname = target
        self.members.append((info, None))
        return self

    def whiteout(self, path):
        parent, _, base = path.rpartition("/")
        return self.file(f"{parent}/.wh.{base}" if parent else f".wh.{base}", b"")

    def opaque(self, directory):
        return self.file(directory + "/.wh..wh..opq", b"")

    def tar(self) -> bytes:
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for info, data in self.members:
                tar.addfile(info, io.BytesIO(data) if data is not None else None)
        return out.getvalue()


def base_layer() -> bytes:
    layer = _Layer(EPOCH)
    layer.dir("bin")
    layer.file("bin/busybox", _blob("busybox", 96_000), 0o755)
    for applet in ("sh", "ls", "cat", "cp", "mv", "rm", "mkdir", "chmod"):
        layer.hardlink(f"bin/{applet}", "bin/busybox")
    layer.dir("etc")
    layer.file(
        "etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    layer.file("etc/group", b"root:x:0:\nnobody:x:65534:\n")
    layer.file("etc/os-release", b'NAME="Sample Linux"\nVERSION_ID=1.0\n')
    layer.dir("etc/conf.d")
    layer.file("etc/conf.d/network", b"# legacy network settings\nDHCP=yes\n")
    layer.dir("etc/conf.d/legacy")
    layer.file("etc/conf.d/legacy/rc.conf", b"rc_parallel=NO\n")
    layer.dir("root", 0o700)
    layer.dir("tmp", 0o1777)
    layer.dir("usr")
    layer.dir("usr/bin")
    layer.file(
        "usr/bin/ping",
        _blob("ping", 12_000),
        0o755,
        xattrs={
            "security.capability": "\x01\x00\x00\x02\x00 \x00\x00"
            "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
        },
    )
    layer.dir("usr/lib")
    layer.file("usr/lib/libc.so.6", _blob("libc", 64_000), 0o755)
    layer.file("usr/lib/libz.so.1.3", _blob("libz", 24_000), 0o755)
    layer.symlink("usr/lib/libz.so.1", "libz.so.1.3")
    layer.dir("usr/share")
    layer.dir("usr/share/doc")
    layer.dir("usr/share/doc/base")
    layer.file("usr/share/doc/base/README", b"Base system documentation.\n" * 40)
    layer.file("usr/share/doc/base/CHANGES", b"1.0: first release\n" * 60)
    layer.dir("var")
    layer.dir("var/cache")
    layer.dir("var/cache/pkg")
    layer.file("var/cache/pkg/INDEX.tar.gz", _blob("index", 20_000))
    layer.dir("var/lib")
    layer.dir("var/lib/pkg")
    layer.file("var/lib/pkg/installed", b"P:busybox\nV:1.36\n\nP:libc\nV:1.2\n")
    return layer.tar()


def package_layer() -> bytes:
    layer = _Layer(EPOCH + 3600)
    layer.dir("etc")
    # The same bytes with another mode: a metadata-only rewrite.
    layer.file("etc/group", b"root:x:0:\nnobody:x:65534:\n", 0o600)
    # The package replaces this directory: the lower children are hidden.
    layer.dir("etc/conf.d")
    layer.opaque("etc/conf.d")
    layer.file("etc/conf.d/curl", b"# curl defaults\nconnect-timeout = 10\n")
    layer.dir("usr")
    layer.dir("usr/bin")
    layer.file("usr/bin/curl", _blob("curl", 40_000), 0o755)
    layer.hardlink("usr/bin/curl-static", "usr/bin/curl")
    layer.dir("usr/lib")
    layer.file("usr/lib/libcurl.so.4.8", _blob("libcurl", 56_000), 0o755)
    layer.symlink("usr/lib/libcurl.so.4", "libcurl.so.4.8")
    layer.dir("usr/share")
    layer.dir("usr/share/doc")
    layer.whiteout("usr/share/doc/base")  # docs removed to slim the image
    layer.dir("var")
    layer.dir("var/cache")
    layer.dir("var/cache/pkg")
    layer.whiteout("var/cache/pkg/INDEX.tar.gz")  # the cache clean-up
    layer.dir("var/lib")
    layer.dir("var/lib/pkg")
    layer.file(
        "var/lib/pkg/installed",
        b"P:busybox\nV:1.36\n\nP:libc\nV:1.2\n\nP:curl\nV:8.5\n",
    )
    return layer.tar()


ENTRYPOINT = b"""#!/bin/sh
# Start the sample service.
set -e
echo "starting with data in /data"
exec curl --version
"""


def script_layer() -> bytes:
    layer = _Layer(EPOCH + 7200)
    layer.dir("usr")
    layer.dir("usr/local")
    layer.dir("usr/local/bin")
    layer.file("usr/local/bin/entrypoint.sh", ENTRYPOINT, 0o755)
    return layer.tar()


def data_layer() -> bytes:
    layer = _Layer(EPOCH + 10800)
    layer.dir("data")
    layer.file("data/seed.json", b'{"seeded": true}\n' * 100)
    return layer.tar()


def _history(created_by: str, hour: int, empty: bool = False) -> dict:
    step = {
        "created": f"2024-01-01T{hour:02d}:00:00Z",
        "created_by": created_by,
    }
    if empty:
        step["empty_layer"] = True
    return step


def image_config(diff_ids: list[str]) -> bytes:
    nop = "/bin/sh -c #(nop) "
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-01T03:00:00Z",
        "config": {
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"],
            "Cmd": ["/usr/local/bin/entrypoint.sh"],
            "WorkingDir": "/data",
            "Volumes": {"/data": {}},
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [
            _history(nop + "ADD file:base-rootfs.tar in / ", 0),
            _history(nop + 'CMD ["/bin/sh"]', 0, empty=True),
            _history(
                "/bin/sh -c pkg add curl && rm -rf /usr/share/doc/base "
                "/var/cache/pkg/INDEX.tar.gz",
                1,
            ),
            _history(nop + "COPY file:entrypoint.sh in /usr/local/bin/ ", 2),
            _history(nop + "ENV PATH=/usr/local/bin:/usr/bin:/bin", 2, empty=True),
            _history(nop + 'VOLUME ["/data"]', 2, empty=True),
            _history("/bin/sh -c echo seeding > /data/seed.json", 3),
            _history(nop + "WORKDIR /data", 3, empty=True),
            _history(nop + 'CMD ["/usr/local/bin/entrypoint.sh"]', 3, empty=True),
        ],
    }
    return _json(config)


def _json(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _gzip(data: bytes) -> bytes:
    # mtime 0 and no file name keep the gzip header fixed.
    return gzip.compress(data, compresslevel=9, mtime=0)


def _archive(files: list[tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        seen_dirs = set()
        for name, data in files:
            parent = name.rpartition("/")[0]
            parts = parent.split("/") if parent else []
            for depth in range(1, len(parts) + 1):
                directory = "/".join(parts[:depth])
                if directory not in seen_dirs:
                    seen_dirs.add(directory)
                    info = tarfile.TarInfo(directory)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, EPOCH
                    tar.addfile(info)
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, EPOCH
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def build_layers() -> list[bytes]:
    return [base_layer(), package_layer(), script_layer(), data_layer()]


def docker_save(layers: list[bytes]) -> bytes:
    """Return a docker save archive (classic ``<id>/layer.tar`` layout)."""
    diff_ids = [_sha(data) for data in layers]
    config = image_config(diff_ids)
    config_name = _sha(config)[7:] + ".json"
    files = []
    names = []
    for diff_id, data in zip(diff_ids, layers):
        name = diff_id[7:] + "/layer.tar"
        files.append((name, data))
        names.append(name)
    files.append((config_name, config))
    manifest = [{"Config": config_name, "RepoTags": [TAG], "Layers": names}]
    files.append(("manifest.json", _json(manifest)))
    repo, _, tag = TAG.rpartition(":")
    files.append(("repositories", _json({repo: {tag: diff_ids[-1][7:]}})))
    return _archive(files)


def oci_archive(layers: list[bytes]) -> bytes:
    """Return an OCI image layout as a tar, with gzip layers."""
    blobs: dict[str, bytes] = {}
    descriptors = []
    for data in layers:
        blob = _gzip(data)
        blobs[_sha(blob)] = blob
        descriptors.append(
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": _sha(blob),
                "size": len(blob),
            }
        )
    config = image_config([_sha(data) for data in layers])
    blobs[_sha(config)] = config
    manifest = _json(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _sha(config),
                "size": len(config),
            },
            "layers": descriptors,
        }
    )
    blobs[_sha(manifest)] = manifest
    index = _json(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": _sha(manifest),
                    "size": len(manifest),
                    "annotations": {
                        "io.containerd.image.name": TAG,
                        "org.opencontainers.image.ref.name": TAG.rpartition(":")[2],
                    },
                }
            ],
        }
    )
    files = [
        ("oci-layout", _json({"imageLayoutVersion": "1.0.0"})),
        ("index.json", index),
    ]
    files += [(f"blobs/sha256/{d[7:]}", data) for d, data in sorted(blobs.items())]
    return _archive(files)


def build(out_dir: Path) -> list[Path]:
    """Write every sample into ``out_dir``; return the paths written."""
    layers = build_layers()
    outputs = {
        "sample-docker.tar": docker_save(layers),
        "sample-oci.tar": oci_archive(layers),
    }
    written = []
    for name, data in outputs.items():
        path = out_dir / name
        path.write_bytes(data)
        written.append(path)
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent
    for path in build(target):
        print(path)
