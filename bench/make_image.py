#!/usr/bin/env python3
"""Write a large, deterministic docker-save archive for benchmarks.

The default shape is the one the speed targets are stated for: five gzip
layers, about 200,000 files and a little over 1 GiB uncompressed. Layers 3
and 4 modify, chmod, delete (whiteouts) and replace (opaque directory)
paths of the layers below, and layer 4 deletes the large blob of layer 2,
so inspect has real work to do. The same arguments always give the same
bytes.

    python bench/make_image.py /tmp/big.tar              # 1x: 200k files
    python bench/make_image.py /tmp/small.tar --scale 0.25

Needs only the standard library and isal (a layerdiff dependency).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import sys
import tarfile
import tempfile

from isal.isal_zlib import compressobj

MTIME = 1_700_000_000
SIZE_SCALE = 1.0  # multiplies every file size; set by --size-scale
# Text-like content: random bytes folded onto 16 letters compress about 2:1,
# the rest is left random, like already compressed binaries.
_FOLD = bytes(b"etaoinshrdlucmfw"[i % 16] for i in range(256))


class _GzipSink(io.RawIOBase):
    """A file object that gzips what is written and hashes both sides."""

    def __init__(self, out) -> None:
        self._out = out
        self._zip = compressobj(1, wbits=31)  # gzip header with mtime 0
        self.diff_id = hashlib.sha256()
        self.digest = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.diff_id.update(data)
        self._emit(self._zip.compress(data))
        return len(data)

    def _emit(self, data: bytes) -> None:
        if data:
            self.digest.update(data)
            self._out.write(data)
            self.size += len(data)

    def finish(self) -> None:
        self._emit(self._zip.flush())


class _Layer:
    def __init__(self, directory: str, seed: int) -> None:
        self.path = os.path.join(directory, f"layer{seed}.gz")
        self._file = open(self.path, "wb")
        self._sink = _GzipSink(self._file)
        self._tar = tarfile.open(
            fileobj=self._sink, mode="w|", format=tarfile.GNU_FORMAT
        )
        self.rng = random.Random(seed)
        self.files = 0
        self.bytes = 0

    def _info(self, name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = mode
        info.mtime = MTIME
        info.uname = info.gname = ""
        return info

    def dir(self, name: str, mode: int = 0o755) -> None:
        self._tar.addfile(self._info(name, tarfile.DIRTYPE, mode))

    def file(self, name: str, size: int, mode: int = 0o644) -> None:
        size = int(size * SIZE_SCALE)
        data = self.rng.randbytes(size)
        if self.rng.random() < 0.6:
            data = data.translate(_FOLD)
        self.blob(name, data, mode)

    def blob(self, name: str, data: bytes, mode: int = 0o644) -> None:
        info = self._info(name, tarfile.REGTYPE, mode)
        info.size = len(data)
        self._tar.addfile(info, io.BytesIO(data))
        self.files += 1
        self.bytes += len(data)

    def big(self, name: str, size: int) -> None:
        """Add one large file without holding it all in memory."""
        rng = random.Random(name)
        size = int(size * SIZE_SCALE)

        class _Stream(io.RawIOBase):
            left = size

            def readable(self) -> bool:
                return True

            def readinto(self, buffer) -> int:
                take = min(len(buffer), self.left, 1 << 20)
                buffer[:take] = rng.randbytes(take)
                self.left -= take
                return take

        info = self._info(name, tarfile.REGTYPE, 0o644)
        info.size = size
        self._tar.addfile(info, io.BufferedReader(_Stream()))
        self.files += 1
        self.bytes += size

    def symlink(self, name: str, target: str) -> None:
        info = self._info(name, tarfile.SYMTYPE, 0o777)
        info.linkname = target
        self._tar.addfile(info)

    def hardlink(self, name: str, target: str) -> None:
        info = self._info(name, tarfile.LNKTYPE, 0o644)
        info.linkname = target
        self._tar.addfile(info)

    def whiteout(self, path: str) -> None:
        head, _, tail = path.rpartition("/")
        self.blob((head + "/" if head else "") + ".wh." + tail, b"", 0)
        self.files -= 1

    def close(self) -> dict:
        self._tar.close()
        self._sink.finish()
        self._file.close()
        return {
            "path": self.path,
            "digest": "sha256:" + self._sink.digest.hexdigest(),
            "diff_id": "sha256:" + self._sink.diff_id.hexdigest(),
            "size": self._sink.size,
            "files": self.files,
            "bytes": self.bytes,
        }


def _tree(layer: _Layer, root: str, count: int, mean: int, per_dir: int = 200):
    """Add ``count`` files under ``root``, ``per_dir`` to a directory."""
    names = []
    layer.dir(root)
    for index in range(count):
        if index % per_dir == 0:
            directory = f"{root}/d{index // per_dir:05d}"
            layer.dir(directory)
        # Sizes spread from empty to about 4x the mean, most of them small.
        size = int(layer.rng.expovariate(1 / mean)) if mean else 0
        name = f"{directory}/f{index:06d}.dat"
        layer.file(name, size)
        names.append(name)
    return names


def build(out: str, scale: float, workdir: str) -> list[dict]:
    n = lambda count: max(1, int(count * scale))  # noqa: E731
    layers = []

    base = _Layer(workdir, 1)  # an operating system's worth of small files
    for top in ("bin", "etc", "lib", "usr", "var"):
        base.dir(top)
    lib = _tree(base, "usr/lib", n(80_000), 3_000)
    etc = _tree(base, "etc/conf", n(10_000), 600)
    base.dir("usr/share")
    _tree(base, "usr/share/doc", n(10_000), 1_500)
    for index in range(n(2_000)):
        base.symlink(
            f"bin/tool{index:05d}", f"../usr/lib/d00000/f{index % 200:06d}.dat"
        )
    layers.append(base.close())

    deps = _Layer(workdir, 2)  # a package install with one large blob
    deps.dir("opt")
    deps.dir("opt/blob")
    deps.big("opt/blob/model.bin", n(150 << 20))
    _tree(deps, "opt/venv", n(50_000), 8_000)
    for index in range(n(500)):
        deps.hardlink(f"opt/venv/link{index:04d}", "opt/venv/d00000/f000000.dat")
    layers.append(deps.close())

    change = _Layer(workdir, 3)  # modify, chmod, delete and replace a dir
    for name in lib[0 : len(lib) : 8]:
        change.file(name, 2_600)  # new content
    for name in lib[1 : len(lib) : 16]:
        change.file(name, 0, mode=0o755)  # truncated and made executable
    for name in etc[2 : len(etc) : 4]:
        change.whiteout(name)
    change.blob("usr/share/doc/.wh..wh..opq", b"", 0)
    _tree(change, "usr/share/doc/new", n(3_000), 1_000)
    _tree(change, "srv/app", n(25_000), 5_000)
    layers.append(change.close())

    cleanup = _Layer(workdir, 4)  # deletes the blob shipped two layers down
    cleanup.dir("opt")
    cleanup.dir("opt/blob")
    cleanup.whiteout("opt/blob/model.bin")
    _tree(cleanup, "srv/data", n(15_000), 8_000)
    layers.append(cleanup.close())

    top = _Layer(workdir, 5)  # the application itself
    _tree(top, "app", n(5_000), 5_000)
    top.blob("app/run.sh", b"#!/bin/sh\nexec /app/server\n", 0o755)
    layers.append(top.close())

    _write_archive(out, layers)
    return layers


def _write_archive(out: str, layers: list[dict]) -> None:
    created = "2024-01-01T00:00:00Z"
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/app/run.sh"]},
        "rootfs": {"type": "layers", "diff_ids": [x["diff_id"] for x in layers]},
        "history": [
            {"created": created, "created_by": f"bench layer {i + 1}"}
            for i in range(len(layers))
        ],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    layer_names = [x["digest"].split(":")[1] + ".tar" for x in layers]
    manifest = [
        {
            "Config": config_name,
            "RepoTags": ["bench/big:latest"],
            "Layers": layer_names,
        }
    ]
    directory = os.path.dirname(os.path.abspath(out))
    fd, temporary = tempfile.mkstemp(prefix=".make_image.", dir=directory)
    os.close(fd)
    try:
        with tarfile.open(temporary, "w", format=tarfile.GNU_FORMAT) as tar:

            def add(name: str, data=None, path=None) -> None:
                info = tarfile.TarInfo(name)
                info.mtime = MTIME
                info.mode = 0o644
                if path is not None:
                    info.size = os.path.getsize(path)
                    with open(path, "rb") as handle:
                        tar.addfile(info, handle)
                else:
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))

            for name, layer in zip(layer_names, layers):
                add(name, path=layer["path"])
            add(config_name, config_bytes)
            add("manifest.json", json.dumps(manifest).encode())
        os.replace(temporary, out)
    except BaseException:
        os.unlink(temporary)
        raise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="the docker-save archive to write")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="file count and bytes (1 = 200k)"
    )
    parser.add_argument(
        "--size-scale",
        type=float,
        default=1.0,
        help="file sizes only, for many small entries (default 1)",
    )
    args = parser.parse_args()
    global SIZE_SCALE
    SIZE_SCALE = args.size_scale
    with tempfile.TemporaryDirectory(prefix="make_image.") as workdir:
        layers = build(args.out, args.scale, workdir)
    files = sum(x["files"] for x in layers)
    data = sum(x["bytes"] for x in layers)
    packed = sum(x["size"] for x in layers)
    print(
        f"{args.out}: {len(layers)} layers, {files} files, "
        f"{data / 2**30:.2f} GiB of file data, {packed / 2**30:.2f} GiB gzip",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
