"""`weightstream runtimes`, `--runtime` on run / capacity and the `runtimes` axis of sweeps."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from experiments.cli import main
from experiments.spec import parse_spec


@pytest.fixture
def run():
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(main, list(args))

    return invoke


def test_list_and_show(run):
    r = run("runtimes", "list")
    assert r.exit_code == 0
    for name in ("ideal", "mnn", "llama.cpp-opencl", "mlc-llm", "flashmem"):
        assert name in r.output
    r = run("runtimes", "show", "mnn")
    assert r.exit_code == 0
    assert "load.transform_bandwidth" in r.output and "releaseModel" in r.output
    r = run("runtimes", "show", "mnn", "--set", "load.parse_bandwidth=9GB/s")
    assert "9.00 GB/s" in r.output and "override --set" in r.output


def test_unknown_runtime_names_the_valid_ones(run):
    for args in (("runtimes", "show", "mnm"),
                 ("run", "--model", "gpt2", "--profile", "tensor-g3", "--policy", "preload",
                  "--runtime", "mnm")):
        r = run(*args)
        assert r.exit_code == 2
        assert "unknown runtime 'mnm'" in r.output and "mnn" in r.output
        assert "Traceback" not in r.output


def test_malformed_runtime_lists_every_problem(run, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({
        "name": "bad",
        "weights": {"holding": {"value": "swap", "source": "x"}},
        "load": {"parse_bandwidth": {"value": 3, "source": "x"},
                 "transform": {"value": "cpu", "source": "x"}},
        "efficiency": {"tensorcore": {"value": 2, "source": "x"},
                       "conv": {"value": -1, "source": "x"}},
        "fusion": {"rules": {"value": ["conv_bn", "magic"]}}}))
    r = run("runtimes", "check", str(bad))
    assert r.exit_code == 1
    out = r.output
    for needle in ("weights.holding: expected one of anonymous, mmap, found 'swap'",
                   "load.parse_bandwidth: expected a bandwidth",
                   "load.transform_bandwidth: expected a value, since load.transform is 'cpu'",
                   "efficiency.tensorcore: expected one of the known keys",
                   "efficiency.conv: expected a positive number, found -1",
                   "fusion.rules: expected a source or an estimate note",
                   "fusion.rules: expected a list of names from conv_bn, elementwise, attention"):
        assert needle in out, needle
    r = run("run", "--model", "gpt2", "--profile", "tensor-g3", "--policy", "preload",
            "--runtime", str(bad))
    assert r.exit_code == 2 and "7 problem(s)" in r.output and "Traceback" not in r.output
    (tmp_path / "bad.yml").write_text("name: [unclosed")
    r = run("runtimes", "check", str(tmp_path / "bad.yml"))
    assert r.exit_code == 1 and "not valid YAML" in r.output


def test_run_with_a_runtime_reports_init_and_exec(run):
    r = run("run", "--model", "resnet50", "--profile", "snapdragon-8-gen-3", "--policy",
            "preload", "--runtime", "mnn", "--json")
    assert r.exit_code == 0, r.output
    m = json.loads(r.output)
    assert m["runtime"] == "mnn"
    assert m["init_s"] + m["exec_s"] == pytest.approx(m["latency_s"])
    assert m["init_breakdown_s"]["transform"] > 0 and m["init_breakdown_s"]["parse"] > 0
    assert m["peak_weight_bytes"] <= m["peak_memory_bytes"]
    assert sum(m["memory_at_peak_by_category"].values()) == m["peak_memory_bytes"]
    r = run("run", "--model", "resnet50", "--profile", "snapdragon-8-gen-3", "--policy",
            "preload", "--runtime", "mnn")
    assert "cold start     init" in r.output and "(not simultaneous)" in r.output
    assert "app memory     limit" in r.output


def test_capacity_with_a_runtime(run):
    r = run("capacity", "--model", "resnet50", "--profile", "snapdragon-8-gen-3", "--policy",
            "flashmem", "--runtime", "flashmem", "--latency-target", "1s", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output.splitlines()[0])
    assert d["runtime"] == "flashmem" and d["met"]


def test_sweep_runtimes_axis_and_pinned_policies(tmp_path, run):
    spec = {"name": "rt", "models": ["mobilenetv2"], "profiles": ["snapdragon-8-gen-3"],
            "runtimes": ["ideal", "mnn"],
            "policies": ["preload", {"name": "flashmem", "runtime": "flashmem"}],
            "budgets": ["unlimited"]}
    parsed = parse_spec(spec)
    assert [(p.name, r.label) for p, r in parsed.pairs()] == \
        [("preload", "ideal"), ("preload", "mnn"), ("flashmem", "flashmem")]
    path = tmp_path / "rt.yaml"
    path.write_text(yaml.safe_dump(spec))
    r = run("sweep", str(path), "--out", str(tmp_path / "out"), "--workers", "1",
            "--no-progress", "--no-plots")
    assert r.exit_code == 0, r.output
    df = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert sorted(df["policy"]) == ["flashmem@flashmem", "preload", "preload@mnn"]
    assert set(df["runtime"]) == {"ideal", "mnn", "flashmem"}
    mnn = df[df["policy"] == "preload@mnn"].iloc[0]
    ideal = df[df["policy"] == "preload"].iloc[0]
    assert mnn["init_s"] > ideal["init_s"]
    with pytest.raises(Exception, match="unknown runtime 'nope'"):
        parse_spec({**spec, "runtimes": ["nope"]})
