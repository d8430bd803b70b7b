"""compare and why: path and layer differences, provenance of one path."""

from __future__ import annotations

from builders import layer, write_docker_save, write_oci_layout
from conftest import run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from layerdiff import inspect_image, open_image
from layerdiff.analyses.compare import compare_images, ignore_matcher, match_layers
from layerdiff.tree import MergedView


def image(path, *layers, history=None):
    return write_docker_save(path, [b.tar_bytes() for b in layers], history=history)


def inspected(path):
    view = MergedView()
    return inspect_image(open_image([str(path)]), view=view), view


def test_identical_images_exit_0(tmp_path):
    img = image(tmp_path / "a.tar", layer().file("etc/x", b"1"))

    result = run_cli("compare", img, img, "--json")

    assert result.exit_code == 0
    assert result.json["identical"] is True
    assert result.json["layers"][0]["match"] == "diff_id"


def test_added_removed_and_changed_paths_with_size_deltas(tmp_path):
    old = image(
        tmp_path / "old.tar",
        layer().file("usr/lib/a.so", b"a" * 100).file("etc/conf", b"c")
        .file("etc/mode", b"m").file("gone", b"g" * 5).symlink("bin/sh", "dash"),
    )  # fmt: skip
    new = image(
        tmp_path / "new.tar",
        layer().file("usr/lib/a.so", b"b" * 300).file("etc/conf", b"c")
        .file("etc/mode", b"m", mode=0o600).file("usr/lib/b.so", b"n" * 50)
        .file("bin/sh", b"#!"),
    )  # fmt: skip

    result = run_cli("compare", old, new, "--json")

    assert result.exit_code == 1
    data = result.json
    paths = {p["path"]: (p["status"], p["reason"], p["delta"]) for p in data["paths"]}
    assert paths == {
        "usr/lib/a.so": ("changed", "content", 200),
        "usr/lib/b.so": ("added", None, 50),
        "gone": ("removed", None, -5),
        "etc/mode": ("changed", "metadata", 0),
        "bin/sh": ("changed", "type", 2),
    }
    assert [p["path"] for p in data["paths"]][:2] == ["usr/lib/a.so", "usr/lib/b.so"]
    assert data["counts"] == {"added": 1, "removed": 1, "changed": 3}
    rollup = {r["path"]: r for r in data["rollup"]}
    assert rollup["usr/lib"] == {"path": "usr/lib", "added": 1, "removed": 0,
                                  "changed": 1, "delta": 250}  # fmt: skip


def test_depth_rolls_up_to_shallower_directories(tmp_path):
    old = image(tmp_path / "o.tar", layer().file("usr/lib/x/a", b"1"))
    new = image(tmp_path / "n.tar", layer().file("usr/lib/x/a", b"22"))

    data = run_cli("compare", old, new, "--depth", "1", "--json").json

    assert [r["path"] for r in data["rollup"]] == ["usr"]


def test_ignore_globs_and_the_noise_preset(tmp_path):
    old = image(tmp_path / "o.tar", layer().file("var/log/apt/history.log", b"1")
                .file("app/main.py", b"x"))  # fmt: skip
    new = image(tmp_path / "n.tar", layer().file("var/log/apt/history.log", b"2")
                .file("app/main.py", b"x").file("app/debug.txt", b"d"))  # fmt: skip

    assert run_cli("compare", old, new, "--ignore-noise").exit_code == 1
    both = run_cli("compare", old, new, "--ignore-noise", "--ignore", "/app/*.txt",
                   "--json")  # fmt: skip
    assert both.exit_code == 0
    assert both.json["ignored"] == 3  # var/log/apt, its history.log, debug.txt


def test_ignore_matches_a_path_through_its_parents():
    matches = ignore_matcher(["/var/cache"])

    assert matches("var/cache/apt/pkgcache.bin")
    assert not matches("var/cached")


