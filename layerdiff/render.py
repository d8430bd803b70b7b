"""Rendering reports as tables, JSON and markdown. Returns text; never prints."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from tabulate import tabulate as _tabulate

from .analyses.audit import AuditResult
from .analyses.budget import BudgetResult, CheckResult
from .analyses.compare import Comparison
from .analyses.why import Provenance
from .errors import short_digest
from .model import PENDING_FORMAT, ImageReport, LayerReport, Mapped
from .text import counted, escape_undecodable, shown
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
    "audit_json",
    "render_audit",
    "layer_label",
    "check_json",
    "render_check",
    "compare_json",
    "render_compare",
    "why_json",
    "render_why",
    "budget_text",
    "severity_counts",
    "render_changes",
    "commit_json",
    "render_commit",
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


def tabulate(rows: Iterable[Iterable[Any]], *args: Any, **kwargs: Any) -> str:
    """Tabulate with every text cell shown safely (see text.shown)."""
    safe = [[shown(c) if isinstance(c, str) else c for c in row] for row in rows]
    return _tabulate(safe, *args, **kwargs)


def to_json(data: Any) -> str:
    """Serialise with sorted keys and two-space indents, for stable diffs.

    The text is that of ``json.dumps(data, indent=2, sort_keys=True,
    ensure_ascii=False)``, undecodable bytes aside (written as the text
    ``\\xHH``); see write_json.
    """
    parts: list[str] = []
    write_json(data, parts.append)
    return "".join(parts)


def write_json(data: Any, write: Callable[[str], Any]) -> None:
    """Write ``data`` as to_json would, in pieces of about a megabyte.

    Sequences other than lists (a layer's changes, the files of a merged
    view) are written item by item as they are made, so a report of a
    million paths is never held as text, nor as dicts, all at once. The
    writer leans on the C string encoder: the standard library falls back
    to its pure-Python encoder whenever an indent is asked for, which
    costs seconds on large images.
    """
    sink = _Sink(write)
    _write_json(data, "\n", sink)
    sink.append("\n")
    sink.flush()


class _Sink:
    """Collects JSON text and hands it on in pieces."""

    def __init__(self, write: Callable[[str], Any]) -> None:
        self._write = write
        self._parts: list[str] = []
        self._count = 0

    def append(self, text: str) -> None:
        self._parts.append(text)
        self._count += 1
        if self._count >= 4096:
            self.flush()

    def flush(self) -> None:
        if self._parts:
            text = "".join(self._parts)
            self._parts.clear()
            self._count = 0
            # Undecodable bytes of names are lone surrogates, found only
            # inside strings: each becomes the text \xHH (its backslash
            # escaped for JSON), so the output stays valid UTF-8.
            self._write(_JSON_UNDECODABLE.sub(_json_byte, text))


_JSON_UNDECODABLE = re.compile("[\udc80-\udcff]")


def _json_byte(match: re.Match[str]) -> str:
    return "\\" + escape_undecodable(match.group(0))


_encode_string = json.encoder.encode_basestring
_SCALARS = frozenset((str, int, float, bool, type(None)))
_FLAT_ENCODERS: dict[str, json.JSONEncoder] = {}


def _flat_encoder(inner: str) -> json.JSONEncoder:
    encoder = _FLAT_ENCODERS.get(inner)
    if encoder is None:
        encoder = _FLAT_ENCODERS[inner] = json.JSONEncoder(
            sort_keys=True, ensure_ascii=False, separators=("," + inner, ": ")
        )
    return encoder


def _write_json(value: Any, newline: str, out: _Sink) -> None:
    if isinstance(value, str):
        out.append(_encode_string(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        out.append(json.encoder.JSONEncoder().encode(value))
    elif isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        inner = newline + "  "
        if all(type(item) in _SCALARS for item in value.values()):
            # A flat object: the C encoder writes it, with the newline and
            # indent as its item separator.
            text = _flat_encoder(inner).encode(value)
            out.append("{" + inner + text[1:-1] + newline + "}")
            return
        if not all(isinstance(key, str) for key in value):
            out.append(_unusual(value, newline))
            return
        separator = "{" + inner
        for key in sorted(value):
            out.append(separator)
            out.append(_encode_string(key))
            out.append(": ")
            _write_json(value[key], inner, out)
            separator = "," + inner
        out.append(newline + "}")
    elif isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        if not len(value):
            out.append("[]")
            return
        inner = newline + "  "
        separator = "[" + inner
        for item in value:
            out.append(separator)
            _write_json(item, inner, out)
            separator = "," + inner
        out.append(newline + "]")
    else:
        out.append(_unusual(value, newline))


def _unusual(value: Any, newline: str) -> str:
    """Write what the fast writer does not know as the json module does."""
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
    return text.replace("\n", newline)


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
        f"{counted(len(report.layers), 'layer')}"
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
            path = f"/{shown(finding.path)}: " if finding.path is not None else ""
            lines.append(
                f"  [{finding.severity}] {finding.rule}: {where}{path}{finding.message}"
            )
    return "\n".join(lines) + "\n"


def render_layer(report: ImageReport, layer: LayerReport) -> str:
    """Return one layer's header and its classified changes."""
    entries = counted(layer.entry_count, "entry", "entries")
    lines = [
        f"Layer {layer.index + 1} of {len(report.layers)}  {layer.diff_id}",
        f"  digest:   {layer.digest}  ({layer.compression}, {human_size(layer.size)})",
        f"  created:  {_step(layer.created_by, 200) or '-'}",
        f"  files:    {human_size(layer.file_bytes)} in {entries}; "
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
        path = f"/{shown(finding.path)}: " if finding.path is not None else ""
        lines.append(f"[{finding.severity}] {finding.rule}: {path}{finding.message}")
    return "\n".join(lines) + "\n"


def files_json(view: MergedView) -> Sequence[dict[str, Any]]:
    """Return the merged view's entries in the documented JSON form.

    Items are made as they are read, so that writing the files of a large
    view does not hold a dict for each of them at once.
    """
    return Mapped(view.iter_nodes, len(view), _file_json)


def _file_json(node) -> dict[str, Any]:
    data = node.entry.to_json(node.layer if node.layer >= 0 else None)
    if node.inode is not None:
        data["size"] = node.inode.size
        data["sha256"] = node.inode.sha256
    return data


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


def _image_json(report: ImageReport) -> dict[str, Any]:
    return {
        "source": report.source,
        "format": report.format,
        "name": report.name,
        "platform": report.platform,
        "config_digest": report.config_digest,
        "layers": len(report.layers),
    }


def layer_label(report: ImageReport, layer: int | None) -> str:
    """Return a finding's layer as users number it ('' for none).

    In the image a commit would produce, the top layer is named as the
    pending commit's.
    """
    if layer is None:
        return ""
    if report.format == PENDING_FORMAT and layer == len(report.layers) - 1:
        return f"{layer + 1} (pending commit)"
    return str(layer + 1)


def audit_json(
    report: ImageReport, result: AuditResult, fail_on: str
) -> dict[str, Any]:
    """Return the documented JSON form of an audit."""
    return {
        "schema_version": SCHEMA_VERSION,
        "image": _image_json(report),
        "findings": [f.to_json() for f in result.findings],
        "counts": result.counts(),
        "disabled": sorted(result.disabled),
        "large": result.large,
        "fail_on": fail_on,
        "failed": result.fails(fail_on),
        "notes": result.notes,
    }


def render_audit(report: ImageReport, result: AuditResult, fail_on: str) -> str:
    """Return the audit as a table, most severe findings first."""
    counts = result.counts()
    lines = [
        f"Image:    {report.name or '(untagged)'}  [{report.format}]  "
        f"{counted(len(report.layers), 'layer')}",
    ]
    if report.format == PENDING_FORMAT:
        lines.append(
            f"Pending:  layer {len(report.layers)}, the commit of "
            f"{shown(report.source)} (nothing written)"
        )
    lines.append(f"Findings: {severity_counts(counts)}")
    if result.findings:
        rows = [
            [
                f.severity.value,
                f.rule,
                layer_label(report, f.layer) or "-",
                "/" + f.path if f.path is not None else "",
                human_size(f.size) if f.size else "",
                f.message,
            ]
            for f in result.findings
        ]
        lines.append("")
        lines.append(
            tabulate(
                rows,
                headers=["severity", "rule", "layer", "path", "size", "reason"],
                disable_numparse=True,
            )
        )
    if result.notes:
        lines.append("")
        lines += [f"Note: {note}" for note in result.notes]
    verdict = "FAIL" if result.fails(fail_on) else "PASS"
    lines.append("")
    lines.append(f"{verdict} (--fail-on {fail_on})")
    return "\n".join(lines) + "\n"


def severity_counts(counts: dict[str, int]) -> str:
    """Return ``0 errors, 1 warning, 3 info``."""
    return (
        f"{counted(counts['error'], 'error')}, "
        f"{counted(counts['warning'], 'warning')}, {counts['info']} info"
    )


def budget_text(result: BudgetResult, value: float) -> str:
    """Return a budget value in its unit: 1.2 MB, 12, 95.0%."""
    if result.unit == "bytes":
        return human_size(value)
    if result.unit == "ratio":
        return f"{value * 100:.1f}%"
    return str(int(value))


def _budget_label(result: BudgetResult) -> str:
    if result.layer is not None:
        return f"{result.budget} (layer {result.layer + 1})"
    return result.budget


def check_json(report: ImageReport, result: CheckResult) -> dict[str, Any]:
    """Return the documented JSON form of a budget check."""
    return {
        "schema_version": SCHEMA_VERSION,
        "image": _image_json(report),
        "passed": result.passed,
        "budgets": [r.to_json() for r in result.results],
        "growth": result.growth.to_json() if result.growth is not None else None,
    }


def render_check(report: ImageReport, result: CheckResult) -> str:
    """Return each budget, the actual value and pass or fail."""
    lines = [
        f"Image: {report.name or '(untagged)'}  [{report.format}]  "
        f"{human_size(report.uncompressed_size)} uncompressed, "
        f"{counted(len(report.layers), 'layer')}",
        "",
    ]
    rows = [
        [
            _budget_label(r),
            budget_text(r, r.limit),
            budget_text(r, r.actual),
            "pass" if r.passed else "FAIL",
        ]
        for r in result.results
    ]
    lines.append(
        tabulate(
            rows, headers=["budget", "limit", "actual", "result"], disable_numparse=True
        )  # fmt: skip
        if rows
        else "(no budgets set: give --max-size and friends, or a config file)"
    )
    growth = result.growth
    if growth is not None and not all(
        r.passed for r in result.results if r.budget == "max-growth"
    ):
        grew = human_size(growth.size - growth.baseline_size)
        lines += ["", f"Grew {grew} since the baseline "
                      f"({human_size(growth.baseline_size)}):"]  # fmt: skip
        if growth.layers:
            lines.append("")
            lines.append(
                tabulate(
                    [
                        [
                            item["layer"] or "-",
                            item["baseline_layer"] or "-",
                            item["match"],
                            human_size(item["growth"]),
                            _step(item["created_by"]),
                        ]
                        for item in growth.layers
                    ],
                    headers=["layer", "was", "match", "growth", "created by"],
                    disable_numparse=True,
                )
            )
        if growth.paths:
            lines.append("")
            lines.append(
                tabulate(
                    [
                        [human_size(p["growth"]), p["layer"], "/" + p["path"]]
                        for p in growth.paths
                    ],
                    headers=["growth", "layer", "path"],
                    disable_numparse=True,
                )
            )
    lines.append("")
    lines.append("PASS" if result.passed else "FAIL")
    return "\n".join(lines) + "\n"


def compare_json(
    old: ImageReport, new: ImageReport, result: Comparison, *, limit: int | None
) -> dict[str, Any]:
    """Return the documented JSON form of a comparison."""
    shown = result.paths if limit is None else result.paths[:limit]
    return {
        "schema_version": SCHEMA_VERSION,
        "old": _image_json(old) | {"uncompressed_size": old.uncompressed_size},
        "new": _image_json(new) | {"uncompressed_size": new.uncompressed_size},
        "identical": result.identical,
        "counts": result.counts(),
        "delta": result.delta,
        "ignored": result.ignored,
        "config": result.config,
        "rollup": [r.to_json() for r in result.rollup[:limit]],
        "paths": [p.to_json() for p in shown],
        "paths_truncated": len(result.paths) - len(shown),
        "layers": [m.to_json() for m in result.layers],
    }


def _signed(size: int) -> str:
    return ("+" if size > 0 else "") + human_size(size)


def _setting_text(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _config_change(key: str, values: dict[str, Any]) -> list[str]:
    """Return one line per added, removed or changed item of a setting.

    Lists of ``NAME=value`` (env) and mappings (labels) are compared by
    name; lists of names (volumes, ports) by member; the rest whole.
    """
    old, new = values["old"], values["new"]
    if key in ("env", "labels"):
        if key == "env":
            before = dict(str(v).partition("=")[::2] for v in old or [])
            after = dict(str(v).partition("=")[::2] for v in new or [])
        else:
            before = {str(k): str(v) for k, v in (old or {}).items()}
            after = {str(k): str(v) for k, v in (new or {}).items()}
        lines = []
        for name in sorted(set(before) | set(after)):
            if name not in before:
                lines.append(f"+ {name}={after[name]}")
            elif name not in after:
                lines.append(f"- {name}={before[name]}")
            elif before[name] != after[name]:
                lines.append(f"{name}={before[name]} -> {name}={after[name]}")
        return lines
    if key in ("volumes", "exposed_ports"):
        before, after = set(old or []), set(new or [])
        return [f"+ {item}" for item in sorted(after - before)] + [
            f"- {item}" for item in sorted(before - after)
        ]
    return [f"{_setting_text(old)} -> {_setting_text(new)}"]


def render_compare(
    old: ImageReport, new: ImageReport, result: Comparison, *, limit: int | None
) -> str:
    """Return the comparison: directories, paths and layers, by size impact."""
    counts = result.counts()
    lines = [
        f"Old: {old.name or old.source}  {human_size(old.uncompressed_size)}, "
        f"{counted(len(old.layers), 'layer')}",
        f"New: {new.name or new.source}  {human_size(new.uncompressed_size)}, "
        f"{counted(len(new.layers), 'layer')}",
        f"Paths: {counts['added']} added, {counts['removed']} removed, "
        f"{counts['changed']} changed; {_signed(result.delta)} in files"
        + (f"; {result.ignored} ignored" if result.ignored else ""),
    ]
    if result.config:
        lines += ["", "Config:"]
        for key, values in sorted(result.config.items()):
            lines += [f"  {key}: {text}" for text in _config_change(key, values)]
    if result.rollup:
        lines.append("")
        lines.append(
            tabulate(
                [
                    [_signed(r.delta), r.added, r.removed, r.changed, "/" + r.path]
                    for r in result.rollup[:limit]
                ],
                headers=["delta", "added", "removed", "changed", "directory"],
                disable_numparse=True,
            )  # fmt: skip
        )
    shown = result.paths if limit is None else result.paths[:limit]
    if shown:
        lines.append("")
        rows = [
            [
                _signed(p.delta),
                p.status + (f" ({p.reason})" if p.reason else ""),
                p.type.value,
                "/" + p.path,
            ]
            for p in shown
        ]
        lines.append(
            tabulate(
                rows, headers=["delta", "status", "type", "path"], disable_numparse=True
            )  # fmt: skip
        )
        if len(shown) < len(result.paths):
            lines.append(f"... {len(result.paths) - len(shown)} more (--limit 0: all)")
    lines.append("")
    lines.append(
        tabulate(
            [
                [
                    m.old + 1 if m.old is not None else "-",
                    m.new + 1 if m.new is not None else "-",
                    m.match
                    + (f" {m.similarity * 100:.0f}%" if m.match == "similar" else ""),
                    _signed(m.new_size - m.old_size),
                    _step(m.created_by),
                ]
                for m in result.layers
            ],
            headers=["old", "new", "match", "delta", "created by"],
            disable_numparse=True,
        )
    )
    lines.append("")
    lines.append("identical" if result.identical else "different")
    return "\n".join(lines) + "\n"


def why_json(report: ImageReport, result: Provenance) -> dict[str, Any]:
    """Return the documented JSON form of a path's provenance."""
    return {
        "schema_version": SCHEMA_VERSION,
        "image": _image_json(report),
        "path": result.path,
        "present": result.present,
        "final": result.final,
        "cost": result.cost,
        "wasted": result.wasted,
        "events": [e.to_json() for e in result.events],
    }


def render_why(report: ImageReport, result: Provenance) -> str:
    """Return the layers that touched a path, bottom first."""
    state = "present in the final image" if result.present else "not in the final image"
    lines = [f"/{shown(result.path)}: {state}"]
    if result.final is not None:
        final = result.final
        lines.append(
            f"  final: {final['type']} {final['mode']:04o} "
            f"{final['uid']}:{final['gid']} {human_size(final['size'])} "
            f"from layer {final.get('layer', '-')}"
        )
    lines.append(
        f"  costs {human_size(result.cost)} across layers, "
        f"{human_size(result.wasted)} of it wasted"
    )
    lines.append("")
    rows = [
        [
            e.layer + 1,
            e.action + (f" ({e.reason})" if e.reason else ""),
            "/" + e.via if e.via else "",
            human_size(e.cost) if e.cost else "",
            "wasted" if e.wasted else "",
            _step(e.created_by),
        ]
        for e in result.events
    ]
    lines.append(
        tabulate(
            rows,
            headers=["layer", "action", "via", "bytes", "", "created by"],
            disable_numparse=True,
        )  # fmt: skip
        if rows
        else "(no layer names it; created implicitly as a parent directory)"
    )
    return "\n".join(lines) + "\n"


def render_changes(rows, lower_known: bool) -> str:
    """Return the docker-diff-like table of a container's changes."""
    table = [
        [
            row.kind,
            "/" + row.path,
            human_size(row.size) if row.size else "",
            "yes" if row.committed else "no",
            row.reason,
        ]
        for row in rows
    ]
    lines = [
        tabulate(
            table,
            headers=["kind", "path", "size", "committed", "reason"],
            disable_numparse=True,
        )
    ]
    lost = [row for row in rows if not row.committed]
    if lost:
        size = sum(row.size for row in lost)
        lines.append(
            f"\n{len(lost)} changes a commit would not capture ({human_size(size)})"
        )
    if not lower_known:
        lines.append(
            "\nno base given (--base or --lower): additions and modifications "
            "cannot be told apart; C marks copied-up paths only"
        )
    return "\n".join(lines) + "\n"


def commit_json(result) -> dict[str, Any]:
    """Return the documented JSON form of a commit."""
    layer = result.layer
    return {
        "schema_version": SCHEMA_VERSION,
        "output": result.output,
        "format": result.image.format,
        "manifest_digest": result.image.manifest_digest,
        "config_digest": result.image.config_digest,
        "layer": {
            "diff_id": layer.diff_id,
            "digest": layer.digest,
            "size": layer.size,
            "uncompressed_size": layer.uncompressed_size,
            "compression": layer.compression,
            "entries": layer.entries,
        },
        "layer_out": result.layer_out,
        "config": result.image.config,
        "history": result.history,
        "left_out": [row.to_json() for row in result.left_out],
        "volume_writes": [row.to_json() for row in result.volume_writes],
        "verified": result.verified,
        "problems": result.problems,
        "notes": result.notes,
    }


def render_commit(result) -> str:
    """Return the short human summary of a commit."""
    layer = result.layer
    lines = [
        f"wrote {result.output} ({result.image.format})",
        f"  new layer {short_digest(layer.diff_id)}: {layer.entries} entries, "
        f"{human_size(layer.size)} {layer.compression} "
        f"({human_size(layer.uncompressed_size)} uncompressed)",
    ]
    if result.left_out:
        lines.append(f"  left out {counted(len(result.left_out), 'path')}:")
        for row in result.left_out:
            lines.append(f"    {row.kind} /{shown(row.path)} ({row.reason})")
    if result.volume_writes:
        size = sum(row.size for row in result.volume_writes)
        lines.append(
            f"  {len(result.volume_writes)} files written into volumes and bind "
            f"mounts are not in the image ({human_size(size)})"
        )
    if result.verified:
        lines.append("  verified: the layer is reproducible and the image reads back")
    for problem in result.problems:
        lines.append(f"  verification failed: {problem}")
    return "\n".join(lines) + "\n"
