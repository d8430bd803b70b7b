"""Audit findings: secrets, waste, risky permissions and broken layer rules.

Every rule has a stable id, a default severity and a one-line summary in
``RULES``; users switch rules off by id in the configuration file. Rules
read an inspect report and the final merged view only. Findings that other
parts of the library already produce while reading (whiteouts of missing
paths, writes under a VOLUME, ...) are collected here unchanged, so one
audit shows them all.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable

from .. import paths
from ..errors import UsageError
from ..model import ChangeKind, EntryType, Finding, ImageReport, Severity
from ..text import counted
from ..tree import MergedView

__all__ = [
    "Rule",
    "RULES",
    "AuditResult",
    "Uncommitted",
    "audit_image",
    "severity_rank",
    "DEFAULT_LARGE",
]

DEFAULT_LARGE = 50 * 10**6


@dataclass(frozen=True, slots=True)
class Rule:
    """A finding's rule: its id, default severity and what it means."""

    id: str
    severity: Severity
    summary: str
    group: str


_E, _W, _I = Severity.ERROR, Severity.WARNING, Severity.INFO

RULES: dict[str, Rule] = {
    rule.id: rule
    for rule in (
        Rule("private-key", _E, "a private key file is shipped", "secrets"),
        Rule("env-file", _W, "a .env file (often holding secrets) is shipped",
             "secrets"),
        Rule("cloud-credentials", _E, "cloud provider credentials are shipped",
             "secrets"),
        Rule("registry-credentials", _E,
             "registry or package index credentials are shipped", "secrets"),
        Rule("git-credentials", _E, "a .git-credentials file is shipped",
             "secrets"),
        Rule("git-directory", _W, "a .git directory (history, remotes) is shipped",
             "secrets"),
        Rule("shell-history", _W, "a shell or REPL history file is shipped",
             "secrets"),
        Rule("deleted-later", _I,
             "bytes deleted by a later layer still ship in a lower one", "waste"),
        Rule("replaced-later", _I,
             "a file replaced by a later layer still ships in a lower one", "waste"),
        Rule("identical-readd", _I,
             "a later layer adds a file identical to the one below", "waste"),
        Rule("metadata-only-copy", _I,
             "a later layer copies a file again only to change its metadata",
             "waste"),
        Rule("package-cache", _W,
             "package manager caches or lists are left in a layer", "waste"),
        Rule("temporary-files", _I, "files are left in /tmp or /var/tmp", "waste"),
        Rule("bytecode-cache", _I, "Python __pycache__ files are shipped", "waste"),
        Rule("write-under-volume", _W,
             "a layer writes under a path an earlier step declared VOLUME",
             "volumes"),
        Rule("uncommitted-content", _W,
             "content a commit will not capture (volumes, bind mounts, tmpfs)",
             "volumes"),
        Rule("setuid-file", _I, "a file has the setuid bit", "permissions"),
        Rule("setgid-file", _I, "a file has the setgid bit", "permissions"),
        Rule("file-capabilities", _W,
             "a file carries capabilities (security.capability)", "permissions"),
        Rule("world-writable", _W,
             "a file or a directory without the sticky bit is world-writable",
             "permissions"),
        Rule("large-file", _I, "a file larger than the --large threshold",
             "permissions"),
        Rule("duplicate-entry", _I,
             "one layer holds several entries for the same path", "layer-rules"),
        Rule("entry-replaced-in-layer", _I,
             "a later entry of the same layer replaces a parent of this entry "
             "with a non-directory, so extraction removes it", "layer-rules"),
        Rule("reserved-whiteout-name", _W,
             "an entry uses the reserved .wh. prefix without being a whiteout",
             "layer-rules"),
        Rule("whiteout-missing-target", _I,
             "a whiteout deletes a path no lower layer has", "layer-rules"),
        Rule("hardlink-missing-target", _W,
             "a hard link points to a missing or whited-out target", "layer-rules"),
        Rule("parent-not-directory", _W,
             "an entry's parent is not a directory in the layers below",
             "layer-rules"),
        Rule("link-escapes-root", _I,
             "a symbolic link's relative target climbs above the root",
             "layer-rules"),
        Rule("history-mismatch", _I,
             "the config history does not match the layers", "layer-rules"),
        Rule("missing-nondistributable-layer", _W,
             "a non-distributable layer is not in the archive", "layer-rules"),
    )
}  # fmt: skip

