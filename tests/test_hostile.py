"""Hostile and broken inputs: each one gives a clean result, never a crash.

Every case builds a small bad input, runs the real entry point and checks
the contract: exit 2 with one line on stderr naming the file, the layer and
the entry (plus an optional hint line) or, where the README says the input
is tolerated, exit 0 with the expected finding; no traceback, no temporary
file left behind, and the inputs unchanged.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable

import pytest
from builders import layer, write_docker_save, write_oci_layout
from hostile import (
    assert_clean_error,
    docker25_files,
    end,
    header,
    invoke,
    member,
    pax,
    sha,
    tar_of,
    tree_digest,
)

from layerdiff import cli

try:
    from compression.zstd import compress as zstd_compress
except ImportError:
    from backports.zstd import compress as zstd_compress


@dataclass
class Case:
    """One hostile input: how to build it and what the tool must do."""

    id: str
    make: Callable[[Path], list[str]]
    exit_code: int
    names: tuple[str, ...] = ()
    finding: str | None = None


def _base() -> bytes:
    return (
        layer()
        .dir("etc")
        .file("etc/passwd", b"root:x:0:0\n")
        .dir("bin")
        .file("bin/tool", b"0123456789")
        .symlink("lib", "/usr/lib")
        .tar_bytes()
    )


def on_top(bad: bytes | Callable[[], bytes], name: str = "bad.tar"):
    """Make a case input: a good base layer and ``bad`` as layer 2."""

    def make(root: Path) -> list[str]:
        (root / "base.tar").write_bytes(_base())
        (root / name).write_bytes(bad() if callable(bad) else bad)
        return ["inspect", root / "base.tar", root / name, "--json"]

    return make


def raw_layer(*members: bytes) -> bytes:
    return b"".join(members) + end()


def built(builder) -> bytes:
    return builder.tar_bytes()


def archive(files: dict[str, bytes], *args: str, name: str = "app.tar"):
    """Make a case input: an image archive (tar) of the given files."""

    def make(root: Path) -> list[str]:
        (root / name).write_bytes(tar_of(files))
        return ["inspect", root / name, "--json", *args]

    return make


def _oci_files(tmp: Path, layers: list[bytes]) -> dict[str, bytes]:
    write_oci_layout(tmp, layers)
    return {
        str(p.relative_to(tmp)): p.read_bytes() for p in tmp.rglob("*") if p.is_file()
    }


def oci(edit: Callable[[dict[str, bytes]], None], *args: str):
    """Make a case input: an OCI layout tar whose files ``edit`` changes."""

    def make(root: Path) -> list[str]:
        files = _oci_files(root / "scratch", [_base()])
        edit(files)
        (root / "oci.tar").write_bytes(tar_of(files))
        return ["inspect", root / "oci.tar", "--json", *args]

    return make


def _json_blob(files: dict[str, bytes], kind: str) -> str:
    """Return the blob name of the manifest or config of an OCI layout."""
    index = json.loads(files["index.json"])
    manifest_name = "blobs/sha256/" + index["manifests"][0]["digest"][7:]
    if kind == "manifest":
        return manifest_name
    manifest = json.loads(files[manifest_name])
    return "blobs/sha256/" + manifest["config"]["digest"][7:]


def _rewrite_manifest(files: dict[str, bytes], change) -> None:
    """Change the manifest of an OCI layout and re-point index.json to it."""
    name = _json_blob(files, "manifest")
    manifest = json.loads(files.pop(name))
    change(manifest)
    data = json.dumps(manifest).encode()
    files["blobs/sha256/" + sha(data)[7:]] = data
    index = json.loads(files["index.json"])
    index["manifests"][0]["digest"] = sha(data)
    index["manifests"][0]["size"] = len(data)
    files["index.json"] = json.dumps(index).encode()


def _index_cycle(files: dict[str, bytes]) -> None:
    # An index whose only entry is itself cannot be written (its digest
    # would have to contain itself), so two indexes point at each other;
    # one of them is stored under a digest it does not hash to, which is
    # what a cycle always needs.
    a = {"schemaVersion": 2, "manifests": [], "mediaType": ""}
    b_digest = "sha256:" + "b" * 64
    a["mediaType"] = "application/vnd.oci.image.index.v1+json"
    a["manifests"] = [
        {"mediaType": a["mediaType"], "digest": b_digest, "size": 1},
    ]
    a_data = json.dumps(a).encode()
    b = {
        "schemaVersion": 2,
        "mediaType": a["mediaType"],
        "manifests": [
            {"mediaType": a["mediaType"], "digest": sha(a_data), "size": 1},
        ],
    }
    files["blobs/sha256/" + "b" * 64] = json.dumps(b).encode()
    files["blobs/sha256/" + sha(a_data)[7:]] = a_data
    index = json.loads(files["index.json"])
    index["manifests"] = [
        {"mediaType": a["mediaType"], "digest": sha(a_data), "size": 1}
    ]
    files["index.json"] = json.dumps(index).encode()


def _index_chain(files: dict[str, bytes]) -> None:
    media = "application/vnd.oci.image.index.v1+json"
    index = json.loads(files["index.json"])
    descriptor = index["manifests"][0]
    for _ in range(12):
        data = json.dumps({"schemaVersion": 2, "mediaType": media,
                           "manifests": [descriptor]}).encode()  # fmt: skip
        files["blobs/sha256/" + sha(data)[7:]] = data
        descriptor = {"mediaType": media, "digest": sha(data), "size": len(data)}
    index["manifests"] = [descriptor]
    files["index.json"] = json.dumps(index).encode()


def _drop_rootfs(files: dict[str, bytes]) -> None:
    name = _json_blob(files, "config")
    config = json.loads(files.pop(name))
    del config["rootfs"]
    data = json.dumps(config).encode()
    files["blobs/sha256/" + sha(data)[7:]] = data
    _rewrite_manifest(
        files, lambda m: m["config"].update(digest=sha(data), size=len(data))
    )


def _grow_layer_blob(files: dict[str, bytes]) -> None:
    # The descriptor keeps the old size and digest; the blob has more bytes.
    manifest = json.loads(files[_json_blob(files, "manifest")])
    name = "blobs/sha256/" + manifest["layers"][0]["digest"][7:]
    files[name] = files[name] + b"\x00" * 4096


def _docker(layers, **kw) -> dict[str, bytes]:
    return docker25_files(layers, **kw)


def _with_manifest(files: dict[str, bytes], change) -> dict[str, bytes]:
    manifest = json.loads(files["manifest.json"])
    change(manifest)
    files["manifest.json"] = json.dumps(manifest).encode()
    return files


def _two_images_one_tag() -> dict[str, bytes]:
    files = _docker([_base()], tag="app:1")
    return _with_manifest(files, lambda m: m.append(dict(m[0])))


def _nested_json(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _gzip_bomb() -> bytes:
    # 64 MiB of one file, about 64 KiB compressed.
    data = (
        header(b"zeros", b"0", 64 << 20) + bytes(64 << 20) + end()
    )  # fmt: skip
    return gzip.compress(data, compresslevel=9, mtime=0)


def _late_gzip_corruption() -> bytes:
    # The damage sits past the first megabyte of output, where inflating
    # resumes from the input left over by the previous call.
    data = gzip.compress(header(b"zeros", b"0", 3 << 20) + bytes(3 << 20) + end(),
                         mtime=0)  # fmt: skip
    pos = len(data) - 30
    return data[:pos] + bytes([data[pos] ^ 0x55]) + data[pos + 1 :]


def _sparse_bomb() -> bytes:
    # A PAX sparse file (format 0.1) of 2**50 bytes, holes only.
    records = {
        b"GNU.sparse.map": b"0,0",
        b"GNU.sparse.size": str(1 << 50).encode(),
        b"GNU.sparse.name": b"huge",
    }
    return raw_layer(pax(records), header(b"GNUSparseFile.0/huge", b"0", 0))


LONG = "d" * 120 + "/" + "f" * 120
HUGE_COMPONENT = "n" * 300

CASES = [
    # -- entry names ------------------------------------------------------
    Case("dotdot-entry", on_top(raw_layer(member(b"../escape", b"x"))), 2,
         ("bad.tar", "layer 2", "'../escape'")),
    Case("dotdot-inside-entry", on_top(raw_layer(member(b"a/../../b", b"x"))), 2,
         ("bad.tar", "layer 2", "'a/../../b'")),
    Case("dotdot-in-pax-path",
         on_top(raw_layer(pax({b"path": b"ok/../../x"}), member(b"ok", b"x"))), 2,
         ("bad.tar", "layer 2", "ok/../../x")),
    Case("absolute-entry", on_top(raw_layer(member(b"/etc/shadow", b"x"))), 0),
    Case("dot-slash-and-double-slash",
         on_top(raw_layer(member(b".//etc//motd", b"hi"))), 0),
    Case("nul-in-pax-path",
         on_top(raw_layer(pax({b"path": b"etc/a\x00b"}), member(b"x", b"1"))), 2,
         ("bad.tar", "layer 2", "etc/a\\x00b")),
    Case("non-utf8-name", on_top(raw_layer(member(b"etc/caf\xe9", b"x"))), 0),
    Case("control-chars-in-name",
         on_top(raw_layer(member(b"etc/\x1b[2Jx\nline", b"x"))), 0),
    Case("long-pax-name", on_top(built(layer().file(LONG, b"x"))), 0),
    Case("long-gnu-name",
         on_top(raw_layer(member(b"././@LongLink", LONG.encode() + b"\x00", b"L"),
                          member(LONG[:99].encode(), b"x"))), 0),
    Case("component-over-255-bytes",
         on_top(built(layer().file(HUGE_COMPONENT, b"x"))), 0),
    Case("prefix-field-name",
         on_top(raw_layer(header(b"file", prefix=b"p" * 150))), 0),
    Case("name-longer-than-path-max",
         on_top(raw_layer(pax({b"path": b"a/" * 3000}), member(b"x", b"1"))), 2,
         ("bad.tar", "layer 2", "a/a/a/")),
    Case("deep-name-within-path-max",
         on_top(raw_layer(pax({b"path": b"a/" * 2000 + b"f"}), member(b"x", b"1"))),
         0),
    # -- whiteouts ----------------------------------------------------------
    Case("whiteout-of-dot", on_top(raw_layer(member(b"etc/.wh.."))), 2,
         ("bad.tar", "layer 2", "'etc/.wh..'")),
    Case("whiteout-of-dotdot", on_top(raw_layer(member(b"etc/.wh..."))), 2,
         ("bad.tar", "layer 2", "'etc/.wh...'")),
    Case("whiteout-of-nothing", on_top(raw_layer(member(b"etc/.wh."))), 2,
         ("bad.tar", "layer 2", "'etc/.wh.'")),
    Case("whiteout-at-root-level", on_top(built(layer().whiteout("etc"))), 0),
    Case("opaque-root", on_top(built(layer().opaque(""))), 0),
    Case("opaque-marker-as-directory",
         on_top(raw_layer(member(b"etc/.wh..wh..opq/", typeflag=b"5"))), 2,
         ("bad.tar", "layer 2", "'etc/.wh..wh..opq/'")),
    Case("whiteout-as-symlink",
         on_top(raw_layer(member(b"etc/.wh.passwd", typeflag=b"2",
                                 linkname=b"/x"))), 2,
         ("bad.tar", "layer 2", "'etc/.wh.passwd'")),
    Case("entry-inside-opaque-marker",
         on_top(raw_layer(member(b"etc/.wh..wh..opq/x", b"1"))), 2,
         ("bad.tar", "layer 2", "'etc/.wh..wh..opq/x'")),
    Case("unknown-wh-name", on_top(raw_layer(member(b"etc/.wh..wh.plnk"))), 0,
         finding="reserved-whiteout-name"),
    Case("whiteout-of-missing-path", on_top(built(layer().whiteout("nope"))), 0,
         finding="whiteout-missing-target"),
    # -- links ------------------------------------------------------------
    Case("symlink-loop",
         on_top(built(layer().symlink("a", "b").symlink("b", "a"))), 0),
    Case("symlink-self", on_top(built(layer().symlink("a", "a"))), 0),
    Case("symlink-out-of-root",
         on_top(built(layer().symlink("up", "../../../../etc/shadow")
                      .symlink("abs", "/etc/shadow"))), 0),
    Case("write-through-symlink-parent", on_top(built(layer().file("lib/x", b"1"))),
         0, finding="parent-not-directory"),
    Case("hardlink-missing-target",
         on_top(built(layer().hardlink("bin/alias", "bin/nothing"))), 0,
         finding="hardlink-missing-target"),
    Case("hardlink-to-whited-out-target",
         on_top(built(layer().whiteout("bin/tool").hardlink("bin/t2", "bin/tool"))),
         0, finding="hardlink-missing-target"),
    Case("hardlink-chain",
         on_top(built(layer().file("a", b"data").hardlink("b", "a")
                      .hardlink("c", "b"))), 0),
    Case("hardlink-chain-out-of-order",
         on_top(built(layer().hardlink("c", "b").hardlink("b", "a")
                      .file("a", b"data"))), 0, finding="hardlink-missing-target"),
    Case("hardlink-to-itself", on_top(built(layer().hardlink("self", "self"))), 0,
         finding="hardlink-missing-target"),
    Case("hardlink-to-directory", on_top(built(layer().hardlink("e", "etc"))), 0,
         finding="hardlink-missing-target"),
    Case("hardlink-escaping",
         on_top(raw_layer(member(b"x", typeflag=b"1",
                                 linkname=b"../../etc/shadow"))), 2,
         ("bad.tar", "layer 2", "'x'")),
    # -- tar structure ------------------------------------------------------
    Case("truncated-in-content",
         on_top(lambda: raw_layer(member(b"big", b"x" * 4000))[:1500]), 2,
         ("bad.tar", "layer 2", "'big'")),
    Case("truncated-in-header",
         on_top(lambda: raw_layer(member(b"a", b"x"), member(b"b", b"y"))[:1300]), 2,
         ("bad.tar", "layer 2")),
    Case("bad-checksum",
         on_top(raw_layer(header(b"a", checksum=b"0000000\x00"))), 2,
         ("bad.tar", "layer 2")),
    Case("size-not-a-number",
         on_top(raw_layer(header(b"a", size_field=b"zzzzzzzzzzz\x00"))), 2,
         ("bad.tar", "layer 2", "'a'")),
    Case("pax-header-lying-size",
         on_top(header(b"././@PaxHeader", b"x", 1 << 30) + b"10 path=a\n"), 2,
         ("bad.tar", "layer 2")),
    Case("pax-header-too-large",
         on_top(pax({b"comment": b"c" * (2 << 20)}) + member(b"a") + end()), 2,
         ("bad.tar", "layer 2")),
    Case("pax-malformed", on_top(member(b"p", b"zz nonsense", b"x")
                                 + member(b"a") + end()), 2,
         ("bad.tar", "layer 2")),
    Case("pax-mtime-nan", on_top(raw_layer(pax({b"mtime": b"nan"}), member(b"a"))),
         2, ("bad.tar", "layer 2", "'a'")),
    Case("pax-mtime-inf", on_top(raw_layer(pax({b"mtime": b"inf"}), member(b"a"))),
         2, ("bad.tar", "layer 2", "'a'")),
    Case("pax-uid-garbage",
         on_top(raw_layer(pax({b"uid": b"-"}), member(b"a"))), 2,
         ("bad.tar", "layer 2", "'a'")),
    Case("pax-sparse-map-garbage",
         on_top(raw_layer(pax({b"GNU.sparse.map": b"x,y",
                               b"GNU.sparse.size": b"10"}), member(b"s"))), 2,
         ("bad.tar", "layer 2", "'s'")),
    Case("pax-sparse-size-garbage",
         on_top(raw_layer(pax({b"GNU.sparse.map": b"0,0",
                               b"GNU.sparse.size": b"big"}), member(b"s"))), 2,
         ("bad.tar", "layer 2", "'s'")),
    Case("sparse-bomb", on_top(_sparse_bomb()), 2,
         ("bad.tar", "layer 2", "huge", "--max-size")),
    Case("unknown-entry-type", on_top(raw_layer(member(b"weird", typeflag=b"Z"))), 2,
         ("bad.tar", "layer 2", "'weird'")),
    Case("garbage-layer", on_top(b"\x42" * 3000), 2,
         ("bad.tar", "layer 2")),
    Case("layer-is-a-directory",
         lambda root: (root / "dir").mkdir() or ["inspect", root / "dir"], 2,
         ("dir",)),
    Case("layer-missing",
         lambda root: ["inspect", root / "nothing.tar"], 2, ("nothing.tar",)),
    Case("empty-file", on_top(b"", name="empty.tar"), 0),
    Case("empty-single-file",
         lambda root: (root / "e.tar").write_bytes(b"") or ["inspect", root / "e.tar"],
         2, ("e.tar",)),
    Case("end-blocks-only", archive({}), 0),
    # -- compression ----------------------------------------------------------
    Case("truncated-gzip",
         on_top(lambda: gzip.compress(_base() + os.urandom(8192), mtime=0)[:4000],
                "bad.tar.gz"), 2,
         ("bad.tar.gz", "layer 2", "gzip")),
    Case("truncated-zstd",
         on_top(lambda: zstd_compress(_base() + os.urandom(4096))[:600],
                "bad.tar.zst"), 2,
         ("bad.tar.zst", "layer 2", "zstd")),
    Case("gzip-bit-flip",
         on_top(lambda: (lambda d: d[:40] + bytes([d[40] ^ 0xFF]) + d[41:])(
             gzip.compress(_base(), mtime=0)), "bad.tar.gz"), 2,
         ("bad.tar.gz", "layer 2")),
    Case("gzip-corrupt-after-the-first-chunk",
         on_top(_late_gzip_corruption, "bad.tar.gz"), 2,
         ("bad.tar.gz", "layer 2", "gzip")),
    Case("garbage-after-gzip",
         on_top(lambda: gzip.compress(_base(), mtime=0) + b"junk", "bad.tar.gz"), 2,
         ("bad.tar.gz", "layer 2")),
    Case("gzip-bomb",
         lambda root: on_top(_gzip_bomb, "bomb.tar.gz")(root) + ["--max-size", "8MB"],
         2, ("bomb.tar.gz", "layer 2", "'zeros'", "--max-size")),
    Case("whole-archive-gzip-bomb",
         lambda root: (root / "app.tar.gz").write_bytes(gzip.compress(
             tar_of({"zeros": bytes(8 << 20)}), mtime=0)) and
         ["inspect", root / "app.tar.gz", "--max-size", "1MB"], 2,
         ("app.tar.gz", "--max-size")),
    Case("whole-archive-truncated-gzip",
         lambda root: (root / "app.tar.gz").write_bytes(gzip.compress(
             tar_of(_docker([_base()])), mtime=0)[:400]) and
         ["inspect", root / "app.tar.gz"], 2, ("app.tar.gz", "gzip")),
    # -- docker save archives -------------------------------------------------
    Case("wrong-layer-digest",
         archive({k: (v + b"\x00" * 1024 if k.startswith("blobs") and
                      len(v) > 2000 else v)
                  for k, v in _docker([_base()]).items()}), 2,
         ("app.tar", "layer 1", "digest")),
    Case("config-edited-after-writing",
         archive({k: (v.replace(b"amd64", b"arm64") if k.startswith("blobs") and
                      b"rootfs" in v else v)
                  for k, v in _docker([_base()]).items()}), 2,
         ("app.tar", "config", "digest")),
    Case("oci-manifest-edited-after-writing",
         oci(lambda f: f.update({_json_blob(f, "manifest"):
                                 f[_json_blob(f, "manifest")] + b" "})), 2,
         ("oci.tar", "manifest", "digest")),
    Case("wrong-diff-id",
         lambda root: write_docker_save(
             root / "app.tar", [_base()]).exists() and _break_diff_id(root), 2,
         ("app.tar", "layer 1", "diff_id")),
    Case("manifest-names-missing-blob",
         archive(_with_manifest(_docker([_base()]), lambda m: m[0].update(
             Layers=["blobs/sha256/" + "0" * 64]))), 2, ("app.tar", "0000000")),
    Case("manifest-layer-escapes",
         archive(_with_manifest(_docker([_base()]), lambda m: m[0].update(
             Layers=["../../etc/layer.tar"]))), 2, ("app.tar", "../../etc/layer.tar")),
    Case("manifest-config-escapes",
         archive(_with_manifest(_docker([_base()]), lambda m: m[0].update(
             Config="../config.json"))), 2, ("app.tar", "../config.json")),
    Case("manifest-config-absolute",
         archive(_with_manifest(_docker([_base()]), lambda m: m[0].update(
             Config="/etc/passwd"))), 2, ("app.tar", "/etc/passwd")),
    Case("too-many-layers",
         lambda root: _docker_config(root, lambda c: c["rootfs"].update(
             diff_ids=c["rootfs"]["diff_ids"] * 1001), layers=1001), 2,
         ("app.tar", "1001 layers")),
    Case("two-images-same-tag", archive(_two_images_one_tag(), "--image", "app:1"),
         2, ("app.tar", "app:1")),
    Case("two-images-same-tag-no-choice", archive(_two_images_one_tag()), 2,
         ("app.tar",)),
    Case("garbage-manifest-json", archive({"manifest.json": b"{not json"}), 2,
         ("app.tar", "manifest.json")),
    Case("deeply-nested-manifest-json",
         archive({"manifest.json": _nested_json(100_000)}), 2,
         ("app.tar", "manifest.json")),
    Case("manifest-json-is-an-object", archive({"manifest.json": b"{}"}), 2,
         ("app.tar", "manifest.json")),
    Case("manifest-tags-not-a-list",
         archive(_with_manifest(_docker([_base()]), lambda m: m[0].update(
             RepoTags=7))), 0),
    Case("manifest-layer-sources-garbage",
         archive(_with_manifest(_docker([_base()]), lambda m: m[0].update(
             LayerSources={sha(_base()): "nonsense"}))), 0),
    Case("config-without-rootfs",
         lambda root: _docker_config(root, lambda c: c.pop("rootfs")), 2,
         ("app.tar", "rootfs")),
    Case("config-odd-types",
         lambda root: _docker_config(root, lambda c: c.update(
             history=[{"created_by": 5, "created": [1]}, "step"],
             config={"Volumes": 3, "ExposedPorts": ["a", 1], "Cmd": {"a": 1}},
             architecture=["x"])), 0),
    Case("config-volume-step-escapes",
         lambda root: _docker_config(root, lambda c: c.update(history=[
             {"created_by": "VOLUME [../../x]", "empty_layer": True},
             {"created_by": "step"}])), 0),
    Case("legacy-parent-cycle",
         archive({"repositories": b'{"a": {"1": "x"}}',
                  "x/json": b'{"parent": "y"}', "y/json": b'{"parent": "x"}'}), 2,
         ("app.tar", "ancestor")),
    Case("legacy-odd-types",
         archive({"repositories": b'{"a": {"1": ["x"]}}'}), 2, ("app.tar",)),
    Case("legacy-cmd-not-strings",
         archive({"repositories": b'{"a": {"1": "x"}}',
                  "x/json": b'{"container_config": {"Cmd": [1, null]}}',
                  "x/layer.tar": _base()}), 0),
    # -- OCI layouts ----------------------------------------------------------
    Case("index-cycle", oci(_index_cycle), 2, ("oci.tar", "bbbbbbbb", "digest")),
    Case("index-chain-too-deep", oci(_index_chain), 2, ("oci.tar", "index")),
    Case("index-lists-nothing",
         oci(lambda f: f.update({"index.json": b'{"manifests": []}'})), 2,
         ("oci.tar", "index.json")),
    Case("index-bad-digest",
         oci(lambda f: f.update({"index.json":
                                 b'{"manifests": [{"digest": "sha256:../x"}]}'})), 2,
         ("oci.tar", "sha256:../x")),
    Case("index-annotations-not-a-dict",
         oci(lambda f: f.update({"index.json": json.dumps({"manifests": [
             dict(json.loads(f["index.json"])["manifests"][0], annotations=[1])
         ]}).encode()})), 0),
    Case("manifest-blob-missing",
         oci(lambda f: f.pop(_json_blob(f, "manifest"))), 2, ("oci.tar",)),
    Case("layer-blob-missing",
         oci(lambda f: _rewrite_manifest(f, lambda m: m["layers"][0].update(
             digest="sha256:" + "1" * 64))), 2, ("oci.tar", "sha256:1111")),
    Case("layer-larger-than-declared", oci(_grow_layer_blob), 2,
         ("oci.tar", "layer 1", "bytes")),
    Case("config-missing-rootfs-oci", oci(_drop_rootfs), 2, ("oci.tar", "rootfs")),
    Case("oci-layout-garbage-json", oci(lambda f: f.update({"oci-layout": b"\xff"})),
         2, ("oci.tar", "oci-layout")),
    Case("empty-directory", lambda root: (root / "d").mkdir() or
         ["inspect", root / "d"], 2, ("d",)),
]  # fmt: skip


def _break_diff_id(root: Path) -> list[str]:
    return _docker_config(root, lambda c: c["rootfs"].update(
        diff_ids=["sha256:" + "2" * 64]))  # fmt: skip


def _docker_config(root: Path, change, layers: int = 1) -> list[str]:
    """Write a docker save archive whose config ``change`` edits."""
    files = _docker([_base()])
    manifest = json.loads(files["manifest.json"])
    manifest[0]["Layers"] *= layers
    config = json.loads(files.pop(manifest[0]["Config"]))
    change(config)
    data = json.dumps(config).encode()
    manifest[0]["Config"] = f"{sha(data)[7:]}.json"
    files[manifest[0]["Config"]] = data
    files["manifest.json"] = json.dumps(manifest).encode()
    (root / "app.tar").write_bytes(tar_of(files))
    return ["inspect", root / "app.tar", "--json"]


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """Route the tool's temporary files into a directory the test can check."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    return scratch


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_hostile_input_gives_a_clean_result(case, tmp_path, private_tmp):
    root = tmp_path / "in"
    root.mkdir()
    args = case.make(root)
    before = tree_digest(root)

    outcome = invoke(args)

    assert "Traceback" not in outcome.stderr
    if case.exit_code == 2:
        assert_clean_error(outcome, *case.names)
    else:
        assert outcome.exit_code == 0, outcome
        if "--json" in args:
            report = json.loads(outcome.stdout)
            rules = {f["rule"] for f in report["findings"]}
            rules |= {f["rule"] for lay in report["layers"] for f in lay["findings"]}
            if case.finding:
                assert case.finding in rules, rules
    assert tree_digest(root) == before
    assert list(private_tmp.iterdir()) == []


