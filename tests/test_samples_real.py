"""Every archive of the real samples, read by the library and the CLI.

The expected values were checked by hand against GNU tar listings, the
configs' diff_ids and sha256sum of the files.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import run_cli

from layerdiff import inspect_image, merged_view, open_image
from layerdiff.errors import ImageSelectionError, LayerdiffError

GOOD = [
    "dive/test-docker-image.tar",
    "dive/test-oci-gzip-image.tar",
    "dive/test-oci-uncompressed-image.tar",
    "dive/test-oci-zstd-image.tar",
    "dive/test-gzip-image.tar",
    "go-containerregistry/hello-world-v25.tar",
    "go-containerregistry/whiteout_image.tar",
    "go-containerregistry/overwritten_file.tar",
    "go-containerregistry/test_index_one_image",
    "go-containerregistry/content.tar.zst",
    "moby/emptyLayer.tar",
    "moby/46af0962ab5afeb5ce6740d4d91652e69206fc991fd5328c1a94d364ad00e457/layer.tar",
    "container-diff/la-croix1.tar",
    "container-diff/la-croix2.tar",
    "container-diff/la-croix-wh.tar",
    "container-diff/la-croix-update.tar",
    "container-diff/la-croix-dir-update.tar",
    "regclient/layer-wh.tar",
    "buildah/content.tar.gz",
    "tar-split/longlink.tar.gz",
    "tar-split/pax.tar",
    "tar-split/hardlink.tar",
    "image/almostempty.tar",
    "stereoscope/multiplatform_oci_dir",
    "kaniko/sys.tar.gz",
]


def _report(path, **options):
    img = open_image(str(path), **options)
    try:
        return inspect_image(img)
    finally:
        img.close()


def _view(*paths, **options):
    img = open_image([str(p) for p in paths], **options)
    try:
        return merged_view(img)
    finally:
        img.close()


def _files(samples_real, name, *args):
    result = run_cli("files", "--json", samples_real / name, *args)
    assert result.exit_code == 0, result.stderr
    return {item["path"]: item for item in result.json}


@pytest.mark.parametrize("name", GOOD)
def test_every_readable_sample_inspects_and_lists_files(samples_real, name):
    options = ["--platform", "linux/amd64"] if "multiplatform" in name else []

    inspected = run_cli("inspect", "--json", samples_real / name, *options)
    listed = run_cli("files", "--json", samples_real / name, *options)
    table = run_cli("inspect", samples_real / name, *options)

    assert inspected.exit_code == 0, inspected.stderr
    assert listed.exit_code == 0, listed.stderr
    assert table.exit_code == 0, table.stderr
    report = inspected.json
    assert report["schema_version"] == 1
    assert all(layer["diff_id"].startswith("sha256:") for layer in report["layers"])
    assert all(not item["path"].startswith(("/", "./")) for item in listed.json)


def test_dive_image_layers_diff_ids_and_changes(samples_real):
    report = _report(samples_real / "dive/test-docker-image.tar")

    assert report.name == "dive-test:latest"
    assert len(report.layers) == 14
    assert report.layers[0].diff_id == (
        "sha256:23bc2b70b2014dec0ac22f27bb93e9babd08cdd6f1115d0c955b9ff22b382f5a"
    )
    assert report.layers[-1].diff_id == (
        "sha256:ba689cac6a98c92d121fa5c9716a1bab526b8bb1fd6d43625c575b79e97300c5"
    )
    # The busybox layer: 17 dirs, 6 files, 392 hard links to bin/[.
    assert report.layers[0].entry_count == 415
    mv = {(c.path, c.kind.value) for c in report.layers[7].changes}
    assert mv == {("root/example/somefile3.txt", "delete"), ("root/saved.txt", "add")}
    rm = report.layers[9].changes
    assert [(c.path, c.kind.value, c.hidden, c.hidden_bytes) for c in rm] == [
        ("root/example", "delete", 4, 2 * 6405)
    ]
    chmods = [report.layers[i].changes for i in (4, 13)]
    assert [[(c.path, c.reason) for c in layer] for layer in chmods] == [
        [("root/example/somefile1.txt", "metadata")],
        [("root/saved.txt", "metadata")],
    ]
    # Layers that repeat root/ and root/example/ unchanged report nothing
    # for them.
    repeated = [c for layer in report.layers[3:] for c in layer.changes]
    assert {(c.path, c.kind.value) for c in repeated if c.path == "root/example"} == {
        ("root/example", "delete")
    }
    assert not [c for c in repeated if c.path == "root"]
    assert report.waste.deleted == 3 * 6405
    assert report.waste.metadata_only == 2 * 6405
    assert report.waste.shadowed == 0


def test_dive_busybox_hard_links_count_their_data_once(samples_real):
    report = _report(samples_real / "dive/test-docker-image.tar")
    view = _view(samples_real / "dive/test-docker-image.tar")

    bracket = view.get("bin/[")
    links = [n for n in view.iter_nodes() if n.entry.type.value == "hardlink"]
    assert len(links) == 392
    assert {n.entry.linkname for n in links} == {"bin/["}
    assert all(n.inode == bracket.inode for n in links)
    assert bracket.inode.refs == 393 and bracket.size == 1075464
    # 1075464 once, not 393 times; with getconf and the small etc files.
    assert report.layers[0].file_bytes == 1154361


def test_dive_busybox_hard_links_in_files_json_share_size_and_sha256(samples_real):
    files = _files(samples_real, "dive/test-docker-image.tar")

    bracket = files["bin/["]
    ls = files["bin/ls"]
    assert bracket["type"] == "file" and ls["type"] == "hardlink"
    assert ls["linkname"] == "bin/["
    assert (ls["size"], ls["sha256"]) == (bracket["size"], bracket["sha256"])
    assert bracket["mode"] == 0o755 and bracket["layer"] == 1
    assert files["root/saved.txt"]["mode"] == 0o755
    assert files["root/saved.txt"]["layer"] == 14
    assert "root/example" not in files


@pytest.mark.parametrize(
    "name, compression, size",
    [
        ("dive/test-oci-gzip-image.tar", "gzip", 4132),
        ("dive/test-oci-zstd-image.tar", "zstd", 4314),
        ("dive/test-oci-uncompressed-image.tar", "none", 12800),
    ],
)
def test_dive_oci_layers_decompress_to_the_same_diff_id(
    samples_real, name, compression, size
):
    report = _report(samples_real / name)
    files = _files(samples_real, name)

    assert report.format == "oci-layout" and report.platform == "linux/arm64"
    (layer,) = report.layers
    assert (layer.compression, layer.size, layer.uncompressed_size) == (
        compression,
        size,
        12800,
    )
    assert layer.diff_id == (
        "sha256:356d5e7f4012d87cb1078ac1f480e90528eec4940ce45c50380321436db38758"
    )
    assert list(files) == ["README.md"]
    assert files["README.md"]["size"] == 11189


def test_plain_tar_without_a_manifest_is_read_as_one_layer(samples_real):
    report = _report(samples_real / "dive/test-gzip-image.tar")

    assert report.format == "layers" and len(report.layers) == 1
    assert [c.path for c in report.layers[0].changes] == ["README.md"]


def test_docker_25_archive_uses_manifest_json_into_blobs(samples_real):
    report = _report(samples_real / "go-containerregistry/hello-world-v25.tar")
    files = _files(samples_real, "go-containerregistry/hello-world-v25.tar")

    assert report.format == "docker-save (OCI layout)"
    assert report.layers[0].digest == report.layers[0].diff_id
    assert report.layers[0].created_by == "COPY hello / # buildkit"
    assert files["hello"]["size"] == 9136 and files["hello"]["type"] == "file"


def test_whiteout_image_deletes_foo_and_keeps_bar(samples_real):
    report = _report(samples_real / "go-containerregistry/whiteout_image.tar")
    files = _files(samples_real, "go-containerregistry/whiteout_image.tar")

    assert len(report.layers) == 3
    assert [(c.path, c.kind.value) for c in report.layers[1].changes] == [
        ("foo.txt", "delete")
    ]
    assert report.layers[2].entry_count == 0  # an empty tar is a valid layer
    assert list(files) == ["bar.txt"]
    assert files["bar.txt"]["mode"] == 0o555


def test_overwritten_file_is_a_type_change_to_a_symlink(samples_real):
    report = _report(samples_real / "go-containerregistry/overwritten_file.tar")
    files = _files(samples_real, "go-containerregistry/overwritten_file.tar")

    assert ("foo.txt", "modify", "type") in {
        (c.path, c.kind.value, c.reason) for c in report.layers[1].changes
    }
    assert files["foo.txt"]["type"] == "symlink"
    assert files["foo.txt"]["linkname"] == "bar.txt"
    assert report.layers[0].waste.shadowed == 4


def test_two_image_bundle_needs_image_and_lists_the_choices(samples_real):
    bundle = samples_real / "go-containerregistry/test_bundle.tar"

    with pytest.raises(ImageSelectionError, match="test_image_1"):
        open_image(str(bundle))
    one = _files(samples_real, "go-containerregistry/test_bundle.tar", "--image",
                 "test_image_1")  # fmt: skip
    two = _files(samples_real, "go-containerregistry/test_bundle.tar", "--image",
                 "test_image_2")  # fmt: skip
    failed = run_cli("files", bundle)

    assert list(one) == ["bar", "foo"]
    assert list(two) == ["bat", "baz"]
    assert failed.exit_code == 2
    assert "test_image_1" in failed.stderr and "test_image_2" in failed.stderr


def test_bundle_layer_with_a_foreign_style_descriptor_is_still_read(samples_real):
    report = _report(
        samples_real / "go-containerregistry/test_bundle.tar", image="test_image_2"
    )

    (layer,) = report.layers
    assert layer.diff_id == (
        "sha256:3610aa5267a210147ba6ca02cdd87610dfc08522de9c5f5015edd8ee14853fd8"
    )
    assert layer.compression == "none"


def test_oci_directory_layout_with_one_gzip_layer(samples_real):
    report = _report(samples_real / "go-containerregistry/test_index_one_image")

    (layer,) = report.layers
    assert layer.digest == (
        "sha256:492b89b9dd3cda4596f94916d17f6901455fb8bd7f4c5a2a90df8d39c90f48a0"
    )
    assert (layer.compression, layer.size) == ("gzip", 114)
    assert [(c.path, c.size) for c in layer.changes] == [("test", 5)]


def test_bare_zstd_layer_is_detected_by_its_magic_bytes(samples_real):
    report = _report(samples_real / "go-containerregistry/content.tar.zst")

    (layer,) = report.layers
    assert layer.compression == "zstd"
    assert layer.diff_id == (
        "sha256:3610aa5267a210147ba6ca02cdd87610dfc08522de9c5f5015edd8ee14853fd8"
    )
    assert sorted(c.path for c in layer.changes) == ["bat", "baz"]


def test_pre_1_10_archive_orders_layers_by_the_parent_chain(samples_real):
    report = _report(samples_real / "moby/emptyLayer.tar")
    files = _files(samples_real, "moby/emptyLayer.tar")

    assert report.format == "docker-save (legacy)"
    assert report.name == "matthughes/library-centos:6-2015.03.20"
    assert [layer.uncompressed_size for layer in report.layers] == [512, 0, 10240]
    # The zero-byte layer.tar hashes to the sha256 of nothing.
    assert report.layers[1].diff_id == (
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert files["tmp"]["mode"] == 0o1777 and files["tmp"]["layer"] == 3
    assert files["tmp/foo"]["type"] == "file"


def test_old_layer_keeps_absolute_symlinks_and_a_0440_sudoers(samples_real):
    files = _files(
        samples_real,
        "moby/46af0962ab5afeb5ce6740d4d91652e69206fc991fd5328c1a94d364ad00e457/"
        "layer.tar",
    )

    assert files["dev/core"]["linkname"] == "/proc/kcore"
    assert files["dev/ptmx"]["linkname"] == "pts/ptmx"
    assert files["etc/sudoers"]["mode"] == 0o440
    assert files["etc/sudoers"]["size"] == 3348


def test_la_croix_whiteouts_applied_on_la_croix2(samples_real):
    base = samples_real / "container-diff/la-croix2.tar"
    upper = samples_real / "container-diff/la-croix-wh.tar"
    img = open_image([str(base), str(upper)])
    report = inspect_image(img)
    view = _view(base, upper)

    top = {(c.path, c.kind.value, c.hidden) for c in report.layers[1].changes}
    assert top == {
        ("lime.txt", "delete", 0),
        ("nest", "delete", 1),
        ("nest2", "add", 0),
        ("nest2/hello", "add", 0),
    }
    assert sorted(p for p in view.nodes if p) == [
        "nest2",
        "nest2/hello",
        "passionfruit.txt",
        "peach-pear.txt",
    ]


def test_la_croix_update_rewrites_lime_content(samples_real):
    report = _report_stack(
        samples_real / "container-diff/la-croix1.tar",
        samples_real / "container-diff/la-croix-update.tar",
        samples_real / "container-diff/la-croix-dir-update.tar",
    )

    assert [
        (c.path, c.kind.value, c.reason, c.size) for c in report.layers[1].changes
    ] == [("lime.txt", "modify", "content", 13)]
    assert {(c.path, c.kind.value) for c in report.layers[2].changes} == {
        ("nest", "add"),
        ("nest/f2.txt", "add"),
    }


def _report_stack(*paths):
    img = open_image([str(p) for p in paths])
    try:
        return inspect_image(img)
    finally:
        img.close()


def test_regclient_layer_whiteout_and_opaque_marker_are_not_files(samples_real):
    files = _files(samples_real, "regclient/layer-wh.tar")
    report = _report(samples_real / "regclient/layer-wh.tar")

    assert list(files) == ["exdir", "layer1.txt", "layer3.txt"]
    assert [f.rule for f in report.layers[0].findings] == ["whiteout-missing-target"]
    assert report.layers[0].findings[0].path == "layer2.txt"


def test_pax_global_header_is_not_a_file(samples_real):
    files = _files(samples_real, "buildah/content.tar.gz")

    assert list(files) == ["content.txt"]
    assert (files["content.txt"]["uid"], files["content.txt"]["gid"]) == (2510, 2516)
    assert files["content.txt"]["size"] == 25


def test_gnu_longlink_names_are_read_whole(samples_real):
    files = _files(samples_real, "tar-split/longlink.tar.gz")

    assert len(files) == 18
    longest = max(files, key=len)
    assert len(longest) > 100
    assert longest.startswith("asfd/asdf/asdf/asfd/")
    assert longest.endswith("/axcdfasdfasdfasdfasdfasdfasdfasdfasdfasdf")


def test_pax_path_and_linkpath_records_are_read(samples_real):
    files = _files(samples_real, "tar-split/pax.tar")
    digits = "".join(str(i) for i in range(1, 101))

    assert files[f"a/{digits}"]["size"] == 7
    assert files["a/b"]["type"] == "symlink"
    assert files["a/b"]["linkname"] == digits


def test_hardlink_tar_links_hard_txt_to_file_txt(samples_real):
    files = _files(samples_real, "tar-split/hardlink.tar")

    assert files["hard.txt"]["type"] == "hardlink"
    assert files["hard.txt"]["linkname"] == "file.txt"
    assert files["hard.txt"]["sha256"] == files["file.txt"]["sha256"]


def test_multiplatform_index_picks_the_platform_asked(samples_real):
    layout = samples_real / "stereoscope/multiplatform_oci_dir"

    arm = _report(layout, platform="linux/arm64")
    amd = _files(samples_real, "stereoscope/multiplatform_oci_dir", "--platform",
                 "linux/amd64")  # fmt: skip
    wrong = run_cli("files", layout, "--platform", "linux/s390x")

    assert arm.platform == "linux/arm64"
    assert [c.path for c in arm.layers[0].changes][-1] == "linux/arm64/README.md"
    assert "linux/amd64/README.md" in amd
    assert wrong.exit_code == 2
    assert "linux/amd64, linux/arm64" in wrong.stderr


def test_kaniko_sys_layer_keeps_large_uids(samples_real):
    files = _files(samples_real, "kaniko/sys.tar.gz")

    assert files["sys/fs/foo"]["uid"] == 185992
    assert files["sys/fs/foo"]["gid"] == 5000


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "layerdiff", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_corrupt_negative_size_tar_exits_2_with_one_line(samples_real):
    path = samples_real / "tar-split/neg-size.tar"

    with pytest.raises(LayerdiffError):
        inspect_image(open_image(str(path)))
    result = _cli("inspect", path)

    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "neg-size.tar" in result.stderr and "Traceback" not in result.stderr


def test_null_manifest_exits_2_naming_manifest_json(samples_real):
    result = _cli("files", samples_real / "go-containerregistry/null_manifest.tar")

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        (
            f"layerdiff: {samples_real / 'go-containerregistry/null_manifest.tar'}: "
            "manifest.json should be a list, found null"
        )
    ]