_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2}


def severity_rank(severity: Severity | str) -> int:
    """Return 0 for info, 1 for warning, 2 for error."""
    return _RANK[Severity(severity)]


@dataclass(slots=True)
class Uncommitted:
    """One path a commit will not capture, as the upper dir side reports it.

    ``reason`` says why (a volume, a bind mount, a tmpfs, a runtime file);
    ``size`` is the bytes involved when known.
    """

    path: str
    reason: str
    size: int | None = None


@dataclass(slots=True)
class AuditResult:
    """The findings of an audit, most severe first, and what was switched off."""

    findings: list[Finding]
    disabled: frozenset[str] = frozenset()
    large: int = DEFAULT_LARGE
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        result = {s.value: 0 for s in Severity}
        for finding in self.findings:
            result[finding.severity.value] += 1
        return result

    def fails(self, fail_on: str) -> bool:
        """Tell whether a finding at or above ``fail_on`` exists ('none': never)."""
        if fail_on == "none":
            return False
        floor = severity_rank(fail_on)
        return any(severity_rank(f.severity) >= floor for f in self.findings)


def audit_image(
    report: ImageReport,
    view: MergedView,
    *,
    large: int = DEFAULT_LARGE,
    disabled: Iterable[str] = (),
    uncommitted: Iterable[Uncommitted] = (),
    notes: Iterable[str] = (),
) -> AuditResult:
    """Return every finding of every enabled rule for an inspected image.

    ``view`` is the final merged view of the same image. ``uncommitted``
    lists content a commit will not capture, from the upper dir side; it is
    empty for an image archive. ``notes`` are passed on to the result: what
    a reader should know that is no finding.
    """
    off = frozenset(disabled)
    unknown = sorted(off - set(RULES))
    if unknown:
        raise UsageError(
            f"unknown rule id {unknown[0]!r} in disable",
            hint="see the README for the list of rule ids",
        )
    found: list[Finding] = list(report.all_findings())
    found += _secrets(report, view)
    found += _waste(report)
    found += _caches(report)
    found += _permissions(view)
    found += _large_files(report, large)
    found += _links(view)
    for item in uncommitted:
        found.append(
            Finding(
                "uncommitted-content",
                f"{item.reason}; not captured by a commit",
                RULES["uncommitted-content"].severity,
                path=item.path,
                size=item.size,
            )
        )
    kept = [f for f in found if f.rule not in off]
    kept.sort(
        key=lambda f: (
            -severity_rank(f.severity),
            f.rule,
            -1 if f.layer is None else f.layer,
            f.path or "",
        )
    )
    return AuditResult(kept, off, large, list(notes))


def _finding(rule: str, message: str, **where) -> Finding:
    return Finding(rule, message, RULES[rule].severity, **where)


# Secrets: matched on the path, in every layer, so that a file deleted by a
# later layer is still found in the layer that holds its bytes.
_KEY_NAMES = re.compile(
    r"^(id_rsa|id_dsa|id_ecdsa|id_ed25519|id_ecdsa_sk|id_ed25519_sk"
    r"|ssh_host_[a-z0-9]+_key|[^/]*\.(key|p12|pfx|jks|keystore|ppk)"
    r"|[^/]*(private|priv|secret)[^/]*\.pem|[^/]*-key\.pem|key\.pem)$"
)
_ENV_NAME = re.compile(r"^\.env(\.[^/]+)?$")
_ENV_EXAMPLES = re.compile(r"\.(example|sample|template|dist|defaults?)$")
_SECRET_PATHS: list[tuple[str, re.Pattern[str]]] = [
    ("cloud-credentials", re.compile(
        r"(^|/)\.aws/credentials$"
        r"|(^|/)\.config/gcloud/(credentials\.db|access_tokens\.db"
        r"|application_default_credentials\.json|legacy_credentials/.*)$"
        r"|(^|/)\.azure/(accessTokens\.json|msal_token_cache\.(json|bin))$"
        r"|(^|/)\.kube/config$")),
    ("registry-credentials", re.compile(
        r"(^|/)\.docker/config\.json$|(^|/)containers/auth\.json$"
        r"|(^|/)\.npmrc$|(^|/)\.pypirc$|(^|/)\.netrc$|(^|/)\.yarnrc\.yml$")),
    ("git-credentials", re.compile(r"(^|/)\.git-credentials$")),
    ("shell-history", re.compile(
        r"(^|/)\.(bash|zsh|ash|sh|fish|python|mysql|psql|node_repl|sqlite)"
        r"_history$|(^|/)\.local/share/fish/fish_history$")),
]  # fmt: skip
# Public-key and certificate files that key-like names must not catch.
_NOT_KEYS = re.compile(r"(^|/)(usr/share|etc/ssl/certs|usr/lib/.*/certifi)/")