@pytest.mark.parametrize(
    "case",
    [c for c in CASES if c.exit_code == 0 and c.id != "end-blocks-only"],
    ids=lambda c: c.id,
)
@pytest.mark.parametrize("command", ["inspect", "files"])
@pytest.mark.parametrize("as_json", [False, True])
def test_tolerated_input_renders_in_every_form(case, command, as_json, tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    args = [a for a in case.make(root) if a != "--json"]
    args[0] = command

    outcome = invoke(args + (["--json"] if as_json else []))

    assert outcome.exit_code == 0, outcome
    if as_json:
        json.loads(outcome.stdout)
    else:
        assert "\x1b" not in outcome.stdout


def test_non_utf8_name_survives_json_as_backslash_x_text(tmp_path):
    args = on_top(raw_layer(member(b"etc/caf\xe9", b"x")))(tmp_path)

    outcome = invoke(["files", *args[1:]])

    paths = [item["path"] for item in json.loads(outcome.stdout.encode("utf-8"))]
    assert "etc/caf\\xe9" in paths


def test_hardlink_chain_shares_one_inode(tmp_path):
    bad = built(layer().file("a", b"data").hardlink("b", "a").hardlink("c", "b"))
    args = on_top(bad)(tmp_path)

    outcome = invoke(["files", *args[1:]])

    items = {i["path"]: i for i in json.loads(outcome.stdout)}
    assert {items[p]["sha256"] for p in ("a", "b", "c")} == {sha(b"data")[7:]}


def test_gzip_bomb_passes_when_max_size_is_raised(tmp_path):
    args = on_top(_gzip_bomb, "bomb.tar.gz")(tmp_path)

    outcome = invoke([*args, "--max-size", "100MB"])

    assert outcome.exit_code == 0, outcome


def test_default_size_limit_is_finite_and_can_be_lifted():
    from layerdiff.blobs import DEFAULT_MAX_SIZE

    assert 0 < DEFAULT_MAX_SIZE < 1 << 40
    assert cli._parse_size("none") is None


# -- outputs ------------------------------------------------------------------


def test_output_onto_an_input_is_refused(tmp_path, private_tmp):
    app = write_docker_save(tmp_path / "app.tar", [_base()])
    before = tree_digest(tmp_path)

    outcome = invoke(["inspect", app, "-o", app])

    assert_clean_error(outcome, "app.tar")
    assert tree_digest(tmp_path) == before


def test_output_inside_an_input_directory_is_refused(tmp_path):
    layout = write_oci_layout(tmp_path / "layout", [_base()])
    before = tree_digest(tmp_path)

    outcome = invoke(["inspect", layout, "-o", layout / "blobs" / "report.json"])

    assert_clean_error(outcome, "report.json")
    assert tree_digest(tmp_path) == before


def test_existing_output_survives_a_failed_run(tmp_path):
    (tmp_path / "bad.tar").write_bytes(raw_layer(member(b"../x", b"1")))
    out = tmp_path / "report.txt"
    out.write_text("previous report\n")

    outcome = invoke(["inspect", tmp_path / "bad.tar", "-o", out])

    assert_clean_error(outcome, "bad.tar")
    assert out.read_text() == "previous report\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tar", "report.txt"]


