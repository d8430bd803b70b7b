"""audit: each rule planted in a real archive, exit codes and output formats."""

from __future__ import annotations

import json

from builders import layer, write_docker_save, write_oci_layout
from conftest import run_cli

from layerdiff import inspect_image, open_image
from layerdiff.analyses.audit import RULES, Uncommitted, audit_image
from layerdiff.tree import MergedView


def image(tmp_path, *layers, history=None, name="img.tar"):
    return write_docker_save(
        tmp_path / name, [b.tar_bytes() for b in layers], history=history
    )


def audited(path, **options):
    view = MergedView()
    report = inspect_image(open_image([str(path)]), view=view)
    return audit_image(report, view, **options)


def rules_at(result):
    return {(f.rule, f.path, None if f.layer is None else f.layer + 1)
            for f in result.findings}  # fmt: skip


def test_private_key_deleted_later_is_found_in_the_layer_holding_its_bytes(tmp_path):
    add = layer().dir("root").dir("root/.ssh").file("root/.ssh/id_rsa", b"k" * 40)
    remove = layer().whiteout("root/.ssh/id_rsa")

    result = audited(image(tmp_path, add, remove))

    keys = [f for f in result.findings if f.rule == "private-key"]
    assert [(k.path, k.layer, k.size) for k in keys] == [("root/.ssh/id_rsa", 0, 40)]
    assert "removed later" in keys[0].message
    assert result.fails("error")


def test_each_secret_kind_has_its_own_rule(tmp_path):
    secrets = (
        layer()
        .file("app/.env", b"TOKEN=x")
        .file("app/.env.example", b"TOKEN=")
        .file("root/.aws/credentials", b"[default]")
        .file("root/.docker/config.json", b"{}")
        .file("root/.git-credentials", b"https://u:p@h")
        .dir("src/.git")
        .file("root/.bash_history", b"ls")
        .file("etc/ssh/ssh_host_ed25519_key", b"k")
        .file("etc/ssl/certs/ca.pem", b"cert")
    )

    found = rules_at(audited(image(tmp_path, secrets)))

    assert found >= {
        ("env-file", "app/.env", 1),
        ("cloud-credentials", "root/.aws/credentials", 1),
        ("registry-credentials", "root/.docker/config.json", 1),
        ("git-credentials", "root/.git-credentials", 1),
        ("git-directory", "src/.git", 1),
        ("shell-history", "root/.bash_history", 1),
        ("private-key", "etc/ssh/ssh_host_ed25519_key", 1),
    }
    assert not any(path == "app/.env.example" for _, path, _ in found)
    assert not any(path == "etc/ssl/certs/ca.pem" for _, path, _ in found)


def test_caches_and_temporary_files_are_summed_per_layer(tmp_path):
    apt = (
        layer()
        .file("var/lib/apt/lists/a_Packages", b"p" * 100)
        .file("var/lib/apt/lists/b_Packages", b"p" * 50)
        .file("root/.cache/pip/http/x", b"w" * 7)
        .file("tmp/build.log", b"l" * 3)
        .file("usr/lib/python3/__pycache__/m.pyc", b"c")
    )

    result = audited(image(tmp_path, apt))

    by_path = {(f.rule, f.path): f.size for f in result.findings}
    assert by_path[("package-cache", "var/lib/apt/lists")] == 150
    assert by_path[("package-cache", "root/.cache/pip")] == 7
    assert by_path[("temporary-files", "tmp")] == 3
    assert by_path[("bytecode-cache", "usr/lib/python3/__pycache__")] == 1


def test_waste_rules_name_the_layer_that_ships_the_bytes(tmp_path):
    base = layer().file("a", b"1" * 10).file("b", b"2" * 20).file("c", b"3" * 30)
    later = (
        layer()
        .whiteout("a")
        .file("b", b"changed")
        .file("c", b"3" * 30, mode=0o600)
    )

    found = {(f.rule, f.path, f.layer + 1, f.size) for f in audited(
        image(tmp_path, base, later)).findings}  # fmt: skip

    assert ("deleted-later", "a", 2, 10) in found
    assert ("replaced-later", "b", 1, 20) in found
    assert ("metadata-only-copy", "c", 1, 30) in found


def test_identical_readd_is_reported(tmp_path):
    base = layer().file("f", b"same")
    again = layer().file("f", b"same")

    found = rules_at(audited(image(tmp_path, base, again)))

    assert ("identical-readd", "f", 1) in found


def test_permission_rules_read_the_final_view(tmp_path):
    perms = (
        layer()
        .file("usr/bin/su", b"x", mode=0o4755)
        .file("usr/bin/wall", b"x", mode=0o2755)
        .file("usr/bin/ping", b"x", mode=0o755)
        .xattr("usr/bin/ping", "security.capability", b"\x01\x00\x00\x02")
        .file("etc/open", b"x", mode=0o666)
        .dir("shared", mode=0o777)
        .dir("tmp", mode=0o1777)
    )

    found = rules_at(audited(image(tmp_path, perms)))

    assert {
        ("setuid-file", "usr/bin/su", 1),
        ("setgid-file", "usr/bin/wall", 1),
        ("file-capabilities", "usr/bin/ping", 1),
        ("world-writable", "etc/open", 1),
        ("world-writable", "shared", 1),
    } <= found
    assert ("world-writable", "tmp", 1) not in found


