"""Inspecting an image: read every layer, classify it, account for waste."""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import BinaryIO, Callable, Iterator

from . import paths
from .archive import Image, LayerRef
from .cache import LayerCache
from .classify import apply_layer
from .errors import DigestMismatchError, LayerdiffError, LayerFormatError
from .layer import read_changeset
from .model import (
    Changeset,
    EntryTable,
    Finding,
    ImageReport,
    LayerReport,
    Severity,
)
from .text import counted
from .tree import MergedView

__all__ = [
    "inspect_image",
    "read_layers",
    "merged_view",
    "declared_volumes",
    "declared_volume_writes",
]

log = logging.getLogger(__name__)

# Below this many compressed bytes, starting worker processes costs more
# than reading the layers in this process.
_PARALLEL_THRESHOLD = 32 << 20
# A layer being read reports its progress once per this many compressed
# bytes: often enough for a bar to move, rare enough to cost nothing.
_PROGRESS_STEP = 1 << 20
# How often the parent looks at the workers' progress while it waits.
_POLL_SECONDS = 0.2

Progress = Callable[[int, int], None]


class _CountingReader:
    """A blob handle that reports how many bytes were read from it so far."""

    def __init__(self, raw: BinaryIO, report: Callable[[int], None]) -> None:
        self._raw = raw
        self._report = report
        self._count = 0
        self._next = _PROGRESS_STEP

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._count += len(data)
        if self._count >= self._next:
            self._next = self._count + _PROGRESS_STEP
            self._report(self._count)
        return data


def _read_one(
    ref: LayerRef,
    max_size: int | None,
    cache_dir: str | None = None,
    report: Callable[[int], None] | None = None,
) -> tuple[Changeset, bool]:
    """Read one layer, or take it from the cache; tell which it was.

    ``report``, if given, is called with the count of compressed bytes read
    so far while the layer is parsed (not while a cached copy is checked).
    """
    assert ref.location is not None
    if ref.size is not None and ref.size != ref.location.size:
        raise DigestMismatchError(
            f"blob is {ref.location.size} bytes, the manifest says {ref.size}"
        )
    try:
        cache = LayerCache(cache_dir) if cache_dir is not None else None
        if cache is not None and ref.diff_id:
            with ref.location.open() as handle:
                cached = cache.lookup(
                    handle,
                    diff_id=ref.diff_id,
                    digest=ref.digest,
                    blob_size=ref.location.size,
                    max_size=max_size,
                )
            if cached is not None:
                return cached, True
        with ref.location.open() as handle:
            changeset = read_changeset(
                handle if report is None else _CountingReader(handle, report),
                digest=ref.digest,
                diff_id=ref.diff_id,
                max_size=max_size,
                blob_size=ref.location.size,
            )
    except OSError as exc:
        raise LayerFormatError(f"cannot read the layer: {exc.strerror}") from exc
    if cache is not None and ref.diff_id:
        cache.store(changeset)
    return changeset, False


# In a worker process: one slot per layer of the image being read, where
# the worker reading that layer keeps its count of compressed bytes read.
# The parent reads the slots to draw progress; shared memory, so no pipe
# or manager process is involved.
_worker_counts = None


def _share_counts(counts) -> None:
    global _worker_counts
    _worker_counts = counts


def _read_in_worker(
    ref: LayerRef, max_size: int | None, cache_dir: str | None, slot: int
) -> tuple[Changeset, bool]:
    """Read one layer in a worker process, counting its progress in ``slot``."""
    counts = _worker_counts

    def report(count: int) -> None:
        counts[slot] = count

    result = _read_one(ref, max_size, cache_dir, report)
    counts[slot] = ref.location.size  # done, also when taken from the cache
    return result


def _wait(future: Future, on_idle: Callable[[], None] | None):
    """Return the future's result, calling ``on_idle`` while it is not there."""
    if on_idle is None:
        return future.result()
    while True:
        try:
            return future.result(timeout=_POLL_SECONDS)
        except FutureTimeout:
            on_idle()