def _secret_rule(path: str, kind: EntryType) -> str | None:
    name = paths.basename(path)
    if kind is not EntryType.FILE:
        return None
    if _KEY_NAMES.match(name) and not _NOT_KEYS.search(path):
        return "private-key"
    if _ENV_NAME.match(name) and not _ENV_EXAMPLES.search(name):
        return "env-file"
    for rule, pattern in _SECRET_PATHS:
        if pattern.search(path):
            return rule
    return None


def _git_directory(path: str, kind: EntryType) -> str | None:
    """Return the .git directory a path is in (or is), from any component."""
    parts = path.split("/")
    for position, name in enumerate(parts):
        if name == ".git" and (position < len(parts) - 1 or kind is EntryType.DIR):
            return "/".join(parts[: position + 1])
    return None


def _secret_finding(rule: str, path: str, layer: int, size: int, live: bool):
    where = (
        "in the final image"
        if live
        else "removed later, but its bytes stay in this layer"
    )
    return _finding(
        rule,
        f"{RULES[rule].summary}, {where}; rebuild without it "
        "(build secret or multi-stage build)",
        path=path,
        layer=layer,
        size=size or None,
    )


def _secrets(report: ImageReport, view: MergedView) -> list[Finding]:
    found = []
    for layer in report.layers:
        # A .git directory is one finding however many entries it has, and
        # is found through its files even when the layer has no entry for it.
        git: dict[str, list[int]] = {}
        for change in layer.changes:
            if change.kind not in (ChangeKind.ADD, ChangeKind.MODIFY):
                continue
            if (
                change.type is None
                or change.kind is ChangeKind.MODIFY
                and (change.reason == "metadata")
            ):
                continue
            node = view.get(change.path)
            live = node is not None and node.layer == layer.index
            directory = _git_directory(change.path, change.type)
            if directory is not None:
                total = git.setdefault(directory, [0, 0])
                total[0] += change.size if change.type is EntryType.FILE else 0
                total[1] |= live
                continue
            rule = _secret_rule(change.path, change.type)
            if rule is not None:
                found.append(
                    _secret_finding(rule, change.path, layer.index, change.size, live)
                )
        for directory, (size, live) in sorted(git.items()):
            found.append(
                _secret_finding(
                    "git-directory", directory, layer.index, size, bool(live)
                )
            )
    return found


