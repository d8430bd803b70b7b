"""Progress while layers are read: it moves inside a layer and ends at the total."""

from __future__ import annotations

import random

import pytest
from builders import layer, write_oci_layout

from layerdiff import inspect as inspect_module
from layerdiff import open_image
from layerdiff.cache import LayerCache
from layerdiff.inspect import read_layers

MIB = 1 << 20


def _noise(size: int, seed: int) -> bytes:
    """Bytes that gzip cannot shrink, so a layer's blob is about ``size``."""
    return random.Random(seed).randbytes(size)


@pytest.fixture
def image(tmp_path):
    big = layer().dir("data").file("data/big.bin", _noise(5 * MIB, 1))
    small = layer().file("note", b"hello")
    other = layer().file("more.bin", _noise(3 * MIB, 2))
    layers = [b.tar_bytes() for b in (big, small, other)]
    return str(write_oci_layout(tmp_path / "img", layers))


def _read(source: str, **options) -> tuple[list[tuple[int, int]], list[int]]:
    """Read every layer; return the progress calls and the blob sizes."""
    calls: list[tuple[int, int]] = []
    img = open_image([source])
    try:
        sizes = [ref.location.size for ref in img.layers]
        for _ in read_layers(img, progress=lambda *call: calls.append(call), **options):
            pass
    finally:
        img.close()
    return calls, sizes


def test_progress_moves_while_one_large_layer_is_read(image):
    calls, sizes = _read(image, jobs=1)

    inside_first = [done for done, _ in calls if 0 < done < sizes[0]]
    assert len(inside_first) >= 3
    assert [done for done, _ in calls] == sorted({done for done, _ in calls})
    assert calls[-1] == (sum(sizes), sum(sizes))
    assert {total for _, total in calls} == {sum(sizes)}


def test_progress_from_worker_processes_never_goes_back_and_ends_at_total(
    image, monkeypatch
):
    monkeypatch.setattr(inspect_module, "_PARALLEL_THRESHOLD", 0)

    calls, sizes = _read(image, jobs=2)

    dones = [done for done, _ in calls]
    assert dones == sorted(set(dones))
    assert calls[-1] == (sum(sizes), sum(sizes))


def test_layers_from_the_cache_count_as_read_at_once(image, tmp_path):
    cache = LayerCache(str(tmp_path / "cache"))
    _read(image, jobs=1, cache=cache)

    calls, sizes = _read(image, jobs=1, cache=cache)

    assert cache.hits == 3
    assert calls == [
        (sizes[0], sum(sizes)),
        (sizes[0] + sizes[1], sum(sizes)),
        (sum(sizes), sum(sizes)),
    ]


class _Slots:
    """Stands in for the shared array: records what is written to each slot."""

    def __init__(self) -> None:
        self.writes: dict[int, list[int]] = {}

    def __setitem__(self, slot: int, value: int) -> None:
        self.writes.setdefault(slot, []).append(value)


def test_a_worker_counts_its_layer_in_its_slot_as_it_reads(image, monkeypatch):
    slots = _Slots()
    monkeypatch.setattr(inspect_module, "_worker_counts", slots)
    img = open_image([image])

    try:
        ref = img.layers[0]
        inspect_module._read_in_worker(ref, None, None, 4)
    finally:
        img.close()

    written = slots.writes[4]
    assert len([n for n in written if n < ref.location.size]) >= 3
    assert written == sorted(written)
    assert written[-1] == ref.location.size


def test_the_parent_adds_the_counts_of_layers_under_way_to_those_done():
    calls = []
    counts = [0, 0, 0]
    tracker = inspect_module._Tracker(
        lambda *call: calls.append(call), [10, 20, 30], counts
    )

    counts[0], counts[2] = 4, 7
    tracker.poll()
    counts[0] = 10
    tracker.finished()
    tracker.poll()
    counts[1] = 20
    tracker.poll()
    tracker.finished()  # 30 done, below the 37 shown: not shown
    counts[2] = 30
    tracker.finished()

    assert calls == [(11, 60), (17, 60), (37, 60), (60, 60)]
