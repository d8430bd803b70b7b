"""Hypothesis strategies: random stacks of layers over a small name space.

Names come from a few letters at shallow depth so that layers collide
often: the same path is added, replaced by another type, deleted and
re-created, and hidden by opaque directories.

A layer is a ``LayerSpec``: an ordered mapping of path to ``Node``, always
closed under parents (every ancestor of a path is a directory of the same
layer, as the tars that real tools write are), plus whiteouts and opaque
directories. ``LayerSpec.builder()`` turns it into a ``tests.builders``
layer; ``write_overlay_dir`` unpacks it the way overlayfs stores a layer.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

from builders import LayerBuilder
from hypothesis import strategies as st

NAMES = ("a", "b", "c")
PATHS = tuple(
    "/".join(parts)
    for depth in (1, 2, 3)
    for parts in __import__("itertools").product(NAMES, repeat=depth)
)
CONTENTS = (b"", b"one", b"two\n", b"x" * 700)
FILE_MODES = (0o644, 0o600, 0o755, 0o4755)
DIR_MODES = (0o755, 0o700, 0o1777)
OWNERS = ((0, 0), (1000, 1000), (0, 50))
LINK_TARGETS = ("a", "../b", "/c/a", "nowhere", "a/b/c")


@dataclass
class Node:
    kind: str  # file, dir, symlink, hardlink
    mode: int = 0o755
    owner: tuple[int, int] = (0, 0)
    data: bytes = b""
    target: str = ""


@dataclass
class LayerSpec:
    nodes: dict[str, Node] = field(default_factory=dict)
    whiteouts: list[str] = field(default_factory=list)
    opaque: list[str] = field(default_factory=list)
    whiteouts_first: bool = False

    def builder(self) -> LayerBuilder:
        """Return a tar builder: parents first, hard links after targets."""
        layer = LayerBuilder()
        marks = [("wh", p) for p in self.whiteouts] + [("opq", p) for p in self.opaque]
        if self.whiteouts_first:
            _add_marks(layer, marks)
        ordered = sorted(
            self.nodes, key=lambda p: (self.nodes[p].kind == "hardlink", p)
        )
        for path in ordered:
            node = self.nodes[path]
            uid, gid = node.owner
            if node.kind == "file":
                layer.file(path, node.data, node.mode, uid=uid, gid=gid)
            elif node.kind == "dir":
                layer.dir(path, node.mode, uid=uid, gid=gid)
            elif node.kind == "symlink":
                layer.symlink(path, node.target, uid=uid, gid=gid)
            else:
                layer.hardlink(path, node.target)
        if not self.whiteouts_first:
            _add_marks(layer, marks)
        return layer


def _add_marks(layer: LayerBuilder, marks) -> None:
    for kind, path in marks:
        if kind == "wh":
            layer.whiteout(path)
        else:
            layer.opaque(path)


def _parents(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


@st.composite
def layers(draw) -> LayerSpec:
    """Draw one consistent layer; conflicting operations are dropped."""
    spec = LayerSpec(whiteouts_first=draw(st.booleans()))
    taken: set[str] = set()  # paths with an entry or a whiteout here
    for _ in range(draw(st.integers(0, 7))):
        path = draw(st.sampled_from(PATHS))
        op = draw(
            st.sampled_from(
                ("file", "file", "dir", "symlink", "hardlink", "whiteout", "opaque")
            )
        )
        parents = _parents(path)
        if any(
            p in taken and spec.nodes.get(p, Node("x")).kind != "dir" for p in parents
        ):
            continue
        has_children = any(q.startswith(path + "/") for q in taken)
        if op == "opaque":
            if path in spec.whiteouts or (
                path in spec.nodes and spec.nodes[path].kind != "dir"
            ):
                continue
        elif path in taken or (has_children and op != "dir"):
            continue
        node = None
        if op == "file":
            node = Node(
                "file",
                draw(st.sampled_from(FILE_MODES)),
                draw(st.sampled_from(OWNERS)),
                draw(st.sampled_from(CONTENTS)),
            )
        elif op == "dir" or op == "opaque":
            node = spec.nodes.get(path) or Node(
                "dir", draw(st.sampled_from(DIR_MODES)), draw(st.sampled_from(OWNERS))
            )
        elif op == "symlink":
            node = Node("symlink", 0o777, draw(st.sampled_from(OWNERS)),
                        target=draw(st.sampled_from(LINK_TARGETS)))  # fmt: skip
        elif op == "hardlink":
            files = [p for p, n in spec.nodes.items() if n.kind == "file"]
            if not files:
                continue
            node = Node("hardlink", target=draw(st.sampled_from(files)))
        for parent in parents:
            if parent not in spec.nodes:
                spec.nodes[parent] = Node("dir", 0o755)
                taken.add(parent)
        if op == "whiteout":
            spec.whiteouts.append(path)
        else:
            spec.nodes[path] = node
            if op == "opaque" and path not in spec.opaque:
                spec.opaque.append(path)
        taken.add(path)
    return spec


def stacks(max_layers: int = 5):
    """A list of 1 to ``max_layers`` layers, bottom first."""
    return st.lists(layers(), min_size=1, max_size=max_layers)


def write_overlay_dir(spec: LayerSpec, root: str) -> None:
    """Unpack a layer the way overlayfs keeps one: whiteouts as 0/0 char
    devices, opaque directories marked with ``trusted.overlay.opaque``."""
    os.makedirs(root, exist_ok=True)
    for path in sorted(spec.nodes, key=lambda p: (spec.nodes[p].kind == "hardlink", p)):
        node = spec.nodes[path]
        full = os.path.join(root, path)
        if node.kind == "dir":
            os.makedirs(full, exist_ok=True)
        elif node.kind == "file":
            with open(full, "wb") as handle:
                handle.write(node.data)
        elif node.kind == "symlink":
            os.symlink(node.target, full)
        else:
            os.link(os.path.join(root, node.target), full)
        if node.kind != "hardlink":
            os.lchown(full, *node.owner)
            if node.kind != "symlink":
                os.chmod(full, node.mode)
    for path in spec.whiteouts:
        os.mknod(os.path.join(root, path), stat.S_IFCHR | 0o600, os.makedev(0, 0))
    for path in spec.opaque:
        os.setxattr(os.path.join(root, path), "trusted.overlay.opaque", b"y")
