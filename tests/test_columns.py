"""The column stores behind changesets, change lists and the merged view."""

from __future__ import annotations

import copy
import dataclasses
import pickle

from builders import layer
from hypothesis import given, settings
from hypothesis import strategies as st

from layerdiff import inspect_image, merged_view, open_image
from layerdiff.classify import apply_layer
from layerdiff.model import (
    Change,
    ChangeKind,
    ChangeList,
    Changeset,
    Entry,
    EntryTable,
    EntryType,
    PathTable,
)
from layerdiff.tree import MergedView

# Path components as layers hold them: any text but '/' and NUL, including
# the surrogates that stand for bytes that are not UTF-8.
_COMPONENT = st.text(
    st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",))
    | st.sampled_from(["\udcff", "\udc80", "é", "."]),
    min_size=1,
    max_size=6,
)
_PATHS = st.lists(_COMPONENT, min_size=1, max_size=4).map("/".join)


@settings(max_examples=60, deadline=None)
@given(st.lists(_PATHS, max_size=2500))
def test_path_table_gives_each_path_one_number_that_names_it(paths):
    table = PathTable()
    numbers = [table.add(p) for p in paths]

    assert len(set(numbers)) == len(set(paths))
    for path, number in zip(paths, numbers):
        assert table.find(path) == number
        assert table[number] == path
    assert table.find("\x00 never added") == -1
    loaded = pickle.loads(pickle.dumps(table))
    assert [loaded.find(p) for p in paths] == numbers
    assert [loaded.add(p) for p in paths] == numbers


def test_path_table_keeps_names_that_are_not_normalised():
    table = PathTable()
    odd = ["/a", "a", "a/", "a//b", "/", "//x/y", "a/./b", ""]
    numbers = [table.add(p) for p in odd]

    assert [table[n] for n in numbers] == odd
    assert [table.find(p) for p in odd] == numbers
    assert len(set(numbers)) == len(odd)


def test_path_table_copies_are_independent():
    table = PathTable()
    table.add("a")
    other = copy.deepcopy(table)
    other.add("b")

    assert table.find("b") == -1 and other[other.find("b")] == "b"


_ENTRIES = st.builds(
    Entry,
    path=_PATHS,
    type=st.sampled_from(list(EntryType)),
    mode=st.integers(0, 0o7777),
    uid=st.integers(0, 2**32),
    gid=st.integers(0, 2**32),
    size=st.integers(0, 2**40),
    mtime=st.integers(-(2**40), 2**40),
    linkname=st.sampled_from(["", "target", "../x"]),
    sha256=st.none() | st.binary(min_size=32, max_size=32).map(bytes.hex),
    xattrs=st.none()
    | st.dictionaries(st.sampled_from(["user.a", "security.b"]), st.binary()),
    devmajor=st.integers(0, 4095),
    devminor=st.integers(0, 2**20),
    uname=st.sampled_from(["", "root", "app"]),
    gname=st.sampled_from(["", "root", "app"]),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(_ENTRIES, max_size=40))
def test_entry_table_gives_back_the_entries_it_was_given(entries):
    table = EntryTable.from_entries(entries)
    # An empty set of xattrs is the same as none.
    expected = [dataclasses.replace(e, xattrs=e.xattrs or None) for e in entries]

    assert list(table) == expected
    assert list(pickle.loads(pickle.dumps(table))) == expected
    assert table.file_bytes() == sum(
        e.size for e in entries if e.type is EntryType.FILE
    )


def test_change_list_keeps_sizes_past_4_gib_and_what_a_change_hid():
    changes = [
        Change("big", ChangeKind.ADD, EntryType.FILE, None, 5 << 30),
        Change("gone", ChangeKind.DELETE, EntryType.DIR, None, 0, 7, 1 << 33),
        Change("small", ChangeKind.MODIFY, EntryType.FILE, "content", 12),
    ]

    kept = ChangeList(changes)

    assert list(kept) == changes
    assert list(ChangeList(kept)) == changes
    assert kept[-1] == changes[-1] and kept[0:2] == changes[0:2]
    assert kept.kind_counts() == {
        "add": 1, "modify": 1, "delete": 1, "opaque": 0, "same": 0
    }  # fmt: skip


def _files(*names: str, size: int = 3) -> Changeset:
    return Changeset(
        entries=[
            Entry(n, EntryType.FILE, size=size, sha256=f"{i:064x}")
            for i, n in enumerate(names)
        ]
    )


def test_a_copy_of_the_view_changes_apart_from_the_original():
    view = MergedView()
    apply_layer(view, _files("a", "d/b"), 0)
    other = copy.deepcopy(view)

    apply_layer(other, Changeset(whiteouts=["d"]), 1)

    assert sorted(view.nodes) == ["", "a", "d", "d/b"]
    assert sorted(other.nodes) == ["", "a"]
    assert view.get("d/b").size == 3


def test_inode_records_of_replaced_files_are_reused_by_later_layers():
    view = MergedView()
    apply_layer(view, _files(*[f"f{i}" for i in range(50)]), 0)
    for number in range(1, 6):
        apply_layer(view, _files(*[f"f{i}" for i in range(50)], size=number), number)

    assert len(view.isize) <= 100  # not 300: one set in use, one being freed
    assert {view.get(f"f{i}").size for i in range(50)} == {5}
    assert view.waste[0].shadowed == 150


def test_a_hard_link_to_a_file_replaced_in_its_layer_keeps_the_old_data(tmp_path):
    # The link comes first in the tar, so it links to the file below while
    # that file's record is being freed: the record must not be reused.
    base = layer().file("a", b"old bytes")
    top = layer().hardlink("b", "a").file("a", b"new").file("c", b"other data")
    paths = [b.build(tmp_path / f"l{i}.tar") for i, b in enumerate((base, top))]

    img = open_image([str(p) for p in paths])
    report = inspect_image(img)
    view = merged_view(img)

    assert (view.get("a").size, view.get("b").size, view.get("c").size) == (3, 9, 10)
    assert view.get("b").sha256 != view.get("c").sha256
    assert report.layers[0].waste.total == 0


def test_nodes_are_snapshots_and_list_every_path_once(tmp_path):
    lower = layer().dir("etc").file("etc/a", b"1").symlink("etc/l", "a")
    upper = layer().file("etc/a", b"22").whiteout("etc/l")
    paths = [b.build(tmp_path / f"l{i}.tar") for i, b in enumerate((lower, upper))]

    view = merged_view(open_image([str(p) for p in paths]))
    node = view.get("etc/a")
    node.entry.mode = 0
    node.inode.size = 0

    assert view.get("etc/a").entry.mode == 0o644 and view.get("etc/a").size == 2
    assert [n.entry.path for n in view.iter_nodes()] == ["etc", "etc/a"]
    assert len(view) == 2 and "etc/l" not in view and "etc/a" in view