def _waste(report: ImageReport) -> list[Finding]:
    """Files deleted, replaced or copied again by a later layer."""
    shipped: dict[str, tuple[int, int]] = {}
    found = []
    for layer in report.layers:
        for change in layer.changes:
            path = change.path
            lower = shipped.get(path)
            if change.kind is ChangeKind.DELETE or change.kind is ChangeKind.OPAQUE:
                if change.hidden_bytes:
                    what = (
                        "deletes it"
                        if change.kind is ChangeKind.DELETE
                        else "hides its content with an opaque directory"
                    )
                    found.append(
                        _finding(
                            "deleted-later",
                            f"layer {layer.index + 1} {what}"
                            + (
                                f" ({counted(change.hidden, 'path')} below)"
                                if change.hidden
                                else ""
                            )
                            + "; the bytes stay in lower layers: delete in the step "
                            "that creates them",
                            path=path,
                            layer=layer.index,
                            size=change.hidden_bytes,
                        )
                    )
                shipped.pop(path, None)
                continue
            if change.type is not EntryType.FILE:
                continue
            if lower is not None and lower[1]:
                if change.kind is ChangeKind.SAME:
                    rule, why = "identical-readd", "adds it again, unchanged"
                elif change.reason == "metadata":
                    rule, why = (
                        "metadata-only-copy",
                        (
                            "copies it again to change only its owner or mode; "
                            "set them in the step that creates it"
                        ),
                    )
                else:
                    rule, why = "replaced-later", "replaces it"
                found.append(
                    _finding(
                        rule,
                        f"layer {layer.index + 1} {why}; layer {lower[0] + 1} "
                        "still ships the lower copy",
                        path=path,
                        layer=lower[0],
                        size=lower[1],
                    )
                )
            if (
                change.kind is ChangeKind.MODIFY
                and change.reason == "type"
                and (change.hidden_bytes)
            ):
                found.append(
                    _finding(
                        "deleted-later",
                        f"layer {layer.index + 1} replaces the directory /{path} "
                        f"({counted(change.hidden, 'path')} below) with a file",
                        path=path,
                        layer=layer.index,
                        size=change.hidden_bytes,
                    )
                )
            shipped[path] = (layer.index, change.size)
    return found


# Each cache kind: its rule, a name for messages, a pattern whose ``dir``
# group is the cache directory, and the advice that removes it.
_CACHES: list[tuple[str, str, re.Pattern[str], str]] = [
    ("package-cache", "apt lists",
     re.compile(r"^(?P<dir>var/lib/apt/lists)/(?!(.*/)?lock$)"),
     "rm -rf /var/lib/apt/lists/* in the same RUN step as apt-get"),
    ("package-cache", "apt archives",
     re.compile(r"^(?P<dir>var/cache/apt)/(?!(.*/)?lock$)"),
     "run apt-get clean in the same RUN step as apt-get install"),
    ("package-cache", "apk cache",
     re.compile(r"^(?P<dir>var/cache/apk|etc/apk/cache)/"),
     "use apk add --no-cache"),
    ("package-cache", "dnf cache", re.compile(r"^(?P<dir>var/cache/dnf)/"),
     "run dnf clean all in the same RUN step"),
    ("package-cache", "yum cache", re.compile(r"^(?P<dir>var/cache/yum)/"),
     "run yum clean all in the same RUN step"),
    ("package-cache", "pip cache", re.compile(r"^(?P<dir>(.*/)?\.cache/pip)/"),
     "use pip install --no-cache-dir"),
    ("package-cache", "npm cache", re.compile(r"^(?P<dir>(.*/)?\.npm/_cacache)/"),
     "run npm cache clean --force in the same RUN step"),
    ("package-cache", "yarn cache", re.compile(
        r"^(?P<dir>(.*/)?(\.cache/yarn|\.yarn/cache|\.yarn-cache))/"),
     "run yarn cache clean in the same RUN step"),
    ("temporary-files", "temporary", re.compile(r"^(?P<dir>tmp|var/tmp)/"),
     "remove them in the step that creates them"),
    ("bytecode-cache", "__pycache__", re.compile(r"^(?P<dir>(.*/)?__pycache__)/"),
     "set PYTHONDONTWRITEBYTECODE=1, or accept it for start-up speed"),
]  # fmt: skip


