"""The layer index cache: same reports as a cold run, safe when damaged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from builders import layer, write_docker_save, write_oci_layout
from conftest import run_cli

from layerdiff import inspect_image, open_image
from layerdiff.cache import LayerCache, default_cache_dir
from layerdiff.errors import DigestMismatchError, SizeLimitError
from layerdiff.render import inspect_json, to_json

BASE = (
    layer()
    .dir("etc")
    .file("etc/os-release", b"ID=test\n")
    .file("etc/passwd", b"root:x:0:0\n")
    .xattr("etc/passwd", "user.note", b"\x00\xffbinary")
    .dir("usr")
    .dir("usr/bin")
    .file("usr/bin/tool", b"\x7fELF" * 100, mode=0o755)
    .hardlink("usr/bin/tool2", "usr/bin/tool")
    .symlink("usr/bin/t", "tool")
    .whiteout("etc/none")
)
APP = layer().dir("app").file("app/main.py", b"print(1)\n").whiteout("etc/passwd")
OTHER = layer().dir("srv").file("srv/data", b"other")


def _report(img, cache=None) -> str:
    try:
        return to_json(inspect_json(inspect_image(img, cache=cache)))
    finally:
        img.close()


def _index_files(cache_dir: Path) -> list[Path]:
    return sorted(p for p in cache_dir.rglob("*") if p.is_file())


@pytest.fixture
def oci(tmp_path):
    def make(name: str, *builders, compress=True) -> str:
        layers = [b.tar_bytes() for b in builders]
        return str(write_oci_layout(tmp_path / name, layers, compress=compress))

    return make


def test_cached_report_is_identical_to_a_cold_run(tmp_path, oci):
    image = oci("img", BASE, APP)
    cache = LayerCache(str(tmp_path / "cache"))

    cold = _report(open_image(image))
    first = _report(open_image(image), cache)
    second = _report(open_image(image), cache)

    assert first == cold
    assert second == cold
    assert (cache.misses, cache.hits) == (2, 2)


def test_image_sharing_a_base_layer_reads_only_its_new_layer(tmp_path, oci):
    cache = LayerCache(str(tmp_path / "cache"))
    _report(open_image(oci("one", BASE, APP)), cache)
    cache.hits = cache.misses = 0

    report = json.loads(_report(open_image(oci("two", BASE, OTHER)), cache))

    assert (cache.hits, cache.misses) == (1, 1)
    cold = json.loads(_report(open_image(oci("three", BASE, OTHER))))
    assert report["layers"] == cold["layers"]


def test_changed_layer_has_another_diff_id_and_is_read_again(tmp_path, oci):
    cache = LayerCache(str(tmp_path / "cache"))
    _report(open_image(oci("one", BASE)), cache)
    changed = layer().dir("etc").file("etc/os-release", b"ID=changed\n")
    cache.hits = cache.misses = 0

    report = json.loads(_report(open_image(oci("two", changed)), cache))

    assert (cache.hits, cache.misses) == (0, 1)
    assert report["layers"][0]["entries"] == 2


def test_same_diff_id_with_other_blob_bytes_is_read_in_full(tmp_path, oci):
    # The same tar, stored uncompressed: only a full read proves its diff_id.
    cache = LayerCache(str(tmp_path / "cache"))
    _report(open_image(oci("gzip", BASE)), cache)
    cache.hits = cache.misses = 0

    report = json.loads(_report(open_image(oci("plain", BASE, compress=False)), cache))

    assert (cache.hits, cache.misses) == (0, 1)
    assert report["layers"][0]["compression"] == "none"
    stored = json.loads(_report(open_image(oci("plain2", BASE, compress=False)), cache))
    assert stored["layers"][0]["compression"] == "none"
    assert cache.hits == 1


def test_blob_digest_is_still_verified_on_a_cache_hit(tmp_path, oci):
    image = oci("img", BASE, compress=False)  # the layer is the largest blob
    cache = LayerCache(str(tmp_path / "cache"))
    _report(open_image(image), cache)
    blob = max(Path(image, "blobs", "sha256").iterdir(), key=lambda p: p.stat().st_size)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))

    with pytest.raises(DigestMismatchError, match="blob digest does not match"):
        _report(open_image(image), cache)


def test_size_limit_applies_to_a_cached_layer(tmp_path, oci):
    image = oci("img", BASE)
    cache = LayerCache(str(tmp_path / "cache"))
    _report(open_image(image), cache)

    with pytest.raises(SizeLimitError):
        inspect_image(open_image(image), cache=cache, max_size=100)


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],  # truncated
        lambda data: data[:-1] + bytes([data[-1] ^ 1]),  # one bit flipped
        lambda data: b"",  # empty
        lambda data: b"garbage\n" * 10,  # not an index file
        lambda data: data.replace(b"index 1 ", b"index 9 ", 1),  # other version
    ],
    ids=["truncated", "bit-flip", "empty", "garbage", "other-version"],
)
def test_damaged_cache_file_is_ignored_and_rebuilt(tmp_path, oci, damage):
    image = oci("img", BASE, APP)
    cache = LayerCache(str(tmp_path / "cache"))
    cold = _report(open_image(image), cache)
    files = _index_files(tmp_path / "cache")
    assert len(files) == 2
    good = files[0].read_bytes()
    files[0].write_bytes(damage(good))
    cache.hits = cache.misses = 0

    again = _report(open_image(image), cache)

    assert again == cold
    assert (cache.hits, cache.misses) == (1, 1)
    assert files[0].read_bytes() == good


def test_cache_file_declaring_a_huge_body_is_ignored(tmp_path, oci):
    image = oci("img", BASE)
    cache = LayerCache(str(tmp_path / "cache"))
    cold = _report(open_image(image), cache)
    (path,) = _index_files(tmp_path / "cache")
    head, _, body = path.read_bytes().partition(b"\n")
    fields = head.split(b" ")
    path.write_bytes(b" ".join(fields[:3] + [b"%d" % (1 << 62)]) + b"\n" + body)
    cache.hits = cache.misses = 0

    assert _report(open_image(image), cache) == cold
    assert (cache.hits, cache.misses) == (0, 1)


def test_symlinked_cache_file_is_not_followed(tmp_path, oci):
    # Even a link to a good index is ignored: the cache never follows one.
    image = oci("img", BASE)
    cache = LayerCache(str(tmp_path / "cache"))
    cold = _report(open_image(image), cache)
    (path,) = _index_files(tmp_path / "cache")
    elsewhere = tmp_path / "elsewhere"
    path.rename(elsewhere)
    path.symlink_to(elsewhere)
    cache.hits = cache.misses = 0

    assert _report(open_image(image), cache) == cold
    assert (cache.hits, cache.misses) == (0, 1)
    assert not path.is_symlink()  # rebuilt as a regular file


def test_fifo_in_place_of_a_cache_file_does_not_block(tmp_path, oci):
    image = oci("img", BASE)
    cache_dir = tmp_path / "cache"
    assert run_cli("inspect", image, "--cache", cache_dir).exit_code == 0
    (path,) = _index_files(cache_dir)
    path.unlink()
    os.mkfifo(path)

    # A separate process, so that a read blocking on the fifo fails the
    # test instead of hanging the suite.
    done = subprocess.run(
        [sys.executable, "-m", "layerdiff", "-v", "inspect", image,
         "--cache", str(cache_dir)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert "not a regular file" in done.stderr


def test_cache_file_with_a_valid_checksum_but_bad_fields_is_rebuilt(tmp_path, oci):
    # A well-formed file that lies about its layer is not trusted either.
    from layerdiff import cache as cache_module

    image = oci("img", BASE)
    cache = LayerCache(str(tmp_path / "cache"))
    cold = _report(open_image(image), cache)
    (path,) = _index_files(tmp_path / "cache")
    changeset = cache_module._decode(path.read_bytes())
    changeset.diff_id = "sha256:" + "0" * 64
    path.write_bytes(cache_module._encode(changeset))

    assert _report(open_image(image), cache) == cold
    assert cache_module._decode(path.read_bytes()).diff_id != changeset.diff_id


def _store_and_load(directory: str, image: str, rounds: int) -> int:
    from layerdiff.layer import read_changeset

    img = open_image(image)
    ref = img.layers[0]
    with ref.location.open() as handle:
        changeset = read_changeset(handle, blob_size=ref.location.size)
    img.close()
    cache = LayerCache(directory)
    seen = 0
    for _ in range(rounds):
        cache.store(changeset)
        loaded = cache.load(changeset.diff_id)
        assert loaded is not None  # never half a file
        assert loaded.entries == changeset.entries
        seen += 1
    return seen


def test_concurrent_writers_never_expose_a_partial_file(tmp_path, oci):
    image = oci("img", BASE)
    directory = str(tmp_path / "cache")

    with ProcessPoolExecutor(max_workers=4) as pool:
        results = list(
            pool.map(_store_and_load, [directory] * 4, [image] * 4, [50] * 4)
        )

    assert results == [50] * 4
    files = _index_files(tmp_path / "cache")
    assert len(files) == 1 and not files[0].name.startswith(".tmp")


def test_unwritable_cache_directory_does_not_fail_the_run(tmp_path, oci):
    image = oci("img", BASE)
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")

    report = _report(open_image(image), LayerCache(str(blocker / "cache")))

    assert report == _report(open_image(image))


def test_bare_layers_are_never_cached(tmp_path):
    path = BASE.build(tmp_path / "base.tar")
    cache = LayerCache(str(tmp_path / "cache"))

    _report(open_image([str(path)]), cache)

    assert not (tmp_path / "cache").exists()


def test_cli_cache_and_no_cache_give_the_same_json(tmp_path):
    image = write_docker_save(tmp_path / "img.tar", [BASE.tar_bytes(), APP.tar_bytes()])
    cache = tmp_path / "cache"

    cold = run_cli("inspect", "--json", "--no-cache", image)
    warm1 = run_cli("inspect", "--json", "--cache", cache, image)
    warm2 = run_cli("inspect", "--json", "--cache", cache, image)
    files1 = run_cli("files", "--json", "--no-cache", image)
    files2 = run_cli("files", "--json", "--cache", cache, image)

    assert cold.exit_code == warm1.exit_code == warm2.exit_code == 0
    assert cold.output == warm1.output == warm2.output
    assert files1.output == files2.output
    assert len(_index_files(cache)) == 2


def test_default_cache_directory_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == os.path.join(str(tmp_path), "layerdiff")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == str(tmp_path / "home" / ".cache" / "layerdiff")
