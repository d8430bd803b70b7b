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
