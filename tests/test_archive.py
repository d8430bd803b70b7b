"""Image archives: every blob named by a digest is checked, platforms chosen."""

from __future__ import annotations

import json
import tarfile

import pytest
from builders import layer, write_docker_save, write_oci_layout
from conftest import run_cli

from layerdiff import open_image
from layerdiff.errors import DigestMismatchError, ImageSelectionError


def _oci(tmp_path):
    return write_oci_layout(tmp_path / "oci", [layer().file("a", b"1").tar_bytes()])


def _blob(oci, key):
    index = json.loads((oci / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"]
    manifest_path = oci / "blobs" / "sha256" / manifest_digest[7:]
    if key == "manifest":
        return manifest_path
    config = json.loads(manifest_path.read_text())["config"]["digest"]
    return oci / "blobs" / "sha256" / config[7:]


@pytest.mark.parametrize("which", ["config", "manifest"])
def test_an_edited_oci_blob_fails_its_digest(tmp_path, which):
    oci = _oci(tmp_path)
    blob = _blob(oci, which)
    blob.write_bytes(blob.read_bytes() + b" ")

    with pytest.raises(DigestMismatchError, match=f"{which} .* does not match"):
        open_image(str(oci))


def test_an_edited_docker_save_config_fails_its_digest(tmp_path):
    archive = write_docker_save(tmp_path / "a.tar", [layer().file("a").tar_bytes()])
    edited = tmp_path / "edited.tar"
    with tarfile.open(archive) as src, tarfile.open(edited, "w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()
            if member.name.endswith(".json") and member.name != "manifest.json":
                data = data.replace(b"step 0", b"EVIL 0")
            member.size = len(data)
            dst.addfile(member, __import__("io").BytesIO(data))

    result = run_cli("inspect", edited)

    assert result.exit_code == 2
    assert "does not match its digest" in result.stderr


def _multi_platform(tmp_path, platforms):
    oci = _oci(tmp_path)
    index_path = oci / "index.json"
    index = json.loads(index_path.read_text())
    descriptor = index["manifests"][0]
    index["manifests"] = []
    for text in platforms:
        os_, arch, *variant = text.split("/")
        platform = {"os": os_, "architecture": arch}
        if variant:
            platform["variant"] = variant[0]
        index["manifests"].append(dict(descriptor, platform=platform, annotations={}))
    index_path.write_text(json.dumps(index))
    return oci


def test_a_default_variant_matches_the_platform_without_it(tmp_path):
    oci = _multi_platform(tmp_path, ["linux/amd64", "linux/arm64"])

    img = open_image(str(oci), platform="linux/arm64/v8")

    assert img.platform == "linux/arm64"


def test_an_absent_platform_lists_what_the_index_has(tmp_path):
    oci = _multi_platform(tmp_path, ["linux/amd64", "linux/arm64/v8"])

    with pytest.raises(ImageSelectionError, match="linux/amd64, linux/arm64/v8"):
        open_image(str(oci), platform="linux/s390x")


def test_an_image_archive_among_layers_is_refused_by_name(tmp_path):
    bare = layer().file("a", b"1").build(tmp_path / "layer.tar")
    archive = write_docker_save(tmp_path / "image.tar", [layer().file("b").tar_bytes()])
    oci = write_oci_layout(
        tmp_path / "oci.tar", [layer().file("c").tar_bytes()], as_tar=True
    )

    for second in (archive, oci):
        result = run_cli("inspect", bare, second)

        assert result.exit_code == 2
        assert len(result.stderr.strip().splitlines()) == 1
        assert f"{second}: is an image archive, not a layer tar" in result.stderr


def test_a_truncated_bare_layer_names_the_layer_and_the_entry(tmp_path):
    path = tmp_path / "trunc-data.tar"
    path.write_bytes(layer().file("b.txt", b"x" * 600).tar_bytes()[:1100])

    result = run_cli("inspect", path)

    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "trunc-data.tar" in lines[0]
    assert "layer 1" in lines[0] and "'b.txt'" in lines[0]


@pytest.mark.parametrize("text", ["linux", "//", "linux/amd64/", "", "a/b/c/d"])
def test_a_malformed_platform_is_a_usage_error(tmp_path, text):
    oci = _oci(tmp_path)

    result = run_cli("inspect", oci, "--platform", text)

    assert result.exit_code == 2
    assert "os/arch[/variant]" in result.stderr
    assert result.stderr.count(repr(text)) == 1


def test_duplicate_tags_are_listed_with_numbers_to_choose_by(tmp_path):
    archive = write_docker_save(
        tmp_path / "a.tar", [layer().file("a").tar_bytes()], tag="demo/app:1.0"
    )
    doubled = tmp_path / "doubled.tar"
    with tarfile.open(archive) as src, tarfile.open(doubled, "w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()
            if member.name == "manifest.json":
                data = json.dumps(json.loads(data) * 2).encode()
            member.size = len(data)
            dst.addfile(member, __import__("io").BytesIO(data))

    listed = run_cli("inspect", doubled)
    chosen = run_cli("inspect", doubled, "--image", "#2")

    assert listed.exit_code == 2
    assert "#1 demo/app:1.0, #2 demo/app:1.0" in listed.stderr
    assert chosen.exit_code == 0