def _caches(report: ImageReport) -> list[Finding]:
    """Caches and temporary files, one finding per layer, kind and directory.

    Cache directories of one kind that share their first path component are
    reported once, at their closest common parent, so that hundreds of
    ``__pycache__`` directories under one site-packages make one finding.
    """
    found = []
    for layer in report.layers:
        groups: dict[tuple[int, str], dict[str, list[int]]] = defaultdict(dict)
        for change in layer.changes:
            if change.type is not EntryType.FILE or change.kind not in (
                ChangeKind.ADD,
                ChangeKind.MODIFY,
            ):
                continue
            for position, (_, _, pattern, _) in enumerate(_CACHES):
                match = pattern.search(change.path)
                if match:
                    directory = match.group("dir")
                    top = directory.split("/", 1)[0]
                    total = groups[(position, top)].setdefault(directory, [0, 0])
                    total[0] += 1
                    total[1] += change.size
                    break
        for (position, _), directories in sorted(groups.items()):
            rule, kind, _, advice = _CACHES[position]
            count = sum(c for c, _ in directories.values())
            size = sum(b for _, b in directories.values())
            where = _common_parent(list(directories))
            if kind == "temporary":
                what = counted(count, "temporary file")
            elif kind == "__pycache__":
                dirs = counted(len(directories), "directory", "directories")
                what = f"{counted(count, 'file')} in {dirs} named __pycache__"
            else:
                what = f"{counted(count, 'file')} of the {kind}"
            found.append(
                _finding(
                    rule,
                    f"{what} left behind; {advice}",
                    path=where,
                    layer=layer.index,
                    size=size,
                )
            )
    return found


def _common_parent(directories: list[str]) -> str:
    """Return the deepest directory holding all of ``directories`` (or it)."""
    parts = [d.split("/") for d in directories]
    common = []
    for names in zip(*parts):
        if len(set(names)) != 1:
            break
        common.append(names[0])
    return "/".join(common)


def _permissions(view: MergedView) -> list[Finding]:
    """Setuid, setgid, capabilities and world-writable paths of the final view."""
    found = []
    for node in view.iter_nodes():
        entry = node.entry
        kind = node.data_type
        where = dict(path=entry.path, layer=node.layer if node.layer >= 0 else None)
        if kind is EntryType.FILE:
            if entry.mode & 0o4000:
                found.append(
                    _finding(
                        "setuid-file",
                        f"runs as its owner (uid {entry.uid}) whoever starts it",
                        **where,
                    )
                )
            if entry.mode & 0o2000:
                found.append(
                    _finding(
                        "setgid-file",
                        f"runs with its group (gid {entry.gid}) whoever starts it",
                        **where,
                    )
                )
            if entry.xattrs and "security.capability" in entry.xattrs:
                found.append(
                    _finding(
                        "file-capabilities",
                        "carries file capabilities (security.capability): it "
                        "gains privileges when run",
                        **where,
                    )
                )
            if entry.mode & 0o002:
                found.append(
                    _finding(
                        "world-writable",
                        f"file mode {entry.mode:04o} lets any user change it",
                        **where,
                    )
                )
        elif kind is EntryType.DIR and entry.mode & 0o002 and not (entry.mode & 0o1000):
            found.append(
                _finding(
                    "world-writable",
                    f"directory mode {entry.mode:04o} has no sticky bit: any user "
                    "can delete or replace the files of others in it",
                    **where,
                )
            )
    return found


def _large_files(report: ImageReport, large: int) -> list[Finding]:
    found = []
    for layer in report.layers:
        for change in layer.changes:
            if (
                change.type is EntryType.FILE
                and change.size >= large
                and (
                    change.kind in (ChangeKind.ADD, ChangeKind.MODIFY, ChangeKind.SAME)
                )
            ):
                found.append(
                    _finding(
                        "large-file",
                        f"{counted(change.size, 'byte')}, above the {large}-byte "
                        "threshold",
                        path=change.path,
                        layer=layer.index,
                        size=change.size,
                    )
                )
    return found


def _links(view: MergedView) -> list[Finding]:
    """Relative symbolic links whose target climbs above the root."""
    found = []
    for node in view.iter_nodes():
        entry = node.entry
        if entry.type is not EntryType.SYMLINK or entry.linkname.startswith("/"):
            continue
        depth = entry.path.count("/")
        for part in entry.linkname.split("/"):
            if part == "..":
                depth -= 1
                if depth < 0:
                    found.append(
                        _finding(
                            "link-escapes-root",
                            f"target {entry.linkname!r} climbs above the root; "
                            "it resolves to the root only inside a container",
                            path=entry.path,
                            layer=node.layer if node.layer >= 0 else None,
                        )
                    )
                    break
            elif part not in ("", "."):
                depth += 1
    return found
