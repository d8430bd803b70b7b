"""Image archives: docker save (classic, legacy and Docker 25) and OCI layouts.

Every reader ends in the same ``Image``: the config, and the layers bottom
first, each with where its blob is, the digest and diff_id it must have,
and its history step.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform as _platform
import re
import stat
from dataclasses import dataclass, field
from typing import Any

from .blobs import sniff
from .container import BlobLocation, Container, open_container
from .errors import (
    ArchiveFormatError,
    DigestMismatchError,
    ImageSelectionError,
    LayerdiffError,
    UsageError,
    short_digest,
)
from .model import Finding, Severity
from .text import counted

__all__ = ["LayerRef", "Image", "open_image", "host_platform"]

log = logging.getLogger(__name__)

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$|^sha512:[0-9a-f]{128}$")
_MAX_INDEX_DEPTH = 8
# overlayfs stacks at most about 500 lower dirs and docker refuses more than
# 125 layers; a longer list only repeats blobs to multiply the work.
_MAX_LAYERS = 1000
_PLATFORM = re.compile(r"[^/\s]+/[^/\s]+(/[^/\s]+)?")
_NAME_KEYS = ("io.containerd.image.name", "org.opencontainers.image.ref.name")


@dataclass(slots=True)
class LayerRef:
    """One layer of an image: where its blob is and what it must hash to."""

    index: int
    location: BlobLocation | None
    media_type: str | None = None
    digest: str | None = None
    diff_id: str | None = None
    size: int | None = None
    history: dict[str, Any] | None = None
    name: str | None = None


@dataclass
class Image:
    """An image read from an archive, ready to be inspected."""

    source: str
    format: str
    layers: list[LayerRef]
    config: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    platform: str | None = None
    manifest_digest: str | None = None
    config_digest: str | None = None
    empty_history: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    container: Container | None = None

    def close(self) -> None:
        if self.container is not None:
            self.container.close()


def host_platform() -> str:
    """Return the host as an OCI platform string, e.g. ``linux/amd64``."""
    machine = _platform.machine().lower()
    arch = {
        "x86_64": "amd64",
        "amd64": "amd64",
        "aarch64": "arm64",
        "arm64": "arm64",
        "armv7l": "arm/v7",
        "armv6l": "arm/v6",
        "i686": "386",
        "i386": "386",
        "ppc64le": "ppc64le",
        "s390x": "s390x",
        "riscv64": "riscv64",
    }.get(machine, machine)
    return "linux/" + arch


def open_image(
    sources: list[str] | str,
    *,
    image: str | None = None,
    platform: str | None = None,
    max_size: int | None = None,
) -> Image:
    """Open an image archive, an OCI layout, or a stack of bare layer tars.

    Several sources are always bare layers, bottom first. One source is
    read as whatever it holds: docker save output, an OCI layout (as a
    directory or a tar, possibly compressed as a whole) or one layer.
    """
    if isinstance(sources, str):
        sources = [sources]
    if platform is not None and not _PLATFORM.fullmatch(platform):
        raise UsageError(
            f"--platform {platform!r} is not of the form os/arch[/variant], "
            "e.g. linux/arm64/v8"
        )
    if len(sources) > 1:
        return _layer_stack(sources, alone=False)
    source = sources[0]
    try:
        container = open_container(source, max_size=max_size)
    except LayerdiffError as exc:
        try:
            info = os.stat(source)
        except OSError:
            raise exc from None
        if not stat.S_ISREG(info.st_mode) or info.st_size == 0:
            raise
        # Not a readable archive: it may be a damaged bare layer, and the
        # layer reader names the layer and the entry where it breaks.
        log.debug("%s: not read as an archive (%s); reading it as a layer", source, exc)
        return _layer_stack([source])
    try:
        result = _read_container(container, image, platform)
        if result is None:  # no manifest of any kind: a bare layer tar
            container.close()
            if image is not None:
                raise ImageSelectionError(
                    "--image was given but this is a bare layer, not an archive"
                )
            return _layer_stack([source])
    except LayerdiffError as exc:
        container.close()
        raise exc.located(source=source)
    except BaseException:
        container.close()
        raise
    result.container = container
    return result


def _read_container(container: Container, image: str | None, platform: str | None):
    if "manifest.json" in container:
        return _docker_save(container, image)
    if "index.json" in container:
        return _oci_layout(container, image, platform)
    if "repositories" in container:
        return _docker_legacy(container, image)
    return None


def _layer_stack(sources: list[str], *, alone: bool = True) -> Image:
    layers = []
    for index, path in enumerate(sources):
        try:
            info = os.stat(path)
        except OSError as exc:
            raise ArchiveFormatError(
                f"cannot open: {exc.strerror}", source=path
            ) from exc
        if stat.S_ISDIR(info.st_mode):
            raise ArchiveFormatError(
                "a directory is not a layer, and it holds no index.json or "
                "manifest.json",
                source=path,
            )
        if not alone and _is_image_archive(path):
            raise UsageError(
                "is an image archive, not a layer tar; give it alone", source=path
            )
        size = info.st_size
        layers.append(LayerRef(index, BlobLocation(path, 0, size), name=path))
    return Image(source=", ".join(sources), format="layers", layers=layers)


def _is_image_archive(path: str) -> bool:
    """Tell whether an uncompressed tar holds what marks an image archive.

    Only its headers are read, seeking over the content. A compressed file
    is taken for a layer: telling would mean inflating it twice.
    """
    try:
        with open(path, "rb") as handle:
            if sniff(handle.read(4)) != "none":
                return False
        container = open_container(path)
    except (LayerdiffError, OSError):
        return False  # not a readable tar: the layer reader says why
    names = container.files
    return (
        "manifest.json" in names
        or "repositories" in names
        or ("index.json" in names and "oci-layout" in names)
    )


def _json(container: Container, name: str, what: str, digest: str | None = None) -> Any:
    """Parse a JSON file of the archive; check its digest when one is known.

    Manifests and configs are blobs like layers: a config edited in place
    would otherwise pass for the one the manifest names.
    """
    data = container.read(name)
    if digest is not None:
        alg, _, expected = digest.partition(":")
        actual = hashlib.new(alg, data).hexdigest()
        if actual != expected:
            raise DigestMismatchError(
                f"{what} {name} does not match its digest: expected "
                f"{short_digest(digest)}, the bytes hash to "
                f"{short_digest(alg + ':' + actual)}",
                hint="the archive is corrupt or was edited after it was written",
            )
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ArchiveFormatError(f"{what} {name} is not valid JSON: {exc}") from exc
    except RecursionError:
        raise ArchiveFormatError(f"{what} {name} nests too deeply") from None


def _expect(value: Any, kind: type, what: str) -> Any:
    if not isinstance(value, kind):
        found = "null" if value is None else type(value).__name__
        raise ArchiveFormatError(f"{what} should be a {kind.__name__}, found {found}")
    return value


def _check_digest(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _DIGEST.match(value):
        raise ArchiveFormatError(f"{what} is not a valid digest: {value!r}")
    return value


def _blob_name(digest: str) -> str:
    alg, _, hexpart = digest.partition(":")
    return f"blobs/{alg}/{hexpart}"


def _diff_ids(config: dict[str, Any], count: int, config_name: str) -> list[str]:
    rootfs = config.get("rootfs")
    if not isinstance(rootfs, dict) or not isinstance(rootfs.get("diff_ids"), list):
        raise ArchiveFormatError(f"config {config_name} has no rootfs.diff_ids")
    diff_ids = rootfs["diff_ids"]
    if count > _MAX_LAYERS:
        raise ArchiveFormatError(
            f"the manifest lists {count} layers; more than {_MAX_LAYERS} is "
            "not an image any runtime can start"
        )
    if len(diff_ids) != count:
        raise ArchiveFormatError(
            f"config {config_name} lists {counted(len(diff_ids), 'diff_id')} but "
            f"the manifest lists {counted(count, 'layer')}"
        )
    return [_check_digest(d, "a diff_id in the config") for d in diff_ids]


def _map_history(img: Image) -> None:
    """Attach history steps to layers; empty_layer steps have none."""
    history = img.config.get("history")
    if not isinstance(history, list):
        return
    steps = [_clean_step(h) for h in history if isinstance(h, dict)]
    with_layer = [h for h in steps if not h.get("empty_layer")]
    img.empty_history = [h for h in steps if h.get("empty_layer")]
    if steps and len(with_layer) != len(img.layers):
        img.findings.append(
            Finding(
                "history-mismatch",
                f"config history has {counted(len(with_layer), 'step')} with a "
                f"layer, the image has {counted(len(img.layers), 'layer')}; steps "
                "are matched from the bottom",
                Severity.INFO,
            )
        )
    for layer, step in zip(img.layers, with_layer):
        layer.history = step


def _clean_step(step: dict[str, Any]) -> dict[str, Any]:
    """Keep only the history fields we show, and only when they are text."""
    clean = {k: v for k, v in step.items() if k in _STEP_TEXT and isinstance(v, str)}
    clean["empty_layer"] = bool(step.get("empty_layer"))
    return clean


_STEP_TEXT = ("created", "created_by", "comment", "author")


def _docker_save(container: Container, wanted: str | None) -> Image:
    manifest = _json(container, "manifest.json", "manifest")
    entries = _expect(manifest, list, "manifest.json")
    if not entries:
        raise ArchiveFormatError("manifest.json lists no images")
    for item in entries:
        _expect(item, dict, "each item of manifest.json")
    chosen = _choose(entries, wanted, _tags, container.source)
    index, item = chosen
    config_name = _expect(item.get("Config"), str, "manifest.json Config")
    layer_names = _expect(item.get("Layers"), list, "manifest.json Layers")
    config_digest = _digest_from_name(config_name)
    config = _expect(
        _json(container, config_name, "config", config_digest), dict, "config"
    )
    diff_ids = _diff_ids(config, len(layer_names), config_name)
    sources = item.get("LayerSources") or {}
    tags = _tags(item)
    img = Image(
        source=container.source,
        format="docker-save",
        layers=[],
        config=config,
        name=tags[0] if tags else None,
        config_digest=config_digest,
    )
    if "index.json" in container and "oci-layout" in container:
        img.format = "docker-save (OCI layout)"
    for position, name in enumerate(layer_names):
        name = _expect(name, str, "a manifest.json layer path")
        diff_id = diff_ids[position]
        foreign = sources.get(diff_id) if isinstance(sources, dict) else None
        if not isinstance(foreign, dict):
            foreign = None
        location = container.files.get(_normalize(name))
        if location is None:
            if foreign:
                img.findings.append(_missing_foreign(position, foreign))
                img.layers.append(LayerRef(position, None, diff_id=diff_id))
                continue
            raise ArchiveFormatError(f"layer {name} named in manifest.json is missing")
        digest = _digest_from_name(name)
        img.layers.append(
            LayerRef(
                position,
                location,
                media_type=foreign.get("mediaType") if foreign else None,
                digest=digest,
                diff_id=diff_id,
                size=location.size,
                name=name,
            )
        )
    _map_history(img)
    return img


def _tags(item: dict[str, Any]) -> list[str]:
    tags = item.get("RepoTags")
    return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []


def _normalize(name: str) -> str:
    from . import paths

    return paths.normalize(name)


def _digest_from_name(name: str) -> str | None:
    match = re.search(r"(?:^|/)(sha256)/([0-9a-f]{64})$", name)
    if match:
        return f"{match.group(1)}:{match.group(2)}"
    match = re.match(r"^([0-9a-f]{64})\.json$", name)
    return f"sha256:{match.group(1)}" if match else None


def _missing_foreign(position: int, descriptor: dict[str, Any]) -> Finding:
    return Finding(
        "missing-nondistributable-layer",
        f"layer blob {descriptor.get('digest')} is non-distributable and not in "
        "the archive; its content is not inspected",
        Severity.WARNING,
        layer=position,
        size=descriptor.get("size")
        if isinstance(descriptor.get("size"), int)
        else None,
    )


def _choose(items, wanted, names_of, source):
    """Pick one item by name; several without a choice is an error."""
    if wanted is None:
        if len(items) == 1:
            return 0, items[0]
        listed = ", ".join(
            f"#{i + 1} " + (", ".join(names_of(item)) or "(untagged)")
            for i, item in enumerate(items)
        )
        raise ImageSelectionError(
            f"more than one image inside; choose one with --image: {listed}"
        )
    hits = [
        (i, item)
        for i, item in enumerate(items)
        if wanted in names_of(item) or wanted == f"#{i + 1}"
    ]
    if len(hits) > 1:
        numbers = ", ".join(f"#{i + 1}" for i, _ in hits)
        raise ImageSelectionError(
            f"{len(hits)} images are named {wanted!r} ({numbers})",
            hint="choose one by number, e.g. --image " + f"#{hits[0][0] + 1}",
        )
    if hits:
        return hits[0]
    listed = ", ".join(n for item in items for n in names_of(item)) or "none tagged"
    raise ImageSelectionError(f"no image named {wanted!r} inside; there are: {listed}")


def _docker_legacy(container: Container, wanted: str | None) -> Image:
    """Pre-1.10 docker save: a repositories file and <id>/json parent chains."""
    repositories = _expect(
        _json(container, "repositories", "repositories file"), dict, "repositories"
    )
    tops = []
    for repo, tags in repositories.items():
        for tag, top in _expect(tags, dict, f"repositories entry {repo}").items():
            _expect(top, str, f"the layer id of {repo}:{tag}")
            tops.append((f"{repo}:{tag}", top))
    _, (name, top) = _choose(tops, wanted, lambda t: [t[0]], container.source)
    chain = []
    seen = set()
    current = top
    while current:
        if current in seen or len(chain) > 1000:
            raise ArchiveFormatError(f"layer {current} is its own ancestor")
        seen.add(current)
        meta = _expect(_json(container, f"{current}/json", "layer JSON"), dict, "json")
        chain.append((current, meta))
        current = meta.get("parent")
        if current is not None:
            _expect(current, str, f"the parent in {chain[-1][0]}/json")
    chain.reverse()
    top_meta = chain[-1][1]
    config = {
        key: top_meta.get(key)
        for key in ("architecture", "os", "config", "created", "author")
        if key in top_meta
    }
    img = Image(
        source=container.source,
        format="docker-save (legacy)",
        layers=[],
        config=config,
        name=name,
    )
    for position, (layer_id, meta) in enumerate(chain):
        location = container.files.get(f"{layer_id}/layer.tar")
        if location is None:
            raise ArchiveFormatError(f"layer {layer_id}/layer.tar is missing")
        run = meta.get("container_config")
        command = run.get("Cmd") if isinstance(run, dict) else None
        if not isinstance(command, list):
            command = []
        created_by = " ".join(str(part) for part in command)
        img.layers.append(
            LayerRef(
                position,
                location,
                size=location.size,
                name=f"{layer_id}/layer.tar",
                history={"created": meta.get("created"), "created_by": created_by},
            )
        )
    return img


def _oci_layout(container: Container, wanted: str | None, platform: str | None):
    if "oci-layout" in container:
        layout = _json(container, "oci-layout", "layout file")
        version = layout.get("imageLayoutVersion") if isinstance(layout, dict) else None
        if version != "1.0.0":
            log.warning(
                "%s: unexpected imageLayoutVersion %r", container.source, version
            )
    index = _expect(_json(container, "index.json", "index"), dict, "index.json")
    descriptors = _expect(index.get("manifests"), list, "index.json manifests")
    if not descriptors:
        raise ArchiveFormatError("index.json lists no manifests")

    def names_of(descriptor: dict[str, Any]) -> list[str]:
        annotations = descriptor.get("annotations")
        if not isinstance(annotations, dict):
            return []
        return [
            annotations[k] for k in _NAME_KEYS if isinstance(annotations.get(k), str)
        ]

    for item in descriptors:
        _expect(item, dict, "each descriptor of index.json")
    candidates = descriptors
    if wanted is not None or len(descriptors) > 1:
        named = [d for d in descriptors if names_of(d)]
        if wanted is not None or len(named) > 1:
            _, chosen = _choose(
                named or descriptors, wanted, names_of, container.source
            )
            candidates = [chosen]
    chosen_platform: list[str] = []
    manifest_descriptor = _resolve_manifest(
        container, candidates, platform, chosen_platform, set(), 0
    )
    manifest_digest = manifest_descriptor["digest"]
    manifest = _expect(
        _json(container, _blob_name(manifest_digest), "manifest", manifest_digest),
        dict,
        "manifest",
    )
    config_descriptor = _expect(manifest.get("config"), dict, "manifest config")
    config_digest = _check_digest(config_descriptor.get("digest"), "config digest")
    config = _expect(
        _json(container, _blob_name(config_digest), "config", config_digest),
        dict,
        "config",
    )
    layer_descriptors = _expect(manifest.get("layers"), list, "manifest layers")
    diff_ids = _diff_ids(config, len(layer_descriptors), _blob_name(config_digest))
    names = names_of(manifest_descriptor)
    img = Image(
        source=container.source,
        format="oci-layout",
        layers=[],
        config=config,
        name=names[0] if names else None,
        platform=chosen_platform[0] if chosen_platform else None,
        manifest_digest=manifest_digest,
        config_digest=config_digest,
    )
    for position, descriptor in enumerate(layer_descriptors):
        descriptor = _expect(descriptor, dict, "a layer descriptor")
        digest = _check_digest(descriptor.get("digest"), "a layer digest")
        media_type = descriptor.get("mediaType")
        location = container.files.get(_blob_name(digest))
        if location is None:
            foreign = isinstance(media_type, str) and (
                "nondistributable" in media_type or "foreign" in media_type
            )
            if foreign or descriptor.get("urls"):
                img.findings.append(_missing_foreign(position, descriptor))
                img.layers.append(
                    LayerRef(position, None, media_type, digest, diff_ids[position])
                )
                continue
            raise ArchiveFormatError(f"layer blob {digest} is missing from the layout")
        size = descriptor.get("size")
        img.layers.append(
            LayerRef(
                position,
                location,
                media_type=media_type,
                digest=digest,
                diff_id=diff_ids[position],
                size=size if isinstance(size, int) else None,
                name=_blob_name(digest),
            )
        )
    _map_history(img)
    return img


_INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)


def _platform_of(descriptor: dict[str, Any]) -> str | None:
    plat = descriptor.get("platform")
    if not isinstance(plat, dict) or "architecture" not in plat:
        return None
    text = f"{plat.get('os', 'linux')}/{plat['architecture']}"
    if plat.get("variant"):
        text += f"/{plat['variant']}"
    return text


def _is_attestation(descriptor: dict[str, Any]) -> bool:
    annotations = descriptor.get("annotations")
    if not isinstance(annotations, dict):
        annotations = {}
    return (
        annotations.get("vnd.docker.reference.type") == "attestation-manifest"
        or _platform_of(descriptor) == "unknown/unknown"
    )


def _resolve_manifest(container, descriptors, platform, chosen, seen, depth):
    """Follow (nested) indexes down to one image manifest descriptor."""
    if depth > _MAX_INDEX_DEPTH:
        raise ArchiveFormatError("image indexes nest too deeply (a cycle?)")
    for descriptor in descriptors:
        _check_digest(descriptor.get("digest"), "a manifest digest")
    descriptors = [d for d in descriptors if not _is_attestation(d)] or descriptors
    if len(descriptors) > 1 or any(_platform_of(d) for d in descriptors):
        descriptors = _by_platform(descriptors, platform, chosen)
    descriptor = descriptors[0]
    digest = descriptor["digest"]
    if digest in seen:
        raise ArchiveFormatError(f"image index {digest} refers to itself")
    media_type = descriptor.get("mediaType")
    body = None
    if media_type in _INDEX_TYPES or media_type is None:
        body = _expect(
            _json(container, _blob_name(digest), "manifest", digest), dict, digest
        )
        if media_type is None and body.get("mediaType") in _INDEX_TYPES:
            media_type = body["mediaType"]
        elif media_type is None and "manifests" in body and "layers" not in body:
            media_type = _INDEX_TYPES[0]
    if media_type in _INDEX_TYPES:
        nested = _expect(body.get("manifests"), list, f"index {digest} manifests")
        if not nested:
            raise ArchiveFormatError(f"image index {digest} lists no manifests")
        for item in nested:
            _expect(item, dict, f"a descriptor of index {digest}")
        return _resolve_manifest(
            container, nested, platform, chosen, seen | {digest}, depth + 1
        )
    return descriptor


def _canonical_platform(text: str) -> str:
    """Drop default variants, so that linux/arm64/v8 equals linux/arm64."""
    if text.endswith(("/arm64/v8", "/amd64/v1")):
        return text[:-3]
    return text


def _by_platform(descriptors, platform, chosen):
    wanted = _canonical_platform(platform or host_platform())
    available = [_platform_of(d) for d in descriptors]

    def matches(have: str | None) -> bool:
        if have is None:
            return False
        have = _canonical_platform(have)
        if have == wanted:
            return True
        # "linux/arm" matches "linux/arm/v7"; a variant asked must match
        return have.startswith(wanted + "/") and wanted.count("/") == 1

    hits = [d for d, have in zip(descriptors, available) if matches(have)]
    if not hits:
        if len(descriptors) == 1 and platform is None:
            hits = descriptors
            log.warning(
                "the image is for %s only, not the host's %s; reading it anyway",
                available[0],
                wanted,
            )
        else:
            listed = ", ".join(a or "unspecified" for a in available)
            how = "asked for" if platform else "the host is"
            raise ImageSelectionError(
                f"no manifest for platform {wanted} ({how} {wanted}); "
                f"the index has: {listed}",
                hint="choose one with --platform os/arch[/variant]",
            )
    picked = _platform_of(hits[0])
    if picked and not chosen:
        source = "as asked" if platform else "the host's platform"
        chosen.append(picked)
        if len(descriptors) > 1:
            log.info("chose platform %s (%s)", picked, source)
    return hits
