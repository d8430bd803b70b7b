"""The layer rules: whiteouts, opaque directories, type changes, hard links."""

from __future__ import annotations

from builders import layer

from layerdiff import inspect_image, merged_view, open_image


def stack(tmp_path, *builders):
    paths = [b.build(tmp_path / f"l{i}.tar") for i, b in enumerate(builders)]
    return open_image([str(p) for p in paths])


def changes(report, index):
    return {(c.path, c.kind.value, c.reason) for c in report.layers[index].changes}


def test_opaque_directory_hides_lower_children_whatever_the_entry_order(tmp_path):
    lower = layer().dir("etc/app").file("etc/app/old.conf", b"a")
    upper = layer().file("etc/app/new.conf", b"b").opaque("etc/app")

    view = merged_view(stack(tmp_path, lower, upper))

    assert view.child_paths("etc/app") == ["etc/app/new.conf"]


def test_opaque_on_a_parent_hides_the_whole_lower_subtree(tmp_path):
    lower = layer().dir("a").dir("a/b").file("a/b/c", b"xyz").file("a/d", b"12")
    upper = layer().dir("a").opaque("a").file("a/e", b"new")

    report = inspect_image(stack(tmp_path, lower, upper))

    opaque = [c for c in report.layers[1].changes if c.kind.value == "opaque"]
    assert [(c.path, c.hidden, c.hidden_bytes) for c in opaque] == [("a", 3, 5)]
    assert report.layers[0].waste.shadowed == 5


def test_delete_then_recreate_a_directory_in_the_next_layer(tmp_path):
    base = layer().dir("d").file("d/old", b"old")
    remove = layer().whiteout("d")
    again = layer().dir("d").file("d/new", b"new")

    img = stack(tmp_path, base, remove, again)
    view = merged_view(img)
    report = inspect_image(img)

    assert view.child_paths("d") == ["d/new"]
    assert ("d", "delete", None) in changes(report, 1)
    assert ("d", "add", None) in changes(report, 2)
    assert report.layers[0].waste.deleted == 3


def test_hardlink_keeps_data_when_its_target_is_deleted_later(tmp_path):
    base = layer().file("bin/tool", b"0123456789").hardlink("bin/alias", "bin/tool")
    remove = layer().whiteout("bin/tool")

    img = stack(tmp_path, base, remove)
    report = inspect_image(img)
    view = merged_view(img)

    assert view.get("bin/alias").size == 10
    assert report.layers[0].waste.total == 0


def test_hardlink_before_its_target_is_a_finding_and_not_extracted(tmp_path):
    # GNU tar fails on such a link ("Cannot hard link") and goes on.
    only = layer().hardlink("b", "a").file("a", b"data")

    img = stack(tmp_path, only)
    report = inspect_image(img)
    view = merged_view(img)

    assert [(f.rule, f.path) for f in report.layers[0].findings] == [
        ("hardlink-missing-target", "b")
    ]
    assert view.get("b") is None
    assert view.get("a").size == 4


def test_hardlink_before_its_target_links_to_the_file_below(tmp_path):
    base = layer().file("a", b"old bytes")
    top = layer().hardlink("b", "a").file("a", b"new")

    img = stack(tmp_path, base, top)
    report = inspect_image(img)
    view = merged_view(img)

    assert [f.rule for f in report.layers[1].findings] == ["hardlink-missing-target"]
    assert (view.get("a").size, view.get("b").size) == (3, 9)


def test_hundreds_of_hardlinks_count_their_data_once(tmp_path):
    base = layer().file("bin/busybox", b"x" * 1000)
    for i in range(300):
        base.hardlink(f"bin/tool{i}", "bin/busybox")
    remove = layer().whiteout("bin")

    report = inspect_image(stack(tmp_path, base, remove))

    assert report.layers[0].file_bytes == 1000
    assert report.layers[0].waste.deleted == 1000
    deleted = report.layers[1].changes[0]
    assert (deleted.path, deleted.hidden, deleted.hidden_bytes) == ("bin", 301, 1000)


def test_whiteout_of_a_missing_path_is_a_finding_and_changes_nothing(tmp_path):
    base = layer().file("a", b"1")
    upper = layer().whiteout("no/such/file")

    report = inspect_image(stack(tmp_path, base, upper))

    assert report.layers[1].changes == []
    assert [f.rule for f in report.layers[1].findings] == ["whiteout-missing-target"]


def test_whiteout_listed_before_its_parent_entries_still_deletes(tmp_path):
    base = layer().dir("x").dir("x/y").file("x/y/z", b"1")
    upper = layer().whiteout("x/y/z").dir("x").dir("x/y")

    view = merged_view(stack(tmp_path, base, upper))

    assert "x/y/z" not in view and "x/y" in view