class _Tracker:
    """Turn the bytes read of each layer into Progress calls that never go back.

    Layers before ``position`` are done; in a worker process any layer
    from ``position`` up may be under way, with its count in ``counts``.
    """

    def __init__(self, progress: Progress, sizes: list[int], counts=None) -> None:
        self.progress = progress
        self.sizes = sizes
        self.total = sum(sizes)
        self.counts = counts
        self.position = 0
        self.done = 0
        self.shown = 0

    def _show(self, count: int) -> None:
        if count > self.shown:
            self.shown = count
            self.progress(count, self.total)

    def reading(self, count: int) -> None:
        """Take the count of the layer being read in this process."""
        self._show(self.done + min(count, self.sizes[self.position]))

    def poll(self) -> None:
        """Take the counts that worker processes keep for their layers."""
        sizes, counts = self.sizes, self.counts
        under_way = range(self.position, len(sizes))
        self._show(self.done + sum(min(counts[i], sizes[i]) for i in under_way))

    def finished(self) -> None:
        """Count the layer at ``position`` as read, and move on."""
        self.done += self.sizes[self.position]
        self.position += 1
        self._show(self.done)


def read_layers(
    img: Image,
    *,
    max_size: int | None = None,
    jobs: int | None = None,
    progress: Progress | None = None,
    cache: LayerCache | None = None,
) -> Iterator[tuple[LayerRef, Changeset | None]]:
    """Yield each layer with its changeset, bottom first.

    Layers are read in worker processes when there are several and they
    are large, so that decompression and hashing use every core; they are
    still yielded in order. A layer missing from the archive (allowed for
    non-distributable blobs) yields None. With a ``cache``, layers whose
    diff_id it holds are taken from it (see layerdiff.cache for what is
    still verified); new ones are added to it.

    ``progress`` is called with the compressed bytes read so far and the
    total, as they are read (here or in workers), each MiB or so; the
    count never goes back and ends at the total. A layer taken from the
    cache counts as read at once.
    """
    cache_dir = cache.directory if cache is not None else None
    refs = img.layers
    sizes = [r.location.size if r.location is not None else 0 for r in refs]
    total = sum(sizes)
    jobs = jobs or os.cpu_count() or 1
    parallel = jobs > 1 and len(refs) > 1 and total >= _PARALLEL_THRESHOLD
    executor: Executor | None = None
    futures: list[Future | None] = []
    counts = None
    if parallel:
        counts = multiprocessing.Array("q", len(refs), lock=False)
        executor = ProcessPoolExecutor(
            max_workers=min(jobs, len(refs)),
            initializer=_share_counts,
            initargs=(counts,),
        )
        futures = [
            executor.submit(_read_in_worker, r, max_size, cache_dir, i)
            if r.location
            else None
            for i, r in enumerate(refs)
        ]
    tracker = _Tracker(progress, sizes, counts) if progress is not None else None
    try:
        for position, ref in enumerate(refs):
            try:
                changeset = None
                if ref.location is None:
                    pass
                elif executor is not None:
                    on_idle = tracker.poll if tracker is not None else None
                    changeset, hit = _wait(futures[position], on_idle)
                    futures[position] = None  # the caller owns it now
                else:
                    report = tracker.reading if tracker is not None else None
                    changeset, hit = _read_one(ref, max_size, cache_dir, report)
                if changeset is not None and cache is not None:
                    if hit:
                        cache.hits += 1
                    else:
                        cache.misses += 1
            except LayerdiffError as exc:
                raise exc.located(
                    # a stack of bare layers is named by the layer's own file
                    source=ref.name if img.format == "layers" else img.source,
                    layer=position,
                    layer_count=len(refs),
                    layer_digest=ref.digest or ref.diff_id,
                )
            if tracker is not None:
                tracker.finished()
            yield ref, changeset
            changeset = None  # freed once the caller has applied it
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


_VOLUME_STEP = re.compile(r"(?:^|\s)VOLUME\s+(.*)$")


def declared_volumes(created_by: str | None) -> list[str]:
    """Return the paths a Dockerfile VOLUME history step declares."""
    if not created_by or not isinstance(created_by, str):
        return []
    match = _VOLUME_STEP.search(created_by.strip())
    if not match:
        return []
    text = match.group(1).strip()
    if text.startswith("["):
        text = text.strip("[]")
        items = re.split(r"[,\s]+", text)
    else:
        items = text.split()
    volumes = []
    for item in items:
        try:
            path = paths.normalize(item.strip("\"'"))
        except LayerdiffError:
            continue  # a path out of the root names no volume we can check
        if path:
            volumes.append(path)
    return volumes


