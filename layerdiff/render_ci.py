"""Reports for CI systems: SARIF 2.1.0, JUnit XML and markdown comments.

Returns text; never prints. SARIF results carry the image path as the
artifact location (there is no source file to point at) and a logical
location naming the layer.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from typing import Any

from . import __version__
from .analyses.audit import RULES, AuditResult
from .analyses.budget import CheckResult
from .model import PENDING_FORMAT, ImageReport, Severity
from .render import (
    SCHEMA_VERSION,
    budget_text,
    human_size,
    layer_label,
    severity_counts,
    to_json,
)
from .text import counted, shown

__all__ = ["audit_sarif", "audit_markdown", "check_junit", "check_markdown"]

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}


def audit_sarif(report: ImageReport, result: AuditResult) -> str:
    """Return the audit as a SARIF 2.1.0 log with one run."""
    rules = [
        {
            "id": rule.id,
            "name": rule.id,
            "shortDescription": {"text": rule.summary},
            "defaultConfiguration": {"level": _LEVEL[rule.severity]},
            "properties": {"group": rule.group},
        }
        for rule in RULES.values()
        if rule.id not in result.disabled
    ]
    index = {rule["id"]: i for i, rule in enumerate(rules)}
    image = report.name or report.source
    results = []
    for finding in result.findings:
        layer = finding.layer
        layer_text = (
            f"layer {layer_label(report, layer)}" if layer is not None else "image"
        )
        item: dict[str, Any] = {
            "ruleId": finding.rule,
            "level": _LEVEL[finding.severity],
            "message": {"text": f"{layer_text}: {finding.message}"},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": finding.path or report.source}
                    },
                    "logicalLocations": [
                        {
                            "name": layer_text,
                            "fullyQualifiedName": f"{image}@{layer_text}",
                            "kind": "module",
                        }  # fmt: skip
                    ],
                }
            ],
            "partialFingerprints": {
                # The name's own bytes, so that two names never share one.
                "layerdiffFinding/v1": hashlib.sha256(
                    f"{finding.rule}\0{finding.path}\0{layer}".encode(
                        "utf-8", "surrogateescape"
                    )
                ).hexdigest()
            },
        }
        if finding.rule in index:
            item["ruleIndex"] = index[finding.rule]
        if finding.size is not None:
            item["properties"] = {"size": finding.size}
        results.append(item)
    log = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "layerdiff",
                        "version": __version__,
                        "informationUri": "https://pypi.org/project/layerdiff/",
                        "rules": rules,
                    }
                },
                "results": results,
                "properties": {
                    "schema_version": SCHEMA_VERSION,
                    "image": image,
                    "notes": result.notes,
                },
            }
        ],
    }
    return to_json(log)


def _cell(text: str) -> str:
    return shown(text).replace("|", "\\|")


def audit_markdown(report: ImageReport, result: AuditResult, fail_on: str) -> str:
    """Return the audit as a markdown pull-request comment."""
    counts = result.counts()
    verdict = "❌ failed" if result.fails(fail_on) else "✅ passed"
    title = report.name or report.source
    if report.format == PENDING_FORMAT:
        title = f"pending commit of {report.source}" + (
            f" on {report.name}" if report.name else ""
        )
    lines = [
        f"### layerdiff audit: {_cell(title)}",
        "",
        f"**{verdict}** (fail on {fail_on}): {severity_counts(counts)}",
        "",
    ]
    if result.findings:
        lines += [
            "| severity | rule | layer | path | size | reason |",
            "|---|---|---:|---|---:|---|",
        ]
        for f in result.findings:
            lines.append(
                f"| {f.severity.value} | `{f.rule}` | "
                f"{layer_label(report, f.layer)} | "
                f"{'`/' + _cell(f.path) + '`' if f.path is not None else ''} | "
                f"{human_size(f.size) if f.size else ''} | {_cell(f.message)} |"
            )
    if result.notes:
        lines.append("")
        lines += [f"> Note: {_cell(note)}" for note in result.notes]
    return "\n".join(lines) + "\n"


def check_markdown(report: ImageReport, result: CheckResult) -> str:
    """Return the budget check as a markdown summary."""
    verdict = "✅ all budgets pass" if result.passed else "❌ a budget is exceeded"
    lines = [
        f"### layerdiff check: {_cell(report.name or report.source)}",
        "",
        f"**{verdict}**",
        "",
        "| budget | limit | actual | result |",
        "|---|---:|---:|---|",
    ]
    for r in result.results:
        lines.append(
            f"| `{r.budget}`{f' (layer {r.layer + 1})' if r.layer is not None else ''}"
            f" | {budget_text(r, r.limit)} | {budget_text(r, r.actual)} | "
            f"{'pass' if r.passed else '**FAIL**'} |"
        )
    growth = result.growth
    if growth is not None and growth.paths and not result.passed:
        lines += ["", "Paths that grew most since the baseline:", ""]
        lines += ["| growth | layer | path |", "|---:|---:|---|"]
        for p in growth.paths:
            lines.append(
                f"| {human_size(p['growth'])} | {p['layer']} | `/{_cell(p['path'])}` |"
            )
    return "\n".join(lines) + "\n"


def check_junit(report: ImageReport, result: CheckResult) -> bytes:
    """Return the budget check as JUnit XML: one test case per budget."""
    failures = sum(1 for r in result.results if not r.passed)
    suites = ET.Element("testsuites", tests=str(len(result.results)),
                        failures=str(failures))  # fmt: skip
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=f"layerdiff check {report.name or report.source}",
        tests=str(len(result.results)),
        failures=str(failures),
        errors="0",
        skipped="0",
    )
    for r in result.results:
        case = ET.SubElement(suite, "testcase", classname="layerdiff.check",
                             name=r.budget)  # fmt: skip
        text = f"actual {budget_text(r, r.actual)}, limit {budget_text(r, r.limit)}"
        if r.layer is not None:
            text += f" (layer {r.layer + 1})"
        if not r.passed:
            failure = ET.SubElement(case, "failure", message=text, type="budget")
            detail = [text]
            if r.budget == "max-growth" and result.growth is not None:
                detail += [
                    f"/{p['path']} grew {counted(p['growth'], 'byte')} "
                    f"(layer {p['layer']})"
                    for p in result.growth.paths
                ]
            failure.text = "\n".join(detail)
        else:
            ET.SubElement(case, "system-out").text = text
    ET.indent(suites)
    return ET.tostring(suites, encoding="utf-8", xml_declaration=True) + b"\n"
