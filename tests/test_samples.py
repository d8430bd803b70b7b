"""The bundled samples: reproducible, and read the same in both formats."""

from __future__ import annotations

import importlib.util

from conftest import REPO

from layerdiff import inspect_image, merged_view, open_image

SAMPLES = REPO / "samples"


def _make_samples():
    spec = importlib.util.spec_from_file_location(
        "make_samples", SAMPLES / "make_samples.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rerunning_the_sample_script_reproduces_the_committed_bytes(tmp_path):
    written = _make_samples().build(tmp_path)

    assert [p.name for p in written] == ["sample-docker.tar", "sample-oci.tar"]
    for path in written:
        assert path.read_bytes() == (SAMPLES / path.name).read_bytes(), path.name


def _report(name):
    img = open_image(str(SAMPLES / name))
    try:
        return inspect_image(img)
    finally:
        img.close()


def test_docker_save_and_oci_samples_give_the_same_report():
    docker = _report("sample-docker.tar")
    oci = _report("sample-oci.tar")

    assert [layer.diff_id for layer in docker.layers] == [
        layer.diff_id for layer in oci.layers
    ]
    assert [layer.changes for layer in docker.layers] == [
        layer.changes for layer in oci.layers
    ]
    assert [layer.created_by for layer in docker.layers] == [
        layer.created_by for layer in oci.layers
    ]
    assert docker.waste == oci.waste
    assert docker.uncompressed_size == oci.uncompressed_size
    assert oci.size < docker.size  # gzip layers against uncompressed ones
    assert [layer.compression for layer in oci.layers] == ["gzip"] * 4


def test_sample_package_step_adds_modifies_and_deletes():
    report = _report("sample-docker.tar")
    step = {(c.path, c.kind.value, c.reason) for c in report.layers[1].changes}

    assert step == {
        ("etc/conf.d", "opaque", None),
        ("etc/conf.d/curl", "add", None),
        ("etc/group", "modify", "metadata"),
        ("usr/bin/curl", "add", None),
        ("usr/bin/curl-static", "add", None),
        ("usr/lib/libcurl.so.4", "add", None),
        ("usr/lib/libcurl.so.4.8", "add", None),
        ("usr/share/doc/base", "delete", None),
        ("var/cache/pkg/INDEX.tar.gz", "delete", None),
        ("var/lib/pkg/installed", "modify", "content"),
    }
    base_waste = report.layers[0].waste
    # INDEX.tar.gz (20000) and the two docs (1080 + 1140) are deleted;
    # etc/group (26) is rewritten for a mode; the opaque etc/conf.d hides
    # network (35) and legacy/rc.conf (15); installed (31) is rewritten.
    assert base_waste.deleted == 20000 + 1080 + 1140
    assert base_waste.metadata_only == 26
    assert base_waste.shadowed == 35 + 15 + 31


def test_sample_history_skips_empty_steps_and_flags_the_volume_write():
    report = _report("sample-docker.tar")

    assert [layer.created_by for layer in report.layers] == [
        "/bin/sh -c #(nop) ADD file:base-rootfs.tar in / ",
        (
            "/bin/sh -c pkg add curl && rm -rf /usr/share/doc/base "
            "/var/cache/pkg/INDEX.tar.gz"
        ),
        "/bin/sh -c #(nop) COPY file:entrypoint.sh in /usr/local/bin/ ",
        "/bin/sh -c echo seeding > /data/seed.json",
    ]
    assert len(report.empty_history) == 5
    volume = [f for f in report.all_findings() if f.rule == "write-under-volume"]
    assert [(f.layer, f.path) for f in volume] == [(3, "data")]


def test_sample_merged_view_counts_the_busybox_hard_links_once():
    img = open_image(str(SAMPLES / "sample-docker.tar"))
    try:
        view = merged_view(img)
    finally:
        img.close()

    shell = view.get("bin/sh")
    assert shell.inode == view.get("bin/busybox").inode
    assert shell.inode.refs == 9 and shell.size == 96_000
    assert view.get("usr/bin/ping").entry.xattrs == {
        "security.capability": b"\x01\x00\x00\x02\x00 " + bytes(14)
    }
    assert view.child_paths("etc/conf.d") == ["etc/conf.d/curl"]
    assert "usr/share/doc/base" not in view and "usr/share/doc" in view
