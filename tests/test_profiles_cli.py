"""`weightstream profiles list | show | check` through the real CLI entry point."""

from __future__ import annotations

import pytest
import yaml
from click.testing import CliRunner

from experiments.cli import main
from hwprofiles import list_profiles
from hwprofiles.loader import builtin_dir


def row(output: str, first_cell: str) -> str:
    """The table line whose first cell is exactly `first_cell`."""
    for line in output.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) > 2 and cells[1] == first_cell:
            return line
    raise AssertionError(f"no table row {first_cell!r} in:\n{output}")


@pytest.fixture
def run():
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(main, ["profiles", *args])

    return invoke


def test_list_shows_every_profile_with_its_columns(run):
    res = run("list")
    assert res.exit_code == 0, res.output
    for name in list_profiles():
        assert name in res.output
    for header in ("GPU", "storage", "storage BW", "DRAM", "fp16 TFLOPS"):
        assert header in res.output
    line = row(res.output, "jetson-agx-orin")
    assert "204.80 GB/s" in line and "NVMe" in line and "10.60" in line
    line = row(res.output, "tensor-g3")
    assert "Mali-G715" in line and "UFS 3.1" in line and "2.10 GB/s" in line


def test_show_prints_every_field_value_and_source(run):
    res = run("show", "snapdragon-8-gen-3")
    assert res.exit_code == 0, res.output
    out = res.output
    for field in ("storage.read_bandwidth", "gpu.image2d_array_max_layers",
                  "transfer.transform_bandwidth", "energy.gpu_per_flop"):
        assert field in out
    line = row(out, "dram.bandwidth")
    assert "76.80 GB/s" in line and "Qualcomm" in line and "(estimate)" not in line
    line = row(out, "gpu.peak_flops.fp32")
    assert "2.77 TFLOPS" in line and "(estimate)" in line
    line = row(out, "gpu.max_alloc")
    assert "1.00 GiB" in line


def test_show_with_set(run):
    res = run("show", "snapdragon-8-gen-3", "--set", "storage.read_bandwidth=2.1GB/s",
              "--set", "storage.queue_depth=4")
    assert res.exit_code == 0, res.output
    line = row(res.output, "storage.read_bandwidth")
    assert "2.10 GB/s" in line and "--set storage.read_bandwidth=2.1GB/s" in line
    line = row(res.output, "storage.queue_depth")
    assert " 4 " in line


def test_show_derived_profile_says_what_it_extends(run):
    res = run("show", "snapdragon-8-gen-3-ufs31")
    assert res.exit_code == 0, res.output
    assert "extends snapdragon-8-gen-3" in res.output
    assert "eUFS 3.1" in res.output


def test_show_unknown_profile_is_a_clean_error(run):
    res = run("show", "iphone-99")
    assert res.exit_code == 2
    assert "error:" in res.output and "iphone-99" in res.output
    assert "snapdragon-8-gen-3" in res.output  # names the valid choices
    assert "Traceback" not in res.output


def test_show_bad_set_is_a_clean_error(run):
    res = run("show", "pocl-cpu", "--set", "storage.read_bandwidth=fast")
    assert res.exit_code == 2
    assert "storage.read_bandwidth" in res.output and "Traceback" not in res.output


@pytest.mark.parametrize("name", ["snapdragon-8-gen-3", "snapdragon-8-gen-3-ufs31", "pocl-cpu"])
def test_check_ok(run, name):
    res = run("check", str(builtin_dir() / f"{name}.yaml"))
    assert res.exit_code == 0, res.output
    assert "OK" in res.output


def test_check_lists_every_problem_and_exits_1(run, tmp_path):
    data = yaml.safe_load((builtin_dir() / "tensor-g3.yaml").read_text())
    data["name"] = "bad"
    del data["gpu"]["max_alloc"]
    data["storage"]["read_bandwidth"]["value"] = "2100 MB"
    data["dram"]["bandwidth"]["value"] = "-68 GB/s"
    data["transfer"]["warp_drive"] = True
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    res = run("check", str(path))
    assert res.exit_code == 1
    assert "4 problem(s)" in res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip().startswith("- ")]
    assert len(lines) == 4
    for field in ("gpu.max_alloc", "storage.read_bandwidth", "dram.bandwidth",
                  "transfer.warp_drive"):
        assert any(field in ln and "expected" in ln and "found" in ln for ln in lines), field
    assert "OK" not in res.output


def test_check_malformed_yaml_exits_1(run, tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed\n")
    res = run("check", str(path))
    assert res.exit_code == 1
    assert "not valid YAML" in res.output and "Traceback" not in res.output