def test_large_threshold_is_inclusive(tmp_path):
    big = layer().file("data/blob", b"x" * 1000).file("data/small", b"x" * 999)

    found = rules_at(audited(image(tmp_path, big), large=1000))

    assert ("large-file", "data/blob", 1) in found
    assert ("large-file", "data/small", 1) not in found


def test_layer_rule_breaks_are_reported(tmp_path):
    base = layer().file("keep", b"k")
    broken = (
        layer()
        .whiteout("never-there")
        .hardlink("link", "missing")
        .file("dup", b"1")
        .file("dup", b"22")
        .file(".wh..wh.plnk", b"")
        .symlink("up", "../../etc/passwd")
    )

    found = {f.rule for f in audited(image(tmp_path, base, broken)).findings}

    assert {
        "whiteout-missing-target",
        "hardlink-missing-target",
        "duplicate-entry",
        "link-escapes-root",
    } <= found


def test_write_under_volume_comes_from_inspect(tmp_path):
    base = layer().dir("data")
    write = layer().file("data/db", b"rows")
    history = [
        {"created_by": "ADD base"},
        {"created_by": '/bin/sh -c #(nop)  VOLUME ["/data"]', "empty_layer": True},
        {"created_by": "RUN fill"},
    ]

    found = rules_at(audited(image(tmp_path, base, write, history=history)))

    assert ("write-under-volume", "data", 2) in found


def test_uncommitted_content_enters_through_the_audit_input(tmp_path):
    img = image(tmp_path, layer().file("f", b"x"))
    view = MergedView()
    report = inspect_image(open_image([str(img)]), view=view)

    result = audit_image(
        report, view, uncommitted=[Uncommitted("data/x", "under the volume /data", 4)]
    )

    assert ("uncommitted-content", "data/x", None) in rules_at(result)


def test_disabled_rules_are_left_out_and_unknown_ids_refused(tmp_path):
    img = image(tmp_path, layer().file("root/.env", b"A=1"))

    assert not audited(img, disabled=["env-file"]).findings
    result = run_cli("audit", img, "--disable", "no-such-rule")
    assert result.exit_code == 2
    assert "no-such-rule" in result.stderr


def test_fail_on_sets_the_exit_code(tmp_path):
    img = image(tmp_path, layer().file("root/.env", b"A=1"))  # a warning

    assert run_cli("audit", img).exit_code == 0
    assert run_cli("audit", img, "--fail-on", "warning").exit_code == 1
    assert run_cli("audit", img, "--fail-on", "info").exit_code == 1
    assert run_cli("audit", img, "--fail-on", "none").exit_code == 0


def test_audit_json_shape(tmp_path):
    img = image(tmp_path, layer().file("root/.ssh/id_ed25519", b"k"))

    result = run_cli("audit", img, "--json")

    assert result.exit_code == 1
    data = result.json
    assert data["schema_version"] == 1
    assert set(data) == {"schema_version", "image", "findings", "counts",
                         "disabled", "large", "fail_on", "failed", "notes"}  # fmt: skip
    assert data["counts"] == {"info": 0, "warning": 0, "error": 1}
    assert data["findings"][0] == {
        "rule": "private-key",
        "severity": "error",
        "message": data["findings"][0]["message"],
        "path": "root/.ssh/id_ed25519",
        "layer": 1,
        "size": 1,
    }
    assert data["failed"] is True


def test_sarif_output_is_a_valid_2_1_0_log(tmp_path):
    img = write_oci_layout(tmp_path / "oci", [layer().file("x/.git-credentials",
                           b"t").tar_bytes()])  # fmt: skip
    out = tmp_path / "audit.sarif"

    result = run_cli("audit", img, "--sarif", "-o", out)

    assert result.exit_code == 1
    log = json.loads(out.read_text())
    assert log["version"] == "2.1.0"
    run = log["runs"][0]
    assert run["tool"]["driver"]["name"] == "layerdiff"
    ids = [rule["id"] for rule in run["tool"]["driver"]["rules"]]
    assert ids == list(RULES)
    hit = run["results"][0]
    assert hit["ruleId"] == "git-credentials"
    assert hit["level"] == "error"
    assert ids[hit["ruleIndex"]] == "git-credentials"
    location = hit["locations"][0]["physicalLocation"]["artifactLocation"]
    assert location["uri"] == "x/.git-credentials"