def test_an_inserted_layer_does_not_shift_the_match_of_later_ones(tmp_path):
    base = layer().file("bin/a", b"a")
    app = layer().file("app/x", b"1").file("app/y", b"2").file("app/z", b"3")
    app2 = layer().file("app/x", b"1").file("app/y", b"2").file("app/z", b"4")
    extra = layer().file("opt/tool", b"t")
    old = image(tmp_path / "o.tar", base, app)
    new = image(tmp_path / "n.tar", base, extra, app2)

    layers = run_cli("compare", old, new, "--json").json["layers"]

    pairs = {(m["old_layer"], m["new_layer"], m["match"]) for m in layers}
    assert pairs == {(1, 1, "diff_id"), (None, 2, "added"), (2, 3, "similar")}


def test_two_unrelated_images_compare(tmp_path):
    old = write_oci_layout(tmp_path / "o", [layer().file("a", b"1").tar_bytes()])
    new = image(tmp_path / "n.tar", layer().file("b", b"22"), layer().file("c", b""))

    data = run_cli("compare", old, new, "--json").json

    assert data["counts"] == {"added": 2, "removed": 1, "changed": 0}
    assert {m["match"] for m in data["layers"]} == {"added", "removed"}


@settings(max_examples=40, deadline=None)
@given(
    files=st.dictionaries(
        st.text("abc", min_size=1, max_size=3).map(lambda s: "d/" + s),
        st.binary(max_size=20),
        max_size=6,
    )
)
def test_an_image_compared_with_itself_has_no_differences(tmp_path_factory, files):
    builder = layer()
    for name, data in files.items():
        builder.file(name, data)
    path = image(tmp_path_factory.mktemp("same") / "i.tar", builder)
    report, view = inspected(path)

    result = compare_images(report, view, report, view)

    assert result.identical
    assert all(m.match == "diff_id" for m in result.layers)


@given(st.lists(st.sets(st.sampled_from("abcdefgh")), max_size=6))
def test_layers_always_match_themselves_by_diff_id(sets):
    ids = [f"sha256:{i}" for i in range(len(sets))]

    pairs = match_layers(ids, sets, ids, sets)

    assert pairs == [(i, i, "diff_id", 1.0) for i in range(len(sets))]


def test_why_follows_a_path_through_add_chmod_and_delete(tmp_path):
    history = [{"created_by": "COPY f /app/f"}, {"created_by": "RUN chmod 600 /app/f"},
               {"created_by": "RUN rm -rf /app"}]  # fmt: skip
    img = image(
        tmp_path / "i.tar",
        layer().dir("app").file("app/f", b"x" * 10),
        layer().file("app/f", b"x" * 10, mode=0o600),
        layer().whiteout("app"),
        history=history,
    )

    result = run_cli("why", img, "/app/f", "--json")

    assert result.exit_code == 0
    data = result.json
    assert data["present"] is False and data["final"] is None
    assert [(e["layer"], e["action"], e["via"], e["cost"], e["wasted"])
            for e in data["events"]] == [
        (1, "added", None, 10, True),
        (2, "modified", None, 10, True),
        (3, "deleted", "app", 0, False),
    ]  # fmt: skip
    assert data["events"][1]["created_by"] == "RUN chmod 600 /app/f"
    assert data["cost"] == 20 and data["wasted"] == 20


def test_why_of_a_present_path_shows_its_final_entry(tmp_path):
    img = image(tmp_path / "i.tar", layer().file("etc/os-release", b"ID=x"))

    data = run_cli("why", img, "etc/os-release", "--json").json

    assert data["present"] is True
    assert data["final"]["layer"] == 1 and data["final"]["size"] == 4


def test_why_of_an_unknown_path_is_bad_input(tmp_path):
    img = image(tmp_path / "i.tar", layer().file("a", b""))

    result = run_cli("why", img, "/nope")

    assert result.exit_code == 2
    assert "/nope" in result.stderr


