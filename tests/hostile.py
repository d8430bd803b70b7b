"""Test-only tools for hostile inputs: raw tar bytes and a contract checker.

``tarfile`` refuses to write many of the broken members these tests need
(NUL bytes in names, bad checksums, lying sizes), so members are assembled
here byte by byte. ``run_contract`` runs the real entry point in-process
and checks what every run must honour, whatever the input.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import signal
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

from layerdiff import cli

BLOCK = 512
MTIME = 1_700_000_000


def _octal(value: int, width: int) -> bytes:
    return f"{value:0{width - 1}o}".encode() + b"\x00"


def header(
    name: bytes,
    typeflag: bytes = b"0",
    size: int = 0,
    *,
    linkname: bytes = b"",
    mode: int = 0o644,
    size_field: bytes | None = None,
    prefix: bytes = b"",
    checksum: bytes | None = None,
) -> bytes:
    """Return one ustar header block; fields are raw bytes where it matters."""
    block = bytearray(BLOCK)
    block[0:100] = name[:100].ljust(100, b"\x00")
    block[100:108] = _octal(mode, 8)
    block[108:116] = _octal(0, 8)
    block[116:124] = _octal(0, 8)
    block[124:136] = size_field if size_field is not None else _octal(size, 12)
    block[136:148] = _octal(MTIME, 12)
    block[156:157] = typeflag
    block[157:257] = linkname[:100].ljust(100, b"\x00")
    block[257:265] = b"ustar\x0000"
    block[329:337] = _octal(0, 8)
    block[337:345] = _octal(0, 8)
    block[345:500] = prefix[:155].ljust(155, b"\x00")
    block[148:156] = b" " * 8
    if checksum is None:
        checksum = f"{sum(block):06o}".encode() + b"\x00 "
    block[148:156] = checksum
    return bytes(block)


def pad(data: bytes) -> bytes:
    return data + bytes(-len(data) % BLOCK)


def member(name: bytes, data: bytes = b"", typeflag: bytes = b"0", **fields) -> bytes:
    """Return a header and its padded content."""
    size = len(data) if typeflag in (b"0", b"x", b"g", b"L", b"K") else 0
    return header(name, typeflag, size, **fields) + pad(data)


def pax_record(key: bytes, value: bytes) -> bytes:
    body = b" " + key + b"=" + value + b"\n"
    length = len(body) + 1
    while len(body) + len(str(length)) != length:
        length = len(body) + len(str(length))
    return str(length).encode() + body


def pax(records: dict[bytes, bytes]) -> bytes:
    """Return a PAX extended header member applying to the next member."""
    data = b"".join(pax_record(k, v) for k, v in records.items())
    return member(b"././@PaxHeader", data, b"x")


def end() -> bytes:
    return bytes(2 * BLOCK)


def tar_of(files: dict[str, bytes]) -> bytes:
    """Return an uncompressed tar of named files (for JSON and blobs)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = MTIME
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def docker25_files(
    layers: list[bytes], *, tag: str = "test:latest", compress: bool = False
) -> dict[str, bytes]:
    """Return the files of a docker save archive with blobs/sha256 names."""
    blobs = [gzip.compress(d, mtime=0) if compress else d for d in layers]
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [sha(d) for d in layers]},
            "history": [{"created_by": f"step {i}"} for i in range(len(layers))],
        }
    ).encode()
    files = {f"blobs/sha256/{sha(b)[7:]}": b for b in blobs}
    files[f"blobs/sha256/{sha(config)[7:]}"] = config
    manifest = [
        {
            "Config": f"blobs/sha256/{sha(config)[7:]}",
            "RepoTags": [tag],
            "Layers": [f"blobs/sha256/{sha(b)[7:]}" for b in blobs],
        }
    ]
    files["manifest.json"] = json.dumps(manifest).encode()
    return files


# -- running the command line under the contract ---------------------------


class Hang(Exception):
    """Raised by the alarm when a run takes far longer than any input needs."""


@dataclass
class Outcome:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        """Stderr without log warnings: the error line and its hint."""
        return [
            line
            for line in self.stderr.splitlines()
            if not line.startswith("layerdiff: WARNING:")
        ]


def _alarm(signum, frame):
    raise Hang("the command did not finish")


def invoke(args: list[str], *, limit_seconds: int = 60) -> Outcome:
    """Run ``layerdiff ARGS`` through the real entry point, in-process.

    Anything but a clean exit (an exception escaping ``cli.run``) is raised
    to the caller: that is a crash. An alarm turns a hang into ``Hang``.
    """
    runner = CliRunner()
    old_argv = sys.argv
    old_term = signal.getsignal(signal.SIGTERM)
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(limit_seconds)
    try:
        with runner.isolation() as streams:
            sys.argv = ["layerdiff", *[str(a) for a in args]]
            try:
                cli.run()
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 0
            stdout = streams[0].getvalue().decode("utf-8", "replace")
            stderr = streams[1].getvalue().decode("utf-8", "replace")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        signal.signal(signal.SIGTERM, old_term)
        sys.argv = old_argv
    return Outcome(int(code), stdout, stderr)


def tree_digest(root: Path) -> dict[str, str]:
    """Return every file under ``root`` with the sha256 of its bytes."""
    result = {}
    for directory, _, names in os.walk(root):
        for name in names:
            full = Path(directory, name)
            if full.is_symlink() or not full.is_file():
                result[str(full)] = "special"
                continue
            result[str(full)] = hashlib.sha256(full.read_bytes()).hexdigest()
    return result


def assert_clean_error(outcome: Outcome, *must_name: str) -> None:
    """Assert exit 2 with one error line (and at most a hint) naming things."""
    assert outcome.exit_code == 2, outcome
    lines = outcome.error_lines
    assert lines, outcome
    assert lines[0].startswith("layerdiff: "), outcome.stderr
    assert len(lines) == 1 or (len(lines) == 2 and lines[1].startswith("  ")), (
        outcome.stderr
    )
    assert "Traceback" not in outcome.stderr
    for text in must_name:
        assert text in lines[0], (text, lines[0])
