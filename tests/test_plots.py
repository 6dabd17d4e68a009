"""Plots: every kind writes a non-empty PNG/SVG; the Gantt chart of a run; bad inputs."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import pandas as pd
import pytest

from experiments.errors import ExperimentError
from experiments.plots import plot_gantt, plot_results
from experiments.runners import SerialRunner
from experiments.spec import parse_spec
from experiments.summary import pareto_front, summarise
from experiments.sweep import run_sweep
from sim import plan, simulate
from sim.trace import Trace

TOY = str(Path(__file__).parent / "data" / "toy.yaml")


def small_spec(budgets, policies) -> dict:
    """2 tiny models on the toy profile."""
    return {"models": [{"factory": "helpers:linear_chain", "name": f"chain{n}",
                        "args": {"n": n, "weight_elems": 5_000_000, "flops": 10**9,
                                 "name": f"c{n}"}} for n in (3, 5)],
            "profiles": [TOY], "policies": policies, "budgets": budgets}


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> pd.DataFrame:
    spec = parse_spec(small_spec(budgets={"auto": 4}, policies=[
        "preload", "sequential", "pipeline", {"name": "flashmem", "options": {"solver": "greedy"}}]))
    return run_sweep(spec, tmp_path_factory.mktemp("res"), SerialRunner(), progress=False).results


@pytest.mark.parametrize("kind", ["tradeoff", "pareto", "speedup", "planners"])
@pytest.mark.parametrize("ext", ["png", "svg"])
def test_each_kind_writes_a_file(results, tmp_path, kind, ext):
    path = plot_results(results, kind, tmp_path / f"{kind}.{ext}", title="t")
    assert path.stat().st_size > 2000
    if ext == "png":
        h, w = mpimg.imread(path).shape[:2]
        assert h >= 300 and w >= 400
    else:
        assert path.read_text().lstrip().startswith("<?xml")


def test_summary_knee_and_speedup(results):
    s = summarise(results)
    assert len(s) == 2 * 4
    pre = s[s["policy"] == "preload"]
    assert (pre["speedup"] == 1.0).all() and (pre["feasible_runs"] == 1).all()
    seq = s[s["policy"] == "sequential"].iloc[0]
    # sequential runs in one layer's weights: it reduces memory versus preload
    assert seq["memory_reduction"] > 1.5
    assert seq["knee_latency_s"] <= seq["best_latency_s"] * 1.1


def test_pareto_front_keeps_non_dominated():
    df = pd.DataFrame({"m": [1, 2, 3, 4, 2], "l": [9, 5, 6, 1, 7]})
    front = pareto_front(df, "m", "l")
    assert list(zip(front["m"], front["l"], strict=True)) == [(1, 9), (2, 5), (4, 1)]


def test_gantt_of_a_run(tmp_path, toy_profile, three_layers):
    res = simulate(plan("pipeline", three_layers, toy_profile, None), toy_profile)
    for ext in ("png", "svg"):
        path = plot_gantt(res.trace, tmp_path / f"g.{ext}", title="three layers")
        assert path.stat().st_size > 2000
    h, w = mpimg.imread(tmp_path / "g.png").shape[:2]
    assert w > h > 200
    assert plot_gantt(Trace(), tmp_path / "empty.png").stat().st_size > 1000


def test_bad_plot_requests(results, tmp_path):
    with pytest.raises(ExperimentError, match="image format"):
        plot_results(results, "tradeoff", tmp_path / "x.jpg")
    with pytest.raises(ExperimentError, match="valid kinds"):
        plot_results(results, "pie", tmp_path / "x.png")
    with pytest.raises(ExperimentError, match="preload"):
        plot_results(results[results["policy"] != "preload"], "speedup", tmp_path / "x.png")
    with pytest.raises(ExperimentError, match="no results"):
        plot_results(results.iloc[0:0], "tradeoff", tmp_path / "x.png")


def test_planners_plot_needs_its_columns(tmp_path):
    from experiments.plots import plot_planners

    with pytest.raises(ExperimentError, match="lower_bound_s"):
        plot_planners(pd.DataFrame({"model": ["m"], "policy": ["p"], "budget_bytes": [1],
                                    "latency_s": [1.0]}), tmp_path / "p.png")