def test_dive_sample_why_and_compare_against_its_oci_twin(samples_real):
    dive = samples_real / "dive"

    why = run_cli("why", dive / "test-docker-image.tar", "/root/saved.txt",
                  "--json").json  # fmt: skip
    # A bare layer tar against the OCI image built from the same files.
    twin = run_cli("compare", dive / "test-gzip-image.tar",
                   dive / "test-oci-uncompressed-image.tar", "--json")  # fmt: skip

    assert [(e["layer"], e["action"]) for e in why["events"]] == [
        (8, "added"),
        (14, "modified"),
    ]
    assert why["wasted"] == 6405
    assert twin.exit_code == 1  # the bare layer has no config
    assert twin.json["counts"] == {"added": 0, "removed": 0, "changed": 0}
    assert [(m["match"], m["similarity"]) for m in twin.json["layers"]] == [
        ("similar", 1.0)
    ]
    assert twin.json["config"]["architecture"] == {"old": None, "new": "arm64"}


def test_compare_json_paths_have_no_leading_slash(tmp_path):
    old = image(tmp_path / "old.tar", layer().file("app/a", b"1"))
    new = image(tmp_path / "new.tar", layer().file("app/a", b"22").file("top", b"t"))

    data = run_cli("compare", old, new, "--json").json

    assert {p["path"] for p in data["paths"]} == {"app/a", "top"}
    assert {r["path"] for r in data["rollup"]} == {"app", ""}


def test_compare_text_shows_config_differences_item_by_item(tmp_path):
    old = write_docker_save(
        tmp_path / "old.tar", [layer().file("a").tar_bytes()],
        runtime={"Env": ["PATH=/bin", "OLD=1"], "Volumes": {"/vol": {}},
                 "Cmd": ["/bin/sh"]},
    )  # fmt: skip
    new = write_docker_save(
        tmp_path / "new.tar", [layer().file("a").tar_bytes()],
        runtime={"Env": ["PATH=/usr/bin:/bin", "NEW=2"], "Cmd": ["app", "--x"],
                 "User": "app"},
    )  # fmt: skip

    result = run_cli("compare", old, new)
    data = run_cli("compare", old, new, "--json").json

    text = result.output
    assert "Env" not in text and "['" not in text and "{'" not in text
    for line in ["env: + NEW=2", "env: - OLD=1", "env: PATH=/bin -> PATH=/usr/bin:/bin",
                 "volumes: - /vol", 'cmd: ["/bin/sh"] -> ["app", "--x"]',
                 "user: (unset) -> app"]:  # fmt: skip
        assert line in text
    assert set(data["config"]) == {"env", "volumes", "cmd", "user"}
    assert data["config"]["volumes"] == {"old": ["/vol"], "new": None}


def test_compare_dash_output_means_stdout(tmp_path, monkeypatch):
    img = image(tmp_path / "a.tar", layer().file("a"))
    monkeypatch.chdir(tmp_path)

    result = run_cli("compare", img, img, "--json", "-o", "-")

    assert result.json["identical"] is True
    assert not (tmp_path / "-").exists()


def test_why_json_paths_are_relative_and_text_modes_octal(tmp_path):
    img = image(tmp_path / "i.tar", layer().file("app/tool", b"x", mode=0o4755))

    data = run_cli("why", img, "/app/tool", "--json").json
    text = run_cli("why", img, "/app/tool").output

    assert data["path"] == "app/tool"
    assert data["final"]["path"] == "app/tool" and data["final"]["mode"] == 0o4755
    assert "file 4755 0:0" in text


def test_why_takes_several_bare_layers_with_the_path_last(tmp_path):
    base = layer().file("etc/conf", b"a").build(tmp_path / "base.tar")
    app = layer().file("etc/conf", b"bb").build(tmp_path / "app.tar")

    result = run_cli("why", base, app, "/etc/conf", "--json")

    assert result.exit_code == 0, result.stderr
    assert [(e["layer"], e["action"]) for e in result.json["events"]] == [
        (1, "added"),
        (2, "modified"),
    ]
