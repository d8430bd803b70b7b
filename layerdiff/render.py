"""Rendering reports as tables, JSON and markdown. Returns text; never prints."""

from __future__ import annotations

import json
import re
from typing import Any, Iterable

from tabulate import tabulate

from .errors import short_digest
from .model import ImageReport, LayerReport
from .tree import MergedView

__all__ = [
    "SCHEMA_VERSION",
    "human_size",
    "to_json",
    "inspect_json",
    "render_inspect",
    "render_layer",
    "files_json",
    "render_files",
]

SCHEMA_VERSION = 1


def human_size(size: int | float | None) -> str:
    """Return a size in decimal units, as docker prints them: 1.2 MB."""
    if size is None:
        return "-"
    value = float(size)
    sign = "-" if value < 0 else ""
    value = abs(value)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            if unit == "B":
                return f"{sign}{int(value)} B"
            return f"{sign}{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def to_json(data: Any) -> str:
    """Serialise with sorted keys and two-space indents, for stable diffs.

    Lone surrogates (the undecodable bytes of a non-UTF-8 name) and C1
    controls are written as \\u escapes, so the text stays valid UTF-8 and
    ``json.loads`` gives back the same string.
    """
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


_JSON_UNSAFE = re.compile("[\\x7f-\\x9f\\ud800-\\udfff]")


def _config_summary(config: dict[str, Any]) -> dict[str, Any]:
    runtime = config.get("config") or {}
    if not isinstance(runtime, dict):
        runtime = {}
    return {
        "architecture": config.get("architecture"),
        "os": config.get("os"),
        "created": config.get("created"),
        "entrypoint": runtime.get("Entrypoint"),
        "cmd": runtime.get("Cmd"),
        "env": runtime.get("Env"),
        "workdir": runtime.get("WorkingDir") or None,
        "user": runtime.get("User") or None,
        "volumes": _keys(runtime.get("Volumes")),
        "exposed_ports": _keys(runtime.get("ExposedPorts")),
        "labels": runtime.get("Labels") or None,
    }


def inspect_json(report: ImageReport, *, with_changes: bool = True) -> dict[str, Any]:
    """Return the documented JSON form of an inspect report."""
    waste = report.waste
    return {
        "schema_version": SCHEMA_VERSION,
        "source": report.source,
        "format": report.format,
        "name": report.name,
        "platform": report.platform,
        "manifest_digest": report.manifest_digest,
        "config_digest": report.config_digest,
        "config": _config_summary(report.config),
        "size": report.size,
        "uncompressed_size": report.uncompressed_size,
        "file_bytes": report.file_bytes,
        "waste": waste.to_json(),
        "efficiency": round(report.efficiency, 6),
        "layers": [layer.to_json(with_changes=with_changes) for layer in report.layers],
        "empty_history": [
            {"created_by": h.get("created_by"), "created": h.get("created")}
            for h in report.empty_history
        ],
        "findings": [f.to_json() for f in report.findings],
    }


def _keys(value: Any) -> list[str] | None:
    """Return the sorted keys of a config map such as Volumes, or None."""
    return sorted(value) if isinstance(value, dict) and value else None


def _step(text: str | None, width: int = 60) -> str:
    if not text or not isinstance(text, str):
        return ""
    text = " ".join(text.split())
    for noise in ("/bin/sh -c #(nop) ", "/bin/sh -c "):
        if text.startswith(noise):
            text = (
                text[len(noise) :] if "#(nop)" in noise else "RUN " + text[len(noise) :]
            )
            break
    return text if len(text) <= width else text[: width - 1] + "…"


