"""Sweeps end to end: CLI, Parquet store, resume after an interruption, identical results from
every runner, failing runs recorded."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

from experiments.cli import main
from experiments.errors import ExperimentError
from experiments.runners import AutoRunner, DaskRunner, PoolRunner, SerialRunner, make_runner
from experiments.runs import TIMING_COLUMNS
from experiments.spec import parse_spec
from experiments.store import ResultsStore
from experiments.sweep import run_sweep

TOY = str(Path(__file__).parent / "data" / "toy.yaml")


def small_spec(budgets=None, policies=None) -> dict:
    """2 tiny models x 1 toy profile x 3 policies x 3 budgets = 18 runs (a few ms each)."""
    return {
        "name": "small",
        "models": [{"factory": "helpers:linear_chain", "name": f"chain{n}",
                    "args": {"n": n, "weight_elems": 5_000_000, "flops": 10**9, "name": f"c{n}"}}
                   for n in (3, 5)],
        "profiles": [TOY],
        "policies": policies or ["preload", "sequential",
                                 {"name": "pipeline", "options": {"depth": 2}}],
        "budgets": budgets or ["25MB", "40MB", "unlimited"],
    }


def comparable(df: pd.DataFrame) -> pd.DataFrame:
    df = df.drop(columns=[c for c in TIMING_COLUMNS if c in df])
    return df.sort_values("key").reset_index(drop=True)


class Interrupt(Exception):
    pass


def test_sweep_cli_writes_parquet_plot_and_summary(tmp_path):
    spec = tmp_path / "small.yaml"
    spec.write_text(yaml.safe_dump(small_spec()))
    out = tmp_path / "res"
    r = CliRunner().invoke(main, ["sweep", str(spec), "--out", str(out), "--workers", "1",
                                  "--no-progress"])
    assert r.exit_code == 0, r.output
    table = pq.read_table(out / "results.parquet")
    assert table.num_rows == 18
    df = table.to_pandas()
    assert df["key"].is_unique
    for col in ("model", "profile", "policy", "dtype", "budget_bytes", "latency_s",
                "peak_memory_bytes", "flash_bytes_read", "feasible", "error", "lower_bound_s",
                "utilisation.gpu", "policy_options"):
        assert col in df
    assert set(df["model"]) == {"chain3", "chain5"}
    # preload of 3 x 10 MB cannot fit 25 MB: recorded as infeasible with its error
    bad = df[(df["policy"] == "preload") & (df["budget_bytes"] == 25_000_000)]
    assert len(bad) == 2 and not bad["feasible"].any() and bad["error"].notna().all()
    ok = df[df["feasible"]]
    assert (ok["latency_s"] >= ok["lower_bound_s"] * (1 - 1e-9)).all()
    img = mpimg.imread(out / "tradeoff.png")
    assert img.shape[0] > 200 and img.shape[1] > 200
    assert (out / "tradeoff.svg").stat().st_size > 1000
    assert "speedup" in r.output and "chain5" in r.output and "18 runs: 18 executed" in r.output
    # a second run finds everything stored
    r = CliRunner().invoke(main, ["sweep", str(spec), "--out", str(out), "--workers", "1",
                                  "--no-progress"])
    assert r.exit_code == 0 and "0 executed, 18 already stored" in r.output
    assert pq.read_table(out / "results.parquet").num_rows == 18
    for kind in ("tradeoff", "pareto", "speedup"):
        r = CliRunner().invoke(main, ["plot", str(out), "--kind", kind,
                                      "--out", str(tmp_path / f"{kind}.svg")])
        assert r.exit_code == 0, r.output
        assert (tmp_path / f"{kind}.svg").stat().st_size > 1000
    r = CliRunner().invoke(main, ["plot", str(out)])
    assert r.exit_code == 0 and (out / "tradeoff.png").exists()


def test_resume_after_interruption_runs_only_missing(tmp_path):
    spec = parse_spec(small_spec())
    seen: list[str] = []

    def stop_after_7(row):
        seen.append(row["key"])
        if len(seen) == 7:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_sweep(spec, tmp_path, SerialRunner(), progress=False, on_row=stop_after_7,
                  flush_every=3)
    store = ResultsStore(tmp_path)
    assert store.done_keys() == set(seen)  # rows flushed on the way out, none lost
    assert not store.results_path.exists()
    # debris of a hard kill: a half-written temp file is ignored
    (tmp_path / "runs" / ".part-000009.parquet.123.tmp").write_bytes(b"garbage")
    second: list[str] = []
    out = run_sweep(spec, tmp_path, SerialRunner(), progress=False,
                    on_row=lambda row: second.append(row["key"]))
    assert out.executed == 11 and out.skipped == 7 and out.total == 18
    assert set(second).isdisjoint(seen)
    df = pd.read_parquet(tmp_path / "results.parquet")
    assert len(df) == 18 and df["key"].is_unique
    assert not list((tmp_path / "runs").glob("part-*.parquet"))  # consolidated
    # the resumed table equals one written in a single go
    fresh = run_sweep(spec, tmp_path / "fresh", SerialRunner(), progress=False).results
    pd.testing.assert_frame_equal(comparable(df), comparable(fresh))


def test_same_results_serial_pool_and_dask(tmp_path):
    spec = parse_spec(small_spec(budgets={"auto": 3}))
    serial = run_sweep(spec, tmp_path / "serial", SerialRunner(), progress=False).results
    assert len(serial) == 2 * 3 * 3
    pool = PoolRunner(2)
    try:
        pooled = run_sweep(spec, tmp_path / "pool", pool, progress=False).results
    finally:
        pool.close()
    pd.testing.assert_frame_equal(comparable(serial), comparable(pooled))
    distributed = pytest.importorskip("distributed", reason="dask[distributed] not installed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        dask = run_sweep(spec, tmp_path / "dask", scheduler=cluster.scheduler_address,
                         progress=False).results
    pd.testing.assert_frame_equal(comparable(serial), comparable(dask))


def test_failing_runs_are_recorded_and_sweep_goes_on(tmp_path):
    spec = parse_spec(small_spec(budgets=["40MB"], policies=[
        "sequential", {"name": "pipeline", "label": "broken", "options": {"depth": 0}}]))
    out = run_sweep(spec, tmp_path, SerialRunner(), progress=False)
    df = out.results
    assert len(df) == 4 and out.failed == 2 and out.errors == 2
    assert set(df["status"]) == {"ok", "error"}
    broken = df[df["policy"] == "broken"]
    assert broken["error"].str.contains("depth").all() and not broken["feasible"].any()
    assert df[df["policy"] == "sequential"]["feasible"].all()


def test_make_runner_choices():
    assert isinstance(make_runner(1), SerialRunner)
    assert isinstance(make_runner(None), AutoRunner)
    assert isinstance(make_runner(2), PoolRunner)
    assert isinstance(make_runner(None, "tcp://127.0.0.1:1"), DaskRunner)
    with pytest.raises(ExperimentError, match="--workers and --scheduler"):
        make_runner(3, "tcp://127.0.0.1:1")
    r = CliRunner().invoke(main, ["sweep", "default", "--workers", "0", "--no-progress",
                                  "--out", "/nonexistent/never"])
    assert r.exit_code == 2 and "--workers must be at least 1" in r.output


def test_bad_spec_and_results_dir_through_cli(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text(yaml.safe_dump({**small_spec(), "policies": ["preloud"]}))
    r = CliRunner().invoke(main, ["sweep", str(spec), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2
    assert "unknown policy 'preloud'" in r.output and "valid policies" in r.output
    assert "Traceback" not in r.output
    r = CliRunner().invoke(main, ["plot", str(tmp_path)])
    assert r.exit_code == 2 and "no results" in r.output
    r = CliRunner().invoke(main, ["plot", str(tmp_path), "--kind", "pie"])
    assert r.exit_code == 2 and "tradeoff" in r.output


def test_missing_dask_gives_a_clear_error(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails as if not installed
    spec = parse_spec(small_spec(budgets=["40MB"]))
    with pytest.raises(ExperimentError, match=r"weightstream\[dask\]"):
        run_sweep(spec, tmp_path, scheduler="tcp://127.0.0.1:1", progress=False)


def test_auto_runner_stays_serial_for_small_work_and_pools_large_work():
    r = AutoRunner(2, startup_s=2.0)
    # a pool of 2 saves half the serial time; it must beat 2 x 2 s / 2 of start-up
    assert not r.pool_pays(3.0) and r.pool_pays(5.0)
    assert not AutoRunner(1).pool_pays(1e6)  # one core: never
    out = list(r.map_unordered(abs, [-1, -2, -3]))
    assert out == [(-1, 1), (-2, 2), (-3, 3)] and r._pool is None and r.name == "auto"


def test_auto_runner_moves_to_a_pool_once_the_items_turn_out_costly():
    """Cheap first items (infeasible budgets decided analytically) do not keep a costly sweep
    serial: the decision is made again after every item, from the mean so far."""
    import time

    r = AutoRunner(2, startup_s=0.01)
    items = [0.0, 0.0, 0.3, 0.3, 0.3, 0.3]
    try:
        out = list(r.map_unordered(time.sleep, items))
    finally:
        r.close()
    assert sorted(i for i, _ in out) == sorted(items) and r.name == "auto: 2 processes"


@pytest.mark.parametrize("scope", ["total", "weights"])
def test_sweep_shares_work_and_decides_tiny_budgets_analytically(tmp_path, scope):
    """Budgets below the workload's working set are infeasible without planning; every other
    row equals planning and simulating that run on its own (pipeline depth=auto included: the
    depth it picks by simulation, each candidate depth planned once per chunk)."""
    from experiments.resolve import load_profile_ref, load_workload
    from experiments.runs import expand
    from sim import plan, simulate

    spec = parse_spec({**small_spec(budgets=["1MB", "25MB", "200MB"],
                                    policies=["sequential", {"name": "pipeline",
                                                             "options": {"depth": 2}},
                                              "pipeline", "flashmem"]),
                       "budget_scope": scope})
    rows = {r["key"]: r for r in run_sweep(spec, tmp_path, SerialRunner(),
                                           progress=False).results.to_dict("records")}
    for run in expand(spec):
        row = rows[run.key]
        if run.budget_bytes == 10**6 and run.policy.name != "flashmem":
            # (flashmem can split the 10 MB layers into tiles: it plans even this budget)
            assert row["executor"] == "analytic" and "smallest working set" in row["error"]
            assert not row["feasible"]
            continue
        wl, prof = load_workload(run.workload, run.dtype), load_profile_ref(run.profile)
        s = plan(run.policy.name, wl, prof, run.budget_bytes, None, scope,
                 **dict(run.policy.options))
        m = simulate(s, prof, budget=run.budget_bytes, record_trace=False).metrics
        assert row["feasible"] == m.feasible, run
        assert row["latency_s"] == m.latency_s and row["peak_memory_bytes"] == \
            m.peak_memory_bytes, run
        if "depth" in m.meta:
            assert row["meta.depth"] == m.meta["depth"], run
        if "auto_candidates" in m.meta:
            assert row["meta.auto_candidates"] == m.meta["auto_candidates"], run
