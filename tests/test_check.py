"""check and baseline: budgets, units, config files, growth, JUnit."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from builders import layer, write_docker_save
from conftest import run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from layerdiff import inspect_image, open_image
from layerdiff.analyses.budget import check_budgets
from layerdiff.config import Budgets, budgets_from, load_settings
from layerdiff.errors import UsageError
from layerdiff.units import parse_growth, parse_ratio, parse_size


def image(path, *layers):
    return write_docker_save(path, [b.tar_bytes() for b in layers])


@pytest.fixture
def small(tmp_path):
    base = layer().file("bin/tool", b"t" * 4000).file("old", b"o" * 1000)
    top = layer().whiteout("old").file("etc/conf", b"c" * 100)
    return image(tmp_path / "small.tar", base, top)


@pytest.mark.parametrize(
    "text, size",
    [("200MB", 200_000_000), ("1.5GiB", 1_610_612_736), ("10kB", 10_000),
     ("512", 512), ("2 MiB", 2_097_152), ("1g", 10**9)],
)  # fmt: skip
def test_sizes_accept_decimal_and_binary_units(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["MB", "12XB", "-5MB", "", "1.2.3GB"])
def test_bad_sizes_are_refused(text):
    with pytest.raises(UsageError):
        parse_size(text)


def test_growth_and_ratios_take_percent_or_bytes():
    assert parse_growth("5%").limit(1000) == 1050
    assert parse_growth("10MB").limit(1000) == 10_001_000
    assert parse_ratio("95%") == pytest.approx(0.95)
    assert parse_ratio("0.9") == pytest.approx(0.9)


def test_every_budget_passes_with_room_and_exits_0(small):
    result = run_cli(
        "check", small, "--max-size", "1MB", "--max-layer-size", "1MB",
        "--max-layers", "2", "--max-wasted", "1000", "--min-efficiency", "80%",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert result.output.rstrip().endswith("PASS")


@pytest.mark.parametrize(
    "option, value, budget",
    [("--max-size", "1kB", "max-size"),
     ("--max-layer-size", "1kB", "max-layer-size"),
     ("--max-layers", "1", "max-layers"),
     ("--max-wasted", "999", "max-wasted"),
     ("--min-efficiency", "90%", "min-efficiency")],
)  # fmt: skip
def test_each_budget_breach_exits_1_and_names_the_budget(small, option, value, budget):
    result = run_cli("check", small, option, value, "--json")

    assert result.exit_code == 1
    data = result.json
    assert data["schema_version"] == 1
    assert data["passed"] is False
    assert [(b["budget"], b["passed"]) for b in data["budgets"]] == [(budget, False)]


def test_check_json_reports_actual_values(small):
    data = run_cli("check", small, "--max-wasted", "1MB", "--max-layers", "5",
                   "--json").json  # fmt: skip

    by_name = {b["budget"]: b for b in data["budgets"]}
    assert by_name["max-wasted"] == {
        "budget": "max-wasted", "limit": 1_000_000, "actual": 1000,
        "unit": "bytes", "passed": True, "layer": None,
    }  # fmt: skip
    assert by_name["max-layers"]["actual"] == 2
    assert data["growth"] is None


def test_no_budget_and_bad_values_are_usage_errors(small):
    assert run_cli("check", small).exit_code == 2
    assert run_cli("check", small, "--max-size", "lots").exit_code == 2
    assert run_cli("check", small, "--max-growth", "5%").exit_code == 2


def test_growth_against_a_baseline_names_layers_and_paths(tmp_path):
    before = image(tmp_path / "v1.tar", layer().file("app/lib.so", b"x" * 1000))
    after = image(
        tmp_path / "v2.tar",
        layer().file("app/lib.so", b"x" * 1000),
        layer().file("app/data.bin", b"d" * 5000).file("app/lib.so", b"y" * 1500),
    )
    base = tmp_path / "base.json"
    assert run_cli("baseline", before, "-o", base).exit_code == 0

    result = run_cli("check", after, "--baseline", base, "--max-growth", "10%",
                     "--json")  # fmt: skip

    assert result.exit_code == 1
    growth = result.json["growth"]
    assert [p["path"] for p in growth["paths"]] == ["app/data.bin", "app/lib.so"]
    assert [p["growth"] for p in growth["paths"]] == [5000, 500]
    assert growth["layers"][0]["layer"] == 2
    assert growth["layers"][0]["match"] == "added"
    text = run_cli("check", after, "--baseline", base, "--max-growth", "10%").output
    assert "/app/data.bin" in text


def test_growth_limits_in_percent_and_bytes(tmp_path):
    # tarfile pads archives to 10240-byte records: 20480 bytes, then 40960.
    before = image(tmp_path / "v1.tar", layer().file("a", b"x" * 10000))
    after = image(tmp_path / "v2.tar", layer().file("a", b"x" * 30000))
    base = tmp_path / "base.json"
    run_cli("baseline", before, "-o", base)

    def code(limit):
        return run_cli("check", after, "--baseline", base, "--max-growth", limit)

    assert code("100%").exit_code == 0
    assert code("99%").exit_code == 1
    assert code("20480").exit_code == 0
    assert code("20kB").exit_code == 1


def test_a_baseline_that_is_not_inspect_json_is_bad_input(small, tmp_path):
    bogus = tmp_path / "bogus.json"
    bogus.write_text('{"hello": 1}')

    result = run_cli("check", small, "--baseline", bogus, "--max-growth", "1%")

    assert result.exit_code == 2
    assert "not a baseline" in result.stderr


def test_junit_report_has_one_case_per_budget(small, tmp_path):
    report = tmp_path / "junit.xml"

    result = run_cli("check", small, "--max-size", "1kB", "--max-layers", "9",
                     "--junit", report)  # fmt: skip

    assert result.exit_code == 1
    root = ET.parse(report).getroot()
    suite = root.find("testsuite")
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert cases["max-size"].find("failure") is not None
    assert cases["max-layers"].find("failure") is None


def test_markdown_summary(small):
    result = run_cli("check", small, "--max-layers", "1", "--markdown")

    assert "| `max-layers` | 1 | 2 | **FAIL** |" in result.output


def test_budgets_come_from_layerdiff_toml_and_flags_override(small, tmp_path,
                                                             monkeypatch):  # fmt: skip
    (tmp_path / ".layerdiff.toml").write_text(
        '[budgets]\nmax-size = "1kB"\nmax-layers = 5\n'
    )
    monkeypatch.chdir(tmp_path)

    assert run_cli("check", small).exit_code == 1
    assert run_cli("check", small, "--max-size", "1MB").exit_code == 0


def test_a_budget_set_both_at_the_top_and_in_budgets_is_refused(small, tmp_path):
    config = tmp_path / ".layerdiff.toml"
    config.write_text('max-size = 5\n[budgets]\nmax-size = "1MB"\n')

    result = run_cli("check", small, "--config", config)

    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "max-size is set twice" in result.stderr
    assert "5" in result.stderr and "'1MB'" in result.stderr


def test_budgets_that_are_not_a_table_are_refused(small, tmp_path):
    config = tmp_path / ".layerdiff.toml"
    config.write_text('budgets = "big"\n')

    result = run_cli("check", small, "--config", config)

    assert result.exit_code == 2
    assert "budgets must be a table" in result.stderr


def test_pyproject_table_is_read_and_unknown_keys_refused(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[tool.layerdiff]\nmax-size = "200MB"\nlarge = "1MiB"\n'
    )
    settings_ = load_settings(directory=str(tmp_path))
    assert settings_.budgets.max_size == 200_000_000
    assert settings_.large == 1 << 20

    bad = tmp_path / "bad.toml"
    bad.write_text('max-sise = "1MB"\n')
    with pytest.raises(UsageError, match="max-sise"):
        load_settings(str(bad))


def test_dive_sample_has_14_layers_and_its_measured_waste(samples_real):
    data = run_cli("check", samples_real / "dive" / "test-docker-image.tar",
                   "--max-layers", "14", "--max-wasted", "1MB", "--json").json  # fmt: skip

    by_name = {b["budget"]: b for b in data["budgets"]}
    assert by_name["max-layers"]["actual"] == 14
    assert by_name["max-wasted"]["actual"] == 32025
    assert data["passed"] is True


@settings(max_examples=60, deadline=None)
@given(limit=st.integers(0, 20_000), extra=st.integers(0, 20_000))
def test_raising_a_budget_never_turns_a_pass_into_a_fail(small_report, limit, extra):
    report = small_report

    def passed(value):
        budgets = Budgets(max_size=value, max_layer_size=value, max_wasted=value)
        return check_budgets(report, budgets).passed

    if passed(limit):
        assert passed(limit + extra)


@pytest.fixture(scope="module")
def small_report(tmp_path_factory):
    path = tmp_path_factory.mktemp("budget") / "img.tar"
    base = layer().file("bin/tool", b"t" * 4000).file("old", b"o" * 1000)
    top = layer().whiteout("old").file("etc/conf", b"c" * 100)
    return inspect_image(open_image([str(image(path, base, top))]))


def test_a_baseline_without_max_growth_is_a_usage_error(small, tmp_path):
    base = tmp_path / "base.json"
    assert run_cli("baseline", small, "-o", base).exit_code == 0

    result = run_cli("check", small, "--baseline", base)

    assert result.exit_code == 2
    assert "--max-growth" in result.stderr and "PASS" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("text", ["1.5", "50", "95", "-0.1", "150%", "x%"])
def test_efficiency_is_a_fraction_or_a_percentage_with_its_sign(text):
    with pytest.raises(UsageError, match="0.95.*95%"):
        parse_ratio(text)


@pytest.mark.parametrize("value, ratio", [(0.5, 0.5), (1, 1.0), ("50%", 0.5)])
def test_efficiency_in_a_config_file_takes_the_same_two_forms(value, ratio):
    assert budgets_from({"min-efficiency": value}).min_efficiency == ratio


def test_efficiency_of_50_in_a_config_file_is_refused(small, tmp_path, monkeypatch):
    (tmp_path / ".layerdiff.toml").write_text("min-efficiency = 50\n")
    monkeypatch.chdir(tmp_path)

    result = run_cli("check", small)

    assert result.exit_code == 2
    assert "95%" in result.stderr


def test_check_and_baseline_dash_output_mean_stdout(small, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    baseline = run_cli("baseline", small, "-o", "-")
    check = run_cli("check", small, "--max-layers", "5", "--json", "-o", "-")

    assert baseline.json["schema_version"] == 1
    assert check.json["passed"] is True
    assert not (tmp_path / "-").exists()


def test_growth_paths_in_json_have_no_leading_slash(tmp_path):
    before = image(tmp_path / "v1.tar", layer().file("a", b"x"))
    after = image(tmp_path / "v2.tar", layer().file("a", b"x" * 20000))
    base = tmp_path / "base.json"
    run_cli("baseline", before, "-o", base)

    data = run_cli("check", after, "--baseline", base, "--max-growth", "0",
                   "--json").json  # fmt: skip

    assert [p["path"] for p in data["growth"]["paths"]] == ["a"]