def test_sarif_names_a_non_utf8_file_as_text_and_stays_utf8(tmp_path):
    name = b"big\xff".decode("utf-8", "surrogateescape")
    img = image(tmp_path, layer().file(name, b"x" * 2000).file("big\xff", b"y" * 2000))
    out = tmp_path / "audit.sarif"

    result = run_cli("audit", img, "--large", "1KB", "--sarif", "-o", out)

    assert result.exit_code == 0, result.stderr
    log = json.loads(out.read_bytes().decode("utf-8"))
    hits = log["runs"][0]["results"]
    uris = sorted(h["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                  for h in hits)  # fmt: skip
    assert uris == ["big\\xff", "big\xff"]
    prints = {h["partialFingerprints"]["layerdiffFinding/v1"] for h in hits}
    assert len(prints) == 2


def test_markdown_output_is_a_table(tmp_path):
    img = image(tmp_path, layer().file("root/.bash_history", b"ls"))

    result = run_cli("audit", img, "--markdown")

    assert "| severity | rule | layer | path | size | reason |" in result.output
    assert "| warning | `shell-history` | 1 | `/root/.bash_history` |" in result.output


def test_output_formats_are_exclusive(tmp_path):
    img = image(tmp_path, layer().file("f", b"x"))

    assert run_cli("audit", img, "--json", "--sarif").exit_code == 2


def test_config_file_disables_rules_and_sets_fail_on(tmp_path, monkeypatch):
    img = image(tmp_path, layer().file("root/.env", b"A=1").file("tmp/x", b"1"))
    (tmp_path / "pyproject.toml").write_text(
        '[tool.layerdiff]\nfail-on = "info"\ndisable = ["temporary-files"]\n'
    )
    monkeypatch.chdir(tmp_path)

    result = run_cli("audit", img, "--json")

    assert result.exit_code == 1
    assert [f["rule"] for f in result.json["findings"]] == ["env-file"]
    assert result.json["disabled"] == ["temporary-files"]


def test_dive_sample_audit_finds_its_planted_waste(samples_real):
    result = run_cli("audit", samples_real / "dive" / "test-docker-image.tar", "--json")

    assert result.exit_code == 0
    data = result.json
    assert data["image"]["layers"] == 14
    found = {(f["rule"], f["path"], f["layer"]) for f in data["findings"]}
    assert ("deleted-later", "root/example", 10) in found
    assert ("metadata-only-copy", "root/saved.txt", 8) in found
    assert ("temporary-files", "tmp", 12) in found


def test_every_real_sample_audits_without_error(samples_real):
    archives = [
        p for p in sorted(samples_real.rglob("*.tar"))
        if p.parent.name in ("dive", "container-diff")
    ]  # fmt: skip

    codes = {p.name: run_cli("audit", p, "--fail-on", "none").exit_code
             for p in archives}  # fmt: skip

    assert codes and set(codes.values()) == {0}


def test_each_cache_kind_reports_its_own_directory_and_advice(tmp_path):
    caches = (
        layer()
        .file("var/lib/apt/lists/a_Packages", b"p" * 10)
        .file("var/cache/apt/archives/x.deb", b"d" * 20)
        .file("tmp/t", b"t")
        .file("var/tmp/t", b"vt")
    )

    found = {f.path: f for f in audited(image(tmp_path, caches)).findings
             if f.rule in ("package-cache", "temporary-files")}  # fmt: skip

    assert set(found) == {"var/lib/apt/lists", "var/cache/apt", "tmp", "var/tmp"}
    assert found["var/lib/apt/lists"].size == 10
    assert "/var/lib/apt/lists/*" in found["var/lib/apt/lists"].message
    assert found["var/cache/apt"].size == 20
    assert "apt-get clean" in found["var/cache/apt"].message
    assert "lists" not in found["var/cache/apt"].message
    assert (found["tmp"].size, found["var/tmp"].size) == (1, 2)


def test_pip_and_bytecode_caches_name_their_directory(tmp_path):
    caches = (
        layer()
        .file("root/.cache/pip/http/a/b", b"w" * 7)
        .file("root/.cache/pip/http/c", b"w" * 3)
        .file("usr/lib/python3/site/__pycache__/m.pyc", b"c")
        .file("usr/lib/python3/site/pkg/__pycache__/n.pyc", b"cc")
        .file("app/__pycache__/main.pyc", b"ccc")
    )

    found = {(f.rule, f.path, f.size) for f in audited(image(tmp_path, caches)).findings
             if f.rule in ("package-cache", "bytecode-cache")}  # fmt: skip

    assert found == {
        ("package-cache", "root/.cache/pip", 10),
        ("bytecode-cache", "usr/lib/python3/site", 3),
        ("bytecode-cache", "app/__pycache__", 3),
    }


def test_git_directory_is_found_by_any_path_component(tmp_path):
    git = layer().file("app/.git/HEAD", b"ref: x").file("app/.git/config", b"[core]")

    found = [f for f in audited(image(tmp_path, git)).findings
             if f.rule == "git-directory"]  # fmt: skip

    assert [(f.path, f.layer, f.size) for f in found] == [("app/.git", 0, 12)]


def test_audit_dash_output_means_stdout(tmp_path, monkeypatch):
    img = image(tmp_path, layer().file("app/.env", b"A=1"))
    monkeypatch.chdir(tmp_path)

    result = run_cli("audit", img, "--json", "-o", "-")

    assert result.json["findings"][0]["rule"] == "env-file"
    assert not (tmp_path / "-").exists()