def _volume_steps(config: dict) -> list[tuple[int, list[str]]]:
    """Return (layers before the step, volumes) for each VOLUME step."""
    history = config.get("history")
    if not isinstance(history, list):
        return []
    result = []
    layers_seen = 0
    for step in history:
        if not isinstance(step, dict):
            continue
        if step.get("empty_layer"):
            volumes = declared_volumes(step.get("created_by"))
            if volumes:
                result.append((layers_seen, volumes))
        else:
            layers_seen += 1
    return result


def inspect_image(
    img: Image,
    *,
    max_size: int | None = None,
    jobs: int | None = None,
    progress: Progress | None = None,
    view: MergedView | None = None,
    upto: int | None = None,
    cache: LayerCache | None = None,
) -> ImageReport:
    """Read, verify and classify every layer of an image.

    ``upto`` stops after that layer (0-based); ``view`` receives the merged
    view, for callers that list files. ``cache`` is a LayerCache to take
    known layers from and to add new ones to.
    """
    view = view if view is not None else MergedView()
    volume_steps = _volume_steps(img.config)
    layers: list[LayerReport] = []
    refs = img.layers if upto is None else img.layers[: upto + 1]
    subset = Image(img.source, img.format, refs, img.config)
    for ref, changeset in read_layers(
        subset, max_size=max_size, jobs=jobs, progress=progress, cache=cache
    ):
        step = ref.history or {}
        report = LayerReport(
            index=ref.index,
            digest=ref.digest,
            diff_id=ref.diff_id,
            media_type=ref.media_type,
            compression="unknown",
            size=ref.size or 0,
            uncompressed_size=0,
            created_by=step.get("created_by"),
            created=step.get("created"),
            comment=step.get("comment"),
        )
        layers.append(report)
        if changeset is None:
            continue
        report.digest = changeset.digest
        report.diff_id = changeset.diff_id
        report.compression = changeset.compression
        report.size = changeset.size
        report.uncompressed_size = changeset.uncompressed_size
        report.entry_count = (
            len(changeset.entries)
            + len(changeset.whiteouts)
            + len(changeset.opaque_dirs)
        )
        entries = changeset.entries
        report.file_bytes = (
            entries.file_bytes()
            if isinstance(entries, EntryTable)
            else sum(e.size for e in entries if e.type.value == "file")
        )
        changes, findings = apply_layer(view, changeset, ref.index)
        report.changes = changes
        for finding in changeset.findings + findings:
            finding.layer = ref.index
        report.findings = changeset.findings + findings
        volumes = [v for before, vs in volume_steps if before <= ref.index for v in vs]
        if volumes:
            report.findings.extend(_volume_writes(changes, volumes, ref.index))
        # Freed now, not when the next layer has been read into memory.
        changeset = entries = None
    for report in layers:
        report.waste = view.waste_of(report.index)
    return ImageReport(
        source=img.source,
        format=img.format,
        name=img.name,
        platform=img.platform,
        manifest_digest=img.manifest_digest,
        config_digest=img.config_digest,
        config=img.config,
        layers=layers,
        findings=list(img.findings),
        empty_history=img.empty_history,
    )


def declared_volume_writes(config: dict, changes: list, layer: int) -> list[Finding]:
    """Return findings for a layer's writes under the config's VOLUME paths.

    ``layer`` (0-based) is the layer's place in the image, above every
    history step of ``config``; used for a layer not read from an archive.
    """
    volumes = [v for before, vs in _volume_steps(config) if before <= layer for v in vs]
    return _volume_writes(changes, volumes, layer) if volumes else []


def _volume_writes(changes, volumes: list[str], layer: int) -> list[Finding]:
    found = []
    for volume in volumes:
        prefix = volume + "/"
        hits = [c for c in changes if c.path.startswith(prefix)]
        if hits:
            found.append(
                Finding(
                    "write-under-volume",
                    f"{counted(len(hits), 'path')} written under /{volume} after it "
                    "was declared a VOLUME: the classic builder drops such writes and "
                    "the mounted volume hides what the image holds there",
                    Severity.WARNING,
                    path=volume,
                    layer=layer,
                    size=sum(c.size for c in hits),
                )
            )
    return found


def merged_view(img: Image, *, upto: int | None = None, **options) -> MergedView:
    """Return the merged view of an image's layers (up to ``upto``)."""
    view = MergedView()
    inspect_image(img, view=view, upto=upto, **options)
    return view
