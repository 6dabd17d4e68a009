"""Same inputs, same bytes: `run --json`, saved schedules and static plots are reproducible
(wall-clock planning times only with --timings); the tradeoff plot keeps dtypes apart."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from experiments.cli import main
from experiments.plots import plot_tradeoff, tradeoff_figure

RUN = ["run", "--model", "mobilenetv2", "--profile", "snapdragon-8-gen-3", "--policy",
       "flashmem", "--budget", "8MiB", "--option", "solver=greedy"]


def test_run_json_and_saved_schedule_are_byte_identical(tmp_path):
    outs = []
    for i in range(2):
        r = CliRunner().invoke(main, [*RUN, "--json", "--save-schedule", str(tmp_path / f"{i}.json")])
        assert r.exit_code == 0, r.output
        outs.append(r.output)
    assert outs[0] == outs[1]
    assert (tmp_path / "0.json").read_bytes() == (tmp_path / "1.json").read_bytes()
    d = json.loads(outs[0])
    assert d["meta"]["planner"] == "greedy" and "plan_time_s" not in d["meta"]
    assert "timing" not in d
    assert "plan_time_s" not in json.loads((tmp_path / "0.json").read_text())["meta"]
    # --timings: the wall-clock numbers, in their own section
    r = CliRunner().invoke(main, [*RUN, "--json", "--timings", "--save-schedule",
                                  str(tmp_path / "t.json")])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["timing"]["plan_time_s"] > 0 and d["timing"]["wall_s"] >= d["timing"]["plan_time_s"]
    assert "plan_time_s" not in d["meta"]
    assert json.loads((tmp_path / "t.json").read_text())["meta"]["plan_time_s"] > 0
    # the schedule saved without timings replays to the same metrics
    r = CliRunner().invoke(main, ["run", "--schedule", str(tmp_path / "0.json"), "--profile",
                                  "snapdragon-8-gen-3", "--json"])
    assert r.exit_code == 0, r.output
    again = json.loads(r.output)
    assert again["latency_s"] == d["latency_s"] and again["policy"] == "flashmem"


def results(dtypes: tuple[str, ...] = ("fp16",)) -> pd.DataFrame:
    """Two policies x three budgets per dtype; int8 moves half the bytes, so its latencies
    and lower bounds are lower than fp16's at every budget."""
    rows = []
    for k, dt in enumerate(dtypes):
        scale = 1.0 / (1 + k)
        for pol in ("sequential", "pipeline"):
            for i, mib in enumerate((8, 16, 32)):
                rows.append({"key": f"{dt}{pol}{mib}", "model": "m", "profile": "p", "dtype": dt,
                             "policy": pol, "policy_name": pol, "budget_bytes": mib * 2**20,
                             "feasible": True, "status": "ok", "error": None,
                             "latency_s": scale * (0.05 - 0.01 * i) * (1.2 if pol == "sequential"
                                                                       else 1.0),
                             "peak_memory_bytes": mib * 2**20,
                             "lower_bound_s": scale * (0.03 - 0.005 * i)})
    df = pd.DataFrame(rows)
    df["budget_bytes"] = df["budget_bytes"].astype("Int64")
    return df


@pytest.mark.parametrize("ext", ["svg", "pdf", "png"])
def test_static_plots_are_reproducible(tmp_path, ext):
    a = plot_tradeoff(results(), tmp_path / f"a.{ext}", title="t").read_bytes()
    b = plot_tradeoff(results(), tmp_path / f"b.{ext}", title="t").read_bytes()
    assert a == b and len(a) > 1000


def test_tradeoff_plot_draws_each_dtype_with_its_own_style_and_lower_bound():
    fig = tradeoff_figure(results(("fp16", "int8", "int4")))
    ax = fig.axes[0]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    styles = {dt: lines[f"sequential ({dt})"].get_linestyle() for dt in ("fp16", "int8", "int4")}
    assert len(set(styles.values())) == 3  # int8 and int4 no longer drawn alike
    for dt in ("fp16", "int8", "int4"):
        lb = lines[f"lower bound ({dt})"]
        assert lb.get_linestyle() == styles[dt]
        x, y = lb.get_xdata(), lb.get_ydata()
        assert list(x) == sorted(x) and len(x) == 3
        # one dtype's bound only: it falls with the budget instead of zig-zagging across dtypes
        assert all(b <= a for a, b in zip(y, y[1:], strict=False))
        # and it is at or below every latency of that dtype at the same budget
        for pol in ("sequential", "pipeline"):
            line = lines[f"{pol} ({dt})"]
            assert all(l_ >= b_ for l_, b_ in zip(line.get_ydata(), y, strict=True))
