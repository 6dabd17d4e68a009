"""`weightstream run` through the CLI: the --json contract, trace and Gantt outputs, and clear
errors (exit 2 with valid choices, no traceback) for bad input."""

from __future__ import annotations

import json

import matplotlib.image as mpimg
import pytest
from click.testing import CliRunner

from experiments.cli import main

pytest.importorskip("workloads.scenarios", reason="model zoo / scenarios not available")

BASE = ["run", "--model", "mobilenetv2", "--profile", "snapdragon-8-gen-3"]
CONTRACT = ("latency_s", "peak_memory_bytes", "weight_bytes", "flash_bytes_read", "gpu_stall_s",
            "feasible", "policy", "model", "profile", "budget_bytes")


def invoke(*args: str):
    return CliRunner().invoke(main, [*BASE, *args])


def test_json_has_the_contract_fields():
    r = invoke("--policy", "pipeline", "--budget", "64MiB", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    for k in CONTRACT:
        assert k in d, k
    assert d["feasible"] is True and d["policy"] == "pipeline" and d["model"] == "mobilenetv2"
    assert d["budget_bytes"] == 64 * 2**20 and d["peak_memory_bytes"] <= d["budget_bytes"]
    assert d["latency_s"] > 0 and d["flash_bytes_read"] >= d["weight_bytes"] > 0


def test_trace_and_gantt_files(tmp_path):
    trace, gantt = tmp_path / "t.json", tmp_path / "g.png"
    r = invoke("--policy", "sequential", "--trace", str(trace), "--gantt", str(gantt))
    assert r.exit_code == 0, r.output
    events = json.loads(trace.read_text())["traceEvents"]
    assert any(e["ph"] == "X" for e in events) and any(e["ph"] == "C" for e in events)
    h, w = mpimg.imread(gantt).shape[:2]
    assert w > h > 200


def test_infeasible_budget_names_the_smallest_feasible_budget():
    r = invoke("--policy", "sequential", "--budget", "1MiB")
    assert r.exit_code != 0
    assert "smallest feasible" in r.output and "at least" in r.output and "MiB" in r.output
    assert "Traceback" not in r.output


@pytest.mark.parametrize("args, words", [
    (["--model", "resnet-5", "--policy", "pipeline"], ["resnet-5", "resnet50"]),
    (["--profile", "pixel-99", "--policy", "pipeline"], ["pixel-99", "valid profiles"]),
    (["--policy", "warp"], ["warp", "valid policies", "pipeline"]),
    (["--policy", "pipeline", "--budget", "12 parsecs"], ["12 parsecs", "valid units"]),
    (["--policy", "pipeline", "--dtype", "fp6"], ["fp6", "fp16", "q4_0", "awq-gN"]),
    (["--policy", "pipeline", "--dtype", "q4_0,head=q8_0"], ["head", "lm_head", "ffn"]),
])
def test_bad_input_exits_2_with_choices(args, words):
    r = invoke(*args)
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and not isinstance(r.exception, ValueError)
    for w in words:
        assert w in r.output


def test_output_folders_are_created(tmp_path):
    """--trace / --save-schedule / --gantt into folders that do not exist yet: created."""
    paths = [tmp_path / "a" / "t.json", tmp_path / "b" / "c" / "s.json", tmp_path / "d" / "g.svg"]
    r = invoke("--policy", "sequential", "--trace", str(paths[0]), "--save-schedule",
               str(paths[1]), "--gantt", str(paths[2]))
    assert r.exit_code == 0, r.output
    assert all(p.stat().st_size > 100 for p in paths)
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_streaming_options_and_an_infeasible_generation_print_cleanly():
    """The LLM summary lines (tokens, hit rate, KV spill) print, and a generation that cannot
    run at its budget exits 3 without token timings (it has none) or a traceback."""
    def run(*args: str):
        return CliRunner().invoke(main, ["run", "--workload", "gpt2-p16-d2", "--profile",
                                         "snapdragon-8-gen-3", *args])

    r = run("--policy", "flashmem", "--budget", "64MiB", "--option", "kv_spill=4",
            "--option", "sparsity=0.5")
    assert r.exit_code == 0, r.output
    for line in ("tokens         first token after", "hit rate       neuron bundles",
                 "KV spill       4 most recent tokens per layer"):
        assert line in r.output
    r = run("--policy", "preload", "--budget", "64MiB")
    assert r.exit_code == 3, r.output  # a traceback would exit 1
    assert "infeasible" in r.output and "tokens" not in r.output
