"""Against peer tools: buildah and podman on the same change set, skopeo, umoci.

The peer scripts live in the ``shared/peers`` folder beside the repository
(or where LAYERDIFF_PEERS points); each test skips when they or the tool it
needs are absent, or when a script cannot run here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from conftest import REPO, run_cli

PEERS = Path(os.environ.get("LAYERDIFF_PEERS", REPO.parent / "shared" / "peers"))


def _script(name: str, *args: Path, env: dict | None = None) -> None:
    script = PEERS / name
    if not script.is_file():
        pytest.skip(f"peer script {script} not found")
    if os.geteuid() != 0:
        pytest.skip("the peer scripts need root")
    done = subprocess.run(
        ["bash", str(script), *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )
    if done.returncode != 0:
        pytest.skip(f"{name} failed here: {done.stderr.strip()[-300:]}")


@pytest.fixture(scope="module")
def peer_base(tmp_path_factory):
    base = tmp_path_factory.mktemp("peers") / "base"
    _script("make-base.sh", base)
    return base


@pytest.fixture(scope="module")
def hand(peer_base, tmp_path_factory):
    out = tmp_path_factory.mktemp("peers") / "hand"
    _script("overlay-hand.sh", peer_base, out)
    return out


def _layer_signature(path: Path) -> dict[str, tuple]:
    """Name -> (type, mode, owner, size, link, xattr names), as peers compare."""
    found = {}
    with tarfile.open(path) as tar:
        for member in tar.getmembers():
            name = member.name.lstrip("./").rstrip("/")
            if not name:
                continue
            is_whiteout = name.rsplit("/", 1)[-1].startswith(".wh.")
            found[name] = (
                "whiteout" if is_whiteout else member.type,
                None if is_whiteout else member.mode & 0o7777,
                member.uid,
                member.gid,
                member.size,
                "" if is_whiteout else member.linkname,
                sorted(k for k in member.pax_headers if k.startswith("SCHILY.xattr.")),
            )
    return found


def test_kernel_and_fuse_overlayfs_upper_dirs_give_the_same_changes(peer_base, hand):
    base = peer_base / "base-docker.tar"

    kernel = run_cli("changes", hand / "upperdir", "--base", base, "--json")
    fuse = run_cli("changes", hand / "fuse-upperdir", "--base", base, "--json")
    from_tar = run_cli("changes", hand / "upperdir.tar", "--base", base, "--json")

    assert kernel.exit_code == 0, kernel.stderr
    assert fuse.json == kernel.json
    assert from_tar.json == kernel.json
    opaque = [r["path"] for r in kernel.json if r["change"] == "opaque"]
    assert opaque == ["opt/opaque"]


def test_committed_layer_matches_buildah_commit_of_the_same_changes(
    peer_base, hand, tmp_path
):
    ours = tmp_path / "layer.tar"

    result = run_cli(
        "commit", hand / "upperdir", "--base", peer_base / "base-docker.tar",
        "-o", tmp_path / "out.tar", "--layer-out", ours, "--compression", "none",
    )  # fmt: skip

    assert result.exit_code == 0, result.stderr
    assert _layer_signature(ours) == _layer_signature(hand / "buildah-layer.tar")


@pytest.mark.parametrize("fmt", ["docker", "oci"])
def test_skopeo_and_umoci_accept_the_committed_image(peer_base, hand, tmp_path, fmt):
    if not shutil.which("skopeo") or not shutil.which("umoci"):
        pytest.skip("skopeo and umoci are not installed")
    out = tmp_path / "new.tar"
    result = run_cli(
        "commit", hand / "upperdir", "--base", peer_base / "base-docker.tar",
        "-o", out, "--format", fmt, "--tag", "new:1",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    transport = "docker-archive:" if fmt == "docker" else "oci-archive:"
    reference = f"{transport}{out}" + (":new:1" if fmt == "oci" else "")

    inspected = subprocess.run(
        ["skopeo", "inspect", reference], capture_output=True, text=True, check=False
    )
    copied = subprocess.run(
        ["skopeo", "copy", reference, f"oci:{tmp_path / 'layout'}:x"],
        capture_output=True,
        text=True,
        check=False,
    )
    unpacked = subprocess.run(
        ["umoci", "unpack", "--image", f"{tmp_path / 'layout'}:x",
         str(tmp_path / "bundle")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip

    assert inspected.returncode == 0, inspected.stderr
    assert len(json.loads(inspected.stdout)["Layers"]) == 2
    assert copied.returncode == 0, copied.stderr
    assert unpacked.returncode == 0, unpacked.stderr
    rootfs = tmp_path / "bundle" / "rootfs"
    assert sorted(os.listdir(rootfs / "opt" / "opaque")) == ["new1"]
    assert not (rootfs / "etc" / "delete-me").exists()
    assert os.getxattr(rootfs / "root" / "new.txt", "user.newfile") == b"world"
    h1, h2 = os.stat(rootfs / "root" / "h1"), os.stat(rootfs / "root" / "h2")
    assert h1.st_ino == h2.st_ino


def test_changes_agree_with_podman_diff_but_for_the_documented_differences(
    peer_base, tmp_path
):
    out = tmp_path / "scenario"
    _script("container-scenario.sh", peer_base, out)
    if not (out / "podman-diff.txt").is_file():
        pytest.skip("the container scenario left no podman diff")

    result = run_cli(
        "changes", out / "upperdir", "--base", peer_base / "base-docker.tar",
        "--inspect", out / "inspect.json", "--json",
        # the script keeps a copy of the volume; the named one may be gone
        "--volume", f"{out / 'volume'}:/var/lib/data",
    )  # fmt: skip

    ours = {(r["kind"], "/" + r["path"]) for r in result.json}
    theirs = {
        tuple(line.split(" ", 1))
        for line in (out / "podman-diff.txt").read_text().splitlines()
    }
    # podman hides the runtime's stubs and /run (because of .containerenv),
    # does not look into volumes, and shows an opaque directory as deleted
    # and re-added where we name the lower children it hides.
    assert ours - theirs == {
        ("A", "/etc/hostname"),
        ("A", "/etc/hosts"),
        ("A", "/etc/mtab"),
        ("A", "/etc/resolv.conf"),
        ("A", "/run"),
        ("A", "/run/.containerenv"),
        ("A", "/mnt/bind/bind.txt"),
        ("A", "/var/lib/data/vol.txt"),
        ("C", "/opt/opaque"),
        ("D", "/opt/opaque/old1"),
        ("D", "/opt/opaque/old2"),
    }
    assert theirs - ours == {("D", "/opt/opaque")}
    lost = {r["path"]: r["reason"] for r in result.json if not r["committed"]}
    assert lost["var/lib/data/vol.txt"] == "volume"
    assert lost["mnt/bind/bind.txt"] == "bind-mount"
    assert lost["etc/hosts"] == "stub"
