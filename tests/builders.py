"""Test-only builders: real layer tars and image archives, made in tmp_path."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

MTIME = 1_700_000_000


class LayerBuilder:
    """Build one layer tar entry by entry; every entry has a fixed owner/mtime."""

    def __init__(self) -> None:
        self._members: list[tuple[tarfile.TarInfo, bytes | None]] = []

    def _info(self, name: str, kind: bytes, mode: int, **extra) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = mode
        info.mtime = extra.pop("mtime", MTIME)
        info.uid = extra.pop("uid", 0)
        info.gid = extra.pop("gid", 0)
        for key, value in extra.items():
            setattr(info, key, value)
        return info

    def file(self, name: str, data: bytes = b"", mode: int = 0o644, **extra):
        info = self._info(name, tarfile.REGTYPE, mode, **extra)
        info.size = len(data)
        self._members.append((info, data))
        return self

    def dir(self, name: str, mode: int = 0o755, **extra):
        self._members.append((self._info(name, tarfile.DIRTYPE, mode, **extra), None))
        return self

    def symlink(self, name: str, target: str, **extra):
        info = self._info(name, tarfile.SYMTYPE, 0o777, linkname=target, **extra)
        self._members.append((info, None))
        return self

    def hardlink(self, name: str, target: str, **extra):
        info = self._info(name, tarfile.LNKTYPE, 0o644, linkname=target, **extra)
        self._members.append((info, None))
        return self

    def device(self, name: str, kind: str = "char", major=0, minor=0, **extra):
        flag = tarfile.CHRTYPE if kind == "char" else tarfile.BLKTYPE
        info = self._info(name, flag, 0o600, devmajor=major, devminor=minor, **extra)
        self._members.append((info, None))
        return self

    def fifo(self, name: str, **extra):
        self._members.append((self._info(name, tarfile.FIFOTYPE, 0o644, **extra), None))
        return self

    def whiteout(self, path: str):
        parent, _, base = path.rstrip("/").rpartition("/")
        name = f"{parent}/.wh.{base}" if parent else f".wh.{base}"
        return self.file(name)

    def opaque(self, directory: str):
        return self.file(f"{directory.rstrip('/')}/.wh..wh..opq")

    def xattr(self, name: str, key: str, value: bytes):
        """Set an xattr on the last entry named ``name`` (as a PAX record)."""
        for info, _ in reversed(self._members):
            if info.name == name:
                info.pax_headers[f"SCHILY.xattr.{key}"] = value.decode("latin-1")
                return self
        raise KeyError(name)

    def tar_bytes(self) -> bytes:
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for info, data in self._members:
                tar.addfile(info, io.BytesIO(data) if data is not None else None)
        return out.getvalue()

    def build(self, path: Path, compression: str = "none") -> Path:
        data = self.tar_bytes()
        if compression == "gzip":
            data = gzip.compress(data, mtime=0)
        elif compression == "zstd":
            from backports.zstd import compress

            data = compress(data)
        path.write_bytes(data)
        return path


def layer() -> LayerBuilder:
    return LayerBuilder()


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = MTIME
    tar.addfile(info, io.BytesIO(data))


def write_docker_save(
    path: Path, layers: list[bytes], tag="test:latest", history=None, runtime=None
) -> Path:
    """Write a classic docker save archive holding uncompressed layer tars.

    ``runtime`` is the config's ``config`` object (Env, Cmd, Volumes...).
    """
    diff_ids = [_sha(data) for data in layers]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": runtime or {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history or [{"created_by": f"step {i}"} for i in range(len(layers))],
    }
    config_bytes = json.dumps(config).encode()
    config_name = _sha(config_bytes)[7:] + ".json"
    with tarfile.open(path, "w") as tar:
        names = []
        for i, data in enumerate(layers):
            name = f"{diff_ids[i][7:]}/layer.tar"
            _add(tar, name, data)
            names.append(name)
        _add(tar, config_name, config_bytes)
        manifest = [{"Config": config_name, "RepoTags": [tag], "Layers": names}]
        _add(tar, "manifest.json", json.dumps(manifest).encode())
    return path


def write_oci_layout(
    path: Path, layers: list[bytes], *, compress=True, history=None, as_tar=False
) -> Path:
    """Write an OCI image layout (directory, or tar of one) with gzip layers."""
    blobs: dict[str, bytes] = {}
    descriptors = []
    diff_ids = []
    for data in layers:
        blob = gzip.compress(data, mtime=0) if compress else data
        blobs[_sha(blob)] = blob
        diff_ids.append(_sha(data))
        media = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if compress else "")
        descriptors.append(
            {"mediaType": media, "digest": _sha(blob), "size": len(blob)}
        )
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": history
            or [{"created_by": f"step {i}"} for i in range(len(layers))],
        }
    ).encode()
    blobs[_sha(config)] = config
    manifest = json.dumps(
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
    ).encode()
    blobs[_sha(manifest)] = manifest
    index = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": _sha(manifest),
                    "size": len(manifest),
                    "annotations": {"org.opencontainers.image.ref.name": "latest"},
                }
            ],
        }
    ).encode()
    files = {"oci-layout": b'{"imageLayoutVersion": "1.0.0"}', "index.json": index}
    for digest, data in blobs.items():
        files[f"blobs/sha256/{digest[7:]}"] = data
    if as_tar:
        with tarfile.open(path, "w") as tar:
            for name, data in files.items():
                _add(tar, name, data)
    else:
        for name, data in files.items():
            target = path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    return path