def test_modifications_are_split_into_content_metadata_and_type(tmp_path):
    base = layer().file("c", b"1").file("m", b"2").file("t", b"3").dir("d")
    base.file("d/inner", b"4").file("same", b"5")
    upper = layer().file("c", b"changed").file("m", b"2", mode=0o600)
    upper.symlink("t", "c").file("d", b"now a file").file("same", b"5")

    report = inspect_image(stack(tmp_path, base, upper))

    assert changes(report, 1) == {
        ("c", "modify", "content"),
        ("m", "modify", "metadata"),
        ("t", "modify", "type"),
        ("d", "modify", "type"),
        ("same", "same", None),
    }
    waste = report.layers[0].waste
    assert (waste.shadowed, waste.metadata_only) == (3, 2)


def test_a_later_entry_for_the_same_path_in_one_layer_wins(tmp_path):
    base = layer().file("f", b"first").file("f", b"second!")

    img = stack(tmp_path, base)
    view = merged_view(img)
    report = inspect_image(img)

    assert view.get("f").size == 7
    assert report.layers[0].waste.shadowed == 5


def test_docker_save_and_oci_layout_give_the_same_report(tmp_path):
    from builders import write_docker_save, write_oci_layout

    layers = [
        layer().dir("etc").file("etc/a", b"aaa").tar_bytes(),
        layer().whiteout("etc/a").file("etc/b", b"bb").tar_bytes(),
    ]
    docker = write_docker_save(tmp_path / "d.tar", layers)
    oci = write_oci_layout(tmp_path / "oci", layers)

    a = inspect_image(open_image(str(docker)))
    b = inspect_image(open_image(str(oci)))

    assert [layer.diff_id for layer in a.layers] == [
        layer.diff_id for layer in b.layers
    ]
    assert [layer.changes for layer in a.layers] == [
        layer.changes for layer in b.layers
    ]
    assert a.waste == b.waste


def test_hardlink_takes_mode_and_owner_of_its_target_not_its_header(tmp_path):
    base = layer().file("bin/tool", b"12345", mode=0o4755, uid=1000, gid=50)
    base.hardlink("bin/alias", "bin/tool")  # its header says 0644, 0:0

    view = merged_view(stack(tmp_path, base))

    alias = view.get("bin/alias").entry
    assert (alias.mode, alias.uid, alias.gid) == (0o4755, 1000, 50)


def test_directory_replaced_by_a_file_then_recreated_is_empty(tmp_path):
    base = layer().dir("d").file("d/old", b"old").dir("d/sub").file("d/sub/x", b"x")
    to_file = layer().file("d", b"now a file")
    again = layer().dir("d")

    view = merged_view(stack(tmp_path, base, to_file, again))

    assert view.get("d").entry.type.value == "dir"
    assert view.child_paths("d") == []


def test_a_file_replacing_a_directory_later_in_the_layer_removes_its_entries(tmp_path):
    base = layer().file("k", b"k" * 1000)
    top = (
        layer()
        .dir("e")
        .file("e/f", b"12345")
        .hardlink("e/g", "k")
        .file("e", b"")
        .file("e2/x", b"kept")
    )

    img = stack(tmp_path, base, top)
    report = inspect_image(img)
    view = merged_view(img)

    assert view.get("e").entry.type.value == "file"
    assert view.child_paths("e") == [] and "e/f" not in view and "e/g" not in view
    lost = [f for f in report.layers[1].findings if f.rule == "entry-replaced-in-layer"]
    assert sorted(f.path for f in lost) == ["e/f", "e/g"]
    assert report.layers[1].waste.shadowed == 5
    assert view.get("e2/x").size == 4


def test_a_hard_link_made_before_its_targets_parent_is_replaced_keeps_the_data(
    tmp_path,
):
    base = layer().dir("d").file("d/x", b"X" * 10)
    top = layer().hardlink("g", "d/x").file("d", b"")

    img = stack(tmp_path, base, top)
    report = inspect_image(img)
    view = merged_view(img)

    assert view.get("g").size == 10 and view.get("g").data_type.value == "file"
    assert "d/x" not in view and view.get("d").entry.type.value == "file"
    assert report.layers[0].waste.total == 0
    messages = [f.message for f in report.layers[1].findings]
    assert any("before /d is replaced" in m for m in messages)


def test_a_hard_link_made_before_its_target_is_removed_keeps_the_data(tmp_path):
    top = layer().dir("d").file("d/c", b"DATA").hardlink("x", "d/c").file("d", b"F")

    img = stack(tmp_path, top)
    report = inspect_image(img)
    view = merged_view(img)

    assert view.get("x").size == 4 and view.get("x").data_type.value == "file"
    assert "d/c" not in view and view.get("d").size == 1
    assert report.layers[0].waste.total == 0
    rules = [f.rule for f in report.layers[0].findings]
    assert rules == ["duplicate-entry", "entry-replaced-in-layer"]
