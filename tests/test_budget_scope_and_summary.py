"""Budgets and comparisons that mean what the papers mean: --budget-scope on the CLI, sweep
specs that take every scenario pattern run takes, and summary references named and set in the
spec (cold or warm preload, total or weight memory); run prints the plan and the gap to the
lower bound."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from experiments.cli import main
from experiments.errors import ExperimentError
from experiments.spec import parse_spec
from experiments.summary import summarise, summary_table

MB = 2**20


def run(*args: str):
    return CliRunner().invoke(main, ["run", *args])


def test_weights_scope_budgets_parameter_memory():
    # mobilenetv2's activations alone are ~4 MiB: 3 MiB of total memory cannot run it, while
    # 3 MiB of weights + staging can (the two-stage ring is its largest layer)
    base = ["--model", "mobilenetv2", "--profile", "snapdragon-8-gen-3", "--policy",
            "demand-layering", "--budget", "3MiB", "--json"]
    w = run(*base, "--budget-scope", "weights")
    assert w.exit_code == 0, w.output
    d = json.loads(w.output)
    assert d["budget_scope"] == "weights" and d["feasible"]
    assert d["peak_weight_bytes"] <= 3 * MB < d["peak_memory_bytes"]
    t = run(*base)
    assert t.exit_code == 3
    bad = run(*base, "--budget-scope", "params")
    assert bad.exit_code == 2 and "total" in bad.output and "weights" in bad.output


def test_run_prints_the_plan_the_planner_and_the_gap():
    r = run("--model", "yolov4", "--dtype", "fp32", "--profile", "jetson-agx-xavier",
            "--runtime", "darknet", "--policy", "demand-layering", "--option", "variant=sync")
    assert r.exit_code == 0, r.output
    assert ("plan           sync, two host + two GPU buffers, alternating, buffers 72.05 MiB"
            in r.output)
    r = run("--model", "mobilenetv2", "--profile", "snapdragon-8-gen-3", "--policy",
            "flashmem", "--budget", "8MiB")
    assert r.exit_code == 0, r.output
    assert "planner        greedy" in r.output and "above it)" in r.output


def spec(**extra):
    return {"profiles": ["snapdragon-8-gen-3"], "policies": ["preload"], **extra}


def test_specs_take_every_scenario_pattern_run_takes():
    s = parse_spec(spec(models=["yolov4-x2", "resnet50"],
                        workloads=["gpt2-decode-4", "gpt2-p8-d2", "sd15-2steps",
                                   "mobilenetv2-x3"]))
    assert [w.name for w in s.workloads] == ["yolov4-x2", "resnet50", "gpt2-decode-4",
                                            "gpt2-p8-d2", "sd15-2steps", "mobilenetv2-x3"]
    for name, words in (("yolov9-x2", ["yolov9-x2", "MODEL-xN", "yolov4"]),
                        ("resnet50-decode-4", ["resnet50-decode-4", "LLM-decode-N"])):
        with pytest.raises(ExperimentError) as e:
            parse_spec(spec(workloads=[name]))
        for w in words:
            assert w in str(e.value)


@pytest.mark.parametrize("extra,words", [
    ({"budget_scope": "params"}, ["budget_scope", "total, weights"]),
    ({"summary": {"speedup": "hot"}}, ["speedup", "cold, warm"]),
    ({"summary": {"memory": "weight"}}, ["memory", "did you mean 'weights'"]),
    ({"summary": {"latency": "cold"}}, ["unknown key 'latency'", "speedup, memory"]),
])
def test_bad_scope_or_summary_is_refused(extra, words):
    with pytest.raises(ExperimentError) as e:
        parse_spec(spec(models=["resnet50"], **extra))
    for w in words:
        assert w in str(e.value)


def test_summary_references_are_named_and_computed():
    """preload: 10 s cold = 4 s load + 6 s run, 300 MiB total, 200 MiB weights; a streaming
    policy: 7.5 s, 120 MiB total, 20 MiB weights."""
    rows = [dict(model="m", profile="p", dtype="fp16", policy="preload", policy_name="preload",
                 feasible=True, budget_bytes=None, latency_s=10.0, init_s=4.0, exec_s=6.0,
                 warm_latency_s=None, peak_memory_bytes=300 * MB, peak_weight_bytes=200 * MB),
            dict(model="m", profile="p", dtype="fp16", policy="dl", policy_name="demand-layering",
                 feasible=True, budget_bytes=None, latency_s=7.5, init_s=0.1, exec_s=7.4,
                 warm_latency_s=None, peak_memory_bytes=120 * MB, peak_weight_bytes=20 * MB)]
    df = pd.DataFrame(rows)
    cold = summarise(df).set_index("policy").loc["dl"]
    assert cold["speedup"] == pytest.approx(10 / 7.5) and cold["speedup_vs"] == "cold preload"
    assert cold["memory_reduction"] == pytest.approx(300 / 120)
    warm = summarise(df, speedup="warm", memory="weights").set_index("policy").loc["dl"]
    assert warm["speedup"] == pytest.approx(6 / 7.5)  # a 25% delay overhead
    assert warm["memory_reduction"] == pytest.approx(200 / 20)
    header = summary_table(summarise(df, speedup="warm", memory="weights"))[0]
    assert "speedup vs warm preload" in header and "reduction of weights memory" in header


def test_repeated_workloads_compare_warm_invocations():
    rows = [dict(model="m-x2", profile="p", dtype="fp16", policy="preload",
                 policy_name="preload", feasible=True, budget_bytes=None, latency_s=16.0,
                 init_s=4.0, exec_s=6.0, warm_latency_s=6.0, peak_memory_bytes=1,
                 peak_weight_bytes=1),
            dict(model="m-x2", profile="p", dtype="fp16", policy="dl",
                 policy_name="demand-layering", feasible=True, budget_bytes=None,
                 latency_s=15.0, init_s=0.1, exec_s=7.4, warm_latency_s=7.5,
                 peak_memory_bytes=1, peak_weight_bytes=1)]
    s = summarise(pd.DataFrame(rows), speedup="warm").set_index("policy").loc["dl"]
    assert s["speedup"] == pytest.approx(6.0 / 7.5)


def test_a_weights_scope_sweep_of_a_repeated_model(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("""
models: [mobilenetv2-x2]
profiles: [snapdragon-8-gen-3]
policies: [preload, {name: demand-layering, options: {variant: two-stage, extra: 0}}]
budgets: [unlimited]
budget_scope: weights
summary: {speedup: warm}
""")
    r = CliRunner().invoke(main, ["sweep", str(path), "--out", str(tmp_path / "out"),
                                  "--workers", "1", "--no-progress", "--no-plots"])
    assert r.exit_code == 0, r.output
    assert "speedup vs warm preload" in r.output and "reduction of weights memory" in r.output
    df = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert set(df["budget_scope"]) == {"weights"} and len(df) == 2
    dl = df[df["policy_name"] == "demand-layering"].iloc[0]
    assert dl["warm_latency_s"] > 0 and dl["peak_weight_bytes"] < dl["peak_memory_bytes"]