def render_inspect(report: ImageReport) -> str:
    """Return the human summary of an image: one row per layer."""
    waste = report.waste
    lines = [
        f"Image:      {report.name or '(untagged)'}  [{report.format}]",
        f"Source:     {report.source}",
    ]
    if report.platform:
        lines.append(f"Platform:   {report.platform}")
    lines.append(
        f"Size:       {human_size(report.size)} stored, "
        f"{human_size(report.uncompressed_size)} uncompressed, "
        f"{len(report.layers)} layers"
    )
    lines.append(
        f"Waste:      {human_size(waste.total)} "
        f"(shadowed {human_size(waste.shadowed)}, deleted {human_size(waste.deleted)}, "
        f"metadata-only {human_size(waste.metadata_only)}); "
        f"efficiency {report.efficiency * 100:.1f}%"
    )
    rows = []
    for layer in report.layers:
        counts = layer.counts()
        rows.append(
            [
                layer.index + 1,
                short_digest(layer.diff_id),
                human_size(layer.size),
                counts["add"],
                counts["modify"],
                counts["delete"],
                counts["opaque"],
                human_size(layer.waste.total),
                _step(layer.created_by),
            ]
        )
    headers = [
        "#",
        "diff_id",
        "size",
        "add",
        "mod",
        "del",
        "opq",
        "waste",
        "created by",
    ]
    lines.append("")
    lines.append(tabulate(rows, headers=headers, disable_numparse=True))
    findings = report.all_findings()
    if findings:
        lines.append("")
        lines.append("Findings:")
        for finding in findings:
            where = f"layer {finding.layer + 1}: " if finding.layer is not None else ""
            path = f"/{finding.path}: " if finding.path is not None else ""
            lines.append(
                f"  [{finding.severity}] {finding.rule}: {where}{path}{finding.message}"
            )
    return "\n".join(lines) + "\n"


def render_layer(report: ImageReport, layer: LayerReport) -> str:
    """Return one layer's header and its classified changes."""
    lines = [
        f"Layer {layer.index + 1} of {len(report.layers)}  {layer.diff_id}",
        f"  digest:   {layer.digest}  ({layer.compression}, {human_size(layer.size)})",
        f"  created:  {_step(layer.created_by, 200) or '-'}",
        f"  files:    {human_size(layer.file_bytes)} in {layer.entry_count} entries; "
        f"waste {human_size(layer.waste.total)}",
        "",
    ]
    rows = []
    for change in sorted(layer.changes, key=lambda c: c.path):
        detail = change.kind.value
        if change.reason:
            detail += f" ({change.reason})"
        hidden = ""
        if change.hidden or change.hidden_bytes:
            hidden = f"{change.hidden} below, {human_size(change.hidden_bytes)}"
        rows.append(
            [
                detail,
                change.type.value if change.type else "",
                human_size(change.size) if change.size else "",
                hidden,
                "/" + change.path,
            ]
        )
    lines.append(
        tabulate(
            rows,
            headers=["change", "type", "size", "hides", "path"],
            disable_numparse=True,
        )
        if rows
        else "(no changes)"
    )
    for finding in layer.findings:
        path = f"/{finding.path}: " if finding.path is not None else ""
        lines.append(f"[{finding.severity}] {finding.rule}: {path}{finding.message}")
    return "\n".join(lines) + "\n"


def files_json(view: MergedView) -> list[dict[str, Any]]:
    """Return the merged view's entries in the documented JSON form."""
    result = []
    for node in view.iter_nodes():
        data = node.entry.to_json(node.layer if node.layer >= 0 else None)
        if node.inode is not None:
            data["size"] = node.inode.size
            data["sha256"] = node.inode.sha256
        result.append(data)
    return result


def render_files(view: MergedView) -> str:
    """Return an ls-like listing of the merged view."""
    rows: Iterable[list[Any]] = (
        [
            _mode_string(node.entry.type.value, node.entry.mode),
            f"{node.entry.uid}:{node.entry.gid}",
            node.size if node.inode is not None else "",
            node.layer + 1 if node.layer >= 0 else "",
            "/"
            + node.entry.path
            + (
                f" -> {node.entry.linkname}"
                if node.entry.type.value == "symlink"
                else ""
            )
            + (
                f" link to /{node.entry.linkname}"
                if node.entry.type.value == "hardlink"
                else ""
            ),
        ]
        for node in view.iter_nodes()
    )
    return (
        tabulate(
            rows,
            headers=["mode", "owner", "size", "layer", "path"],
            disable_numparse=True,
        )
        + "\n"
    )


_TYPE_CHAR = {
    "file": "-", "dir": "d", "symlink": "l", "hardlink": "h",
    "char": "c", "block": "b", "fifo": "p",
}  # fmt: skip


def _mode_string(kind: str, mode: int) -> str:
    bits = ""
    for shift, special, char in ((6, 0o4000, "s"), (3, 0o2000, "s"), (0, 0o1000, "t")):
        part = (mode >> shift) & 7
        bits += "r" if part & 4 else "-"
        bits += "w" if part & 2 else "-"
        if mode & special:
            bits += char if part & 1 else char.upper()
        else:
            bits += "x" if part & 1 else "-"
    return _TYPE_CHAR.get(kind, "?") + bits
