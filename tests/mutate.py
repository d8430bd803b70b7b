"""Valid seed inputs and the mutations that break them, for fuzzing.

Shared by the hypothesis test (tests/test_fuzz.py) and the long campaign
(tests/fuzz_campaign.py). A mutation takes a ``random.Random`` so that
hypothesis can drive it from ``st.randoms()`` and the campaign from a seed.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
from pathlib import Path

from builders import layer, write_docker_save, write_oci_layout
from hostile import docker25_files, pax, member, end, tar_of

try:
    from compression.zstd import compress as zstd_compress
except ImportError:
    from backports.zstd import compress as zstd_compress

BLOCK = 512

# Edge values written over header fields: huge, negative, non-numeric,
# base-256, empty, unterminated.
_FIELD_VALUES = [
    b"\xff" * 12,
    b"\x80" + b"\xff" * 11,
    b"77777777777\x00",
    b"-1\x00",
    b"zz\x00",
    b"",
    b"\x00" * 12,
    b"1" * 12,
    b"../../../x\x00",
    b"/" * 12,
    b".wh.\x00",
    b".wh..wh..opq\x00",
]
# Offsets and lengths of ustar header fields: name, mode, size, mtime,
# checksum, typeflag, linkname, magic, prefix.
_FIELDS = [(0, 100), (100, 8), (124, 12), (136, 12), (148, 8), (156, 1),
           (157, 100), (257, 8), (345, 155)]  # fmt: skip
_TYPEFLAGS = b"0125346xgLKSV7Z\x00"


def _layers() -> list[bytes]:
    base = (
        layer()
        .dir("etc")
        .file("etc/passwd", b"root:x:0:0\n")
        .file("etc/" + "long" * 40, b"long name")
        .dir("usr/lib")
        .file("usr/lib/libx.so", b"\x7fELF" + bytes(600))
        .hardlink("usr/lib/liby.so", "usr/lib/libx.so")
        .symlink("lib", "usr/lib")
        .file("bin/tool", b"0123456789", mode=0o4755)
        .xattr("bin/tool", "security.capability", b"\x01\x00\x00\x02")
        .device("dev/null", major=1, minor=3)
        .fifo("run/fifo")
    )
    upper = (
        layer()
        .whiteout("etc/passwd")
        .opaque("usr/lib")
        .file("usr/lib/new.so", b"new" * 100)
        .hardlink("bin/alias", "bin/tool")
        .file("etc/.wh..wh.plnk")
    )
    raw = pax({b"path": b"raw/p\xe9th", b"mtime": b"1.5"}) + member(b"x", b"data")
    return [base.tar_bytes(), upper.tar_bytes(), raw + end()]


def _docker_files(layers: list[bytes]) -> dict[str, bytes]:
    files = docker25_files(layers[:2])
    manifest = json.loads(files["manifest.json"])
    config = files.pop(manifest[0]["Config"])
    manifest[0]["Config"] = hashlib.sha256(config).hexdigest() + ".json"
    files[manifest[0]["Config"]] = config
    files["manifest.json"] = json.dumps(manifest).encode()
    return files


def make_input(name: str, data: bytes, rng: random.Random, donor: bytes) -> bytes:
    """Return a broken input made from the seed ``name``."""
    if name == "docker-files":
        files = {k: v.encode("latin-1") for k, v in json.loads(data).items()}
        return json_variant(files, rng)
    return mutate(data, rng, donor)


def seeds(scratch: Path) -> dict[str, bytes]:
    """Return valid inputs of every kind the tool reads, by a short name."""
    scratch.mkdir(parents=True, exist_ok=True)
    layers = _layers()
    docker = write_docker_save(scratch / "docker.tar", layers[:2]).read_bytes()
    oci = write_oci_layout(scratch / "oci.tar", layers[:2], as_tar=True).read_bytes()
    return {
        "docker-files": json.dumps(
            {k: v.decode("latin-1") for k, v in _docker_files(layers).items()}
        ).encode(),
        "layer.tar": layers[0],
        "upper.tar": layers[1],
        "raw.tar": layers[2],
        "layer.tar.gz": gzip.compress(layers[1], mtime=0),
        "layer.tar.zst": zstd_compress(layers[0]),
        "docker.tar": docker,
        "docker25.tar": tar_of(docker25_files(layers[:2], compress=True)),
        "oci.tar": oci,
        "docker.tar.gz": gzip.compress(docker, mtime=0),
        "manifest-only.tar": tar_of(
            {"manifest.json": json.dumps([{"Config": "c.json", "Layers": []}]).encode()}
        ),
    }


def mutate(data: bytes, rng: random.Random, donor: bytes = b"") -> bytes:
    """Return ``data`` broken by one to four random mutations."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not buf:
            buf = bytearray(rng.randbytes(rng.randint(1, 1024)))
        kind = rng.randrange(8)
        if kind == 0:  # flip bits
            for _ in range(rng.randint(1, 8)):
                pos = rng.randrange(len(buf))
                buf[pos] ^= 1 << rng.randrange(8)
        elif kind == 1:  # truncate
            del buf[rng.randrange(len(buf)) :]
        elif kind == 2:  # splice in a piece of this or another input
            source = donor if donor and rng.random() < 0.5 else bytes(buf)
            start = rng.randrange(len(source)) if source else 0
            piece = source[start : start + rng.randint(1, 2048)]
            at = rng.randrange(len(buf) + 1)
            buf[at:at] = piece
        elif kind == 3 or kind == 4:  # edit a field of a header block
            blocks = max(len(buf) // BLOCK, 1)
            base = rng.randrange(blocks) * BLOCK
            offset, width = rng.choice(_FIELDS)
            if offset == 156:
                value = bytes([rng.choice(_TYPEFLAGS)])
            else:
                value = rng.choice(_FIELD_VALUES)[:width].ljust(width, b"\x00")
            buf[base + offset : base + offset + width] = value
            if rng.random() < 0.8:
                _fix_checksum(buf, base)
        elif kind == 5:  # move a block-aligned run (reorders members)
            blocks = len(buf) // BLOCK
            if blocks >= 2:
                start = rng.randrange(blocks) * BLOCK
                count = rng.randint(1, 4) * BLOCK
                run = buf[start : start + count]
                del buf[start : start + count]
                at = rng.randrange(len(buf) // BLOCK + 1) * BLOCK
                buf[at:at] = run
        elif kind == 6:  # overwrite a run with zeros or 0xff
            start = rng.randrange(len(buf))
            fill = rng.choice((0, 0xFF))
            length = min(rng.randint(1, 1024), len(buf) - start)
            buf[start : start + length] = bytes([fill]) * length
        else:  # duplicate a block-aligned run
            start = (rng.randrange(len(buf)) // BLOCK) * BLOCK
            buf[start:start] = buf[start : start + rng.randint(1, 3) * BLOCK]
    return bytes(buf)


_JSON_VALUES = [None, True, 0, -1, 2**70, 1.5, "", "../../x", "/etc/passwd",
                "sha256:" + "0" * 64, [], {}, [1, "a", None], {"a": [{}]},
                "x" * 300, "\udc80"]  # fmt: skip


def mutate_json(value, rng: random.Random):
    """Return a JSON document with one node replaced by an odd value."""
    if isinstance(value, dict) and value and rng.random() < 0.8:
        key = rng.choice(sorted(value))
        if rng.random() < 0.15:
            return {k: v for k, v in value.items() if k != key}
        return {**value, key: mutate_json(value[key], rng)}
    if isinstance(value, list) and value and rng.random() < 0.8:
        at = rng.randrange(len(value))
        if rng.random() < 0.15:
            return value[:at] + value[at + 1 :]
        if rng.random() < 0.15:
            return value + [value[at]]
        return value[:at] + [mutate_json(value[at], rng)] + value[at + 1 :]
    return rng.choice(_JSON_VALUES)


def json_variant(files: dict[str, bytes], rng: random.Random) -> bytes:
    """Return a docker save archive with a mutated manifest or config.

    The config is renamed after its new digest, so that the mutation gets
    past digest checks to the code that interprets the document.
    """
    files = dict(files)
    manifest = json.loads(files["manifest.json"])
    if rng.random() < 0.5:
        config_name = manifest[0]["Config"]
        config = mutate_json(json.loads(files.pop(config_name)), rng)
        data = json.dumps(config).encode()
        name = hashlib.sha256(data).hexdigest() + ".json"
        files[name] = data
        manifest[0]["Config"] = name
    else:
        manifest = mutate_json(manifest, rng)
    files["manifest.json"] = json.dumps(manifest).encode()
    return tar_of(files)


def _fix_checksum(buf: bytearray, base: int) -> None:
    block = buf[base : base + BLOCK]
    if len(block) < BLOCK:
        return
    block[148:156] = b" " * 8
    buf[base + 148 : base + 156] = f"{sum(block):06o}".encode() + b"\x00 "