def test_output_into_a_missing_directory_is_a_clean_error(tmp_path):
    app = write_docker_save(tmp_path / "app.tar", [_base()])

    outcome = invoke(["inspect", app, "-o", tmp_path / "no" / "report.txt"])

    assert_clean_error(outcome, "report.txt")


@pytest.mark.parametrize(
    "args",
    [["inspect"], ["inspect", "x.tar", "--layer", "zero"],
     ["files", "x.tar", "--max-size", "lots"], ["inspect", "x.tar", "-o", "."]],
    ids=["no-input", "bad-layer", "bad-size", "output-is-a-directory"],
)  # fmt: skip
def test_usage_errors_are_one_line_and_a_hint(args):
    outcome = invoke(args)

    assert_clean_error(outcome)


def test_output_file_is_written_whole(tmp_path):
    app = write_docker_save(tmp_path / "app.tar", [_base()])

    outcome = invoke(["files", app, "--json", "-o", tmp_path / "files.json"])

    assert outcome.exit_code == 0
    assert outcome.stdout == ""
    assert json.loads((tmp_path / "files.json").read_text())


def _signal_mid_read(tmp_path: Path, signum: int) -> tuple[int, str, Path]:
    """Start the tool on a gzip archive fed through a FIFO, then signal it.

    The tool is stopped while it decompresses into its temporary file, the
    one moment a partial file exists.
    """
    fifo = tmp_path / "feed.tar.gz"
    os.mkfifo(fifo)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    out = tmp_path / "report.json"
    out.write_text("previous\n")
    env = dict(os.environ, TMPDIR=str(scratch))
    process = subprocess.Popen(
        [sys.executable, "-m", "layerdiff", "inspect", str(fifo), "-o", str(out)],
        stderr=subprocess.PIPE,
        env=env,
    )
    payload = gzip.compress(tar_of({"manifest.json": b"[]" + b" " * 200000}))
    with open(fifo, "wb") as feed:
        feed.write(payload[: len(payload) // 2])
        feed.flush()
        for _ in range(3000):  # wait, up to a minute, for the temporary file
            if list(scratch.iterdir()):
                break
            subprocess.run(["sleep", "0.02"], check=False)
        assert list(scratch.iterdir()), "the tool never started decompressing"
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
    return process.returncode, stderr.decode(), scratch


@pytest.mark.parametrize("signum", [2, 15], ids=["SIGINT", "SIGTERM"])
def test_signal_leaves_no_partial_file_behind(tmp_path, signum):
    code, stderr, scratch = _signal_mid_read(tmp_path, signum)

    assert code == 130, stderr
    assert stderr == "layerdiff: interrupted\n"
    assert list(scratch.iterdir()) == []
    assert (tmp_path / "report.json").read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "feed.tar.gz",
        "report.json",
        "tmp",
    ]


def test_fifo_inside_a_layout_directory_does_not_hang(tmp_path):
    layout = write_oci_layout(tmp_path / "layout", [_base()])
    (layout / "index.json").unlink()
    os.mkfifo(layout / "index.json")

    outcome = invoke(["inspect", layout], limit_seconds=30)

    assert_clean_error(outcome, "layout")


def test_symlink_out_of_a_layout_directory_is_not_followed(tmp_path):
    layout = write_oci_layout(tmp_path / "layout", [_base()])
    secret = tmp_path / "secret"
    secret.write_text("{}")
    (layout / "index.json").unlink()
    (layout / "index.json").symlink_to(secret)

    outcome = invoke(["inspect", layout])

    assert_clean_error(outcome, "layout")


def test_the_installed_command_prints_no_traceback(tmp_path):
    bad = tmp_path / "bad.tar"
    bad.write_bytes(raw_layer(member(b"../x", b"1")))

    done = subprocess.run(
        [sys.executable, "-m", "layerdiff", "inspect", str(bad)],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
    )

    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) == 1
    assert "bad.tar" in done.stderr and "'../x'" in done.stderr

