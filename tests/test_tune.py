"""weightstream tune: search vs an equal-evaluation grid on a space with a known optimum,
resume after SIGKILL with no lost or duplicated trials, workers sharing one study, results in
the Parquet store, and bad input refused before any trial runs."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from experiments.cli import main
from experiments.errors import ExperimentError
from experiments.store import load_results
from experiments.tune import config_of, evaluate, grid_points, prepare_studies, run_tune
from experiments.tune_spec import parse_tune

optuna = pytest.importorskip("optuna")

GROUPS = ("embeddings", "attention", "ffn", "lm_head")
FORMATS = ["fp16", "q8_0", "q6_k", "q4_0"]


def mixed_spec(**over):
    """A decode workload, per-layer-group formats (4^4 = 256 configurations) and an accuracy
    budget of +0.03 ppl: q4_0 (+0.47) is out, and since decode streams weights, the fastest
    feasible configuration is every group in the smallest format within budget (q6_k, +0.022;
    q8_0 and fp16 are larger). That optimum is known without searching."""
    data = {"name": "mixed", "workload": "gpt2-p4-d1", "profile": "snapdragon-8-gen-3",
            "policy": "flashmem", "dtype": "q6_k", "trials": 24, "seed": 1,
            "objectives": ["latency_s"],
            "constraints": {"accuracy": {"max_ppl_delta": 0.03}},
            "space": {"formats": {g: list(FORMATS) for g in GROUPS}}}
    data.update(over)
    return data


def test_search_finds_at_least_the_grid_best_and_the_known_optimum(tmp_path):
    spec = parse_tune(mixed_spec())
    out = run_tune(spec, tmp_path)
    optimum, _, cons = evaluate(spec, config_of(spec, {f"formats.{g}": "q6_k" for g in GROUPS}))
    assert all(c <= 0 for c in cons)
    best_search, best_grid = out.best_value("search"), out.best_value("grid")
    assert best_search is not None and best_grid is not None
    assert best_search <= best_grid
    assert best_search <= 1.01 * optimum["latency_s"]
    # nothing evaluated beats the known optimum: it is the optimum
    ok = out.results[out.results["constraints_met"]]
    assert ok["latency_s"].min() >= optimum["latency_s"] * (1 - 1e-12)
    assert out.results[~out.results["constraints_met"]]["dtype"].str.contains("q4_0").all()
    # equal evaluations, every trial stored once in the Parquet store
    assert out.states == {"search": {"complete": 24}, "grid": {"complete": 24}}
    assert out.grid_points == 256  # more points than evaluations: the grid visits 24 of them
    stored = load_results(tmp_path)
    assert len(stored) == 48 and stored["key"].is_unique
    assert stored.groupby("search")["trial"].nunique().to_dict() == {"grid": 24, "search": 24}
    # a trial's row is the run a sweep would store for the same configuration
    r = stored.iloc[0]
    assert r["workload_ref"] == "gpt2-p4-d1" and r["policy_name"] == "flashmem"
    assert r["ppl_delta"] is not None or not r["constraints_met"]
    curves = out.curves
    assert set(curves["search"]) == {"search", "grid"}
    assert curves.groupby("search")["evaluation"].max().to_dict() == {"search": 24, "grid": 24}


def test_grid_spends_the_same_number_of_evaluations():
    data = mixed_spec(space={"policy": ["pipeline", "flashmem"], "dtype": ["q8_0", "q4_0"],
                             "budget": {"low": "16MiB", "high": "256MiB", "log": True}},
                      dtype=None, policy=None, constraints=None, trials=13)
    data = {k: v for k, v in data.items() if v is not None}
    spec = parse_tune(data)
    pts = grid_points(spec)
    # 2 policies x 2 formats x 3 budget levels = 12 <= 13 < 16 (4 levels)
    assert len(pts) == 12
    budgets = sorted({p["budget"] for p in pts})
    assert budgets[0] == 16 * 2**20 and budgets[-1] == 256 * 2**20 and len(budgets) == 3
    assert len({json.dumps(p, sort_keys=True) for p in pts}) == 12
    spec = parse_tune({**data, "space": {**data["space"], "options": {
        "pipeline": {"depth": [1, 2, 4]}}}, "trials": 40})
    pts = grid_points(spec)
    assert all(("options.pipeline.depth" in p) == (p["policy"] == "pipeline") for p in pts)


RESUME = """name: resume
workload: gpt2-p4-d1
profile: snapdragon-8-gen-3
policy: flashmem
trials: 8
stale_after: 2s
objectives: [latency_s]
space:
  dtype: [fp16, q8_0, q6_k, q4_0, q4_k, int8]
  budget: {low: 24MiB, high: 160MiB, log: true}
"""


# a trial retried after its worker died carries the constraints the dead worker set: they are
# kept, not set twice (Optuna warns and ignores a second value)
@pytest.mark.filterwarnings("error:The constraint value is ignored")
def test_resume_after_sigkill_loses_and_duplicates_nothing(tmp_path):
    spec_path = tmp_path / "resume.yaml"
    spec_path.write_text(RESUME)
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.Popen([sys.executable, "-m", "experiments.cli", "tune", str(spec_path),
                             "--out", str(out), "--no-report", "--no-plots"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 120
        complete = 0
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
            # the database read directly (0.4 ms, against ~0.1 s for Optuna's load_study, whose
            # polls could let the whole run, ~2.5 s of trials, finish before the kill)
            try:
                con = sqlite3.connect(f"file:{out / 'study.db'}?mode=ro", uri=True, timeout=1)
                try:
                    complete = con.execute(
                        "SELECT COUNT(*) FROM trials t JOIN studies s ON t.study_id = s.study_id"
                        " WHERE s.study_name = 'resume' AND t.state = 'COMPLETE'").fetchone()[0]
                finally:
                    con.close()
            except sqlite3.Error:  # no database or no tables yet, or a write in progress
                continue
            if complete >= 3:
                break
        assert proc.poll() is None, "the tune finished before it could be killed"
        assert complete >= 3
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (out / "results.parquet").exists()  # killed before its export
    # the killed trial's heartbeat goes stale: older than stale_after (2 s) as SQLite's now()
    # sees it, to the whole second, so up to 1 s more
    time.sleep(3.5)
    spec = parse_tune(yaml.safe_load(RESUME), base=tmp_path)
    res = run_tune(spec, out)
    studies = prepare_studies(spec, res.storage)
    # the grid: 6 formats x 1 budget level (2 levels would be 12 > 8 evaluations)
    assert res.grid_points == 6
    complete = optuna.trial.TrialState.COMPLETE
    for search, target in (("search", 8), ("grid", 6)):
        trials = studies[search].get_trials()
        done = [t for t in trials if t.state == complete]
        assert len(done) == target, search
        assert {t.state for t in trials} <= {complete, optuna.trial.TrialState.FAIL}
        for failed in (t for t in trials if t.state == optuna.trial.TrialState.FAIL):
            retry = [t for t in done if t.system_attrs.get("failed_trial") == failed.number]
            # re-run with what it had drawn when it was killed: not lost, not run twice; a
            # trial killed before drawing anything may simply be dropped
            assert len(retry) == 1 or (not failed.params and not retry)
            if retry:
                assert failed.params.items() <= retry[0].params.items()
    done = [t for t in studies["search"].get_trials() if t.state == complete]
    stored = load_results(out)
    search = stored[stored["search"] == "search"]
    assert len(search) == 8 and search["trial"].is_unique and stored["key"].is_unique
    assert set(search["trial"]) == {t.number for t in done}
    # a second resume adds nothing and runs nothing
    again = run_tune(spec, out)
    assert again.exported == 0 and again.executed == {"search": 0, "grid": 0}
    assert len(load_results(out)) == 8 + 6


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_a_dead_trial_without_a_heartbeat_is_failed_and_its_draw_re_queued(tmp_path):
    """A worker killed after drawing parameters but before its first heartbeat leaves a RUNNING
    trial Optuna's stale check cannot see; the resume fails it and re-queues its draw once."""
    import datetime as dt

    import optuna

    from experiments.tune import fail_unstarted, open_storage, storage_url

    spec = parse_tune(yaml.safe_load(RESUME), base=tmp_path)
    url = storage_url(tmp_path / "out", None)
    study = optuna.create_study(study_name="dead", storage=open_storage(spec, url))
    drew = study.ask()
    drew.suggest_categorical("dtype", ["fp16", "q8_0"])
    fresh = study.ask()  # started now: a live worker may be about to beat
    empty = study.ask()
    old = dt.datetime.now() - dt.timedelta(seconds=spec.stale_after + 1)
    backend = study._storage
    backend = getattr(backend, "_backend", backend)
    from optuna.storages._rdb import models
    with backend.scoped_session() as session:
        for t in (drew, empty):
            session.get(models.TrialModel, t._trial_id).datetime_start = old
        session.commit()
    study = optuna.load_study(study_name="dead", storage=open_storage(spec, url))
    assert fail_unstarted(spec, study) == 2
    states = {t.number: t.state for t in study.get_trials()}
    assert states[drew.number] == states[empty.number] == optuna.trial.TrialState.FAIL
    assert states[fresh.number] == optuna.trial.TrialState.RUNNING
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert len(waiting) == 1 and waiting[0].system_attrs["failed_trial"] == drew.number
    assert fail_unstarted(spec, study) == 0  # nothing twice


def test_dask_workers_share_one_study(tmp_path):
    distributed = pytest.importorskip("distributed")
    spec = parse_tune(mixed_spec(trials=6, grid=False, name="shared"))
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        out = run_tune(spec, tmp_path, workers=2, scheduler=cluster.scheduler_address)
    done = out.states["search"]["complete"]
    assert 6 <= done <= 7  # a second worker may finish the trial it was running
    assert out.executed["search"] == done
    stored = load_results(tmp_path)
    assert len(stored) == done and stored["trial"].is_unique


@pytest.mark.parametrize("change, words", [
    ({"space": {"polcy": ["pipeline"]}}, ["unknown key 'polcy'", "did you mean 'policy'"]),
    ({"space": {"options": {"flashmem": {"depth": [1, 2]}}}}, ["no option 'depth'", "lookahead"]),
    ({"space": {"set": {"storage.speed": ["1GB/s", "2GB/s"]}}}, ["storage.speed",
                                                               "storage.read_bandwidth"]),
    ({"space": {"formats": {"head": ["q8_0", "q4_0"]}}}, ["unknown layer group 'head'",
                                                          "lm_head"]),
    ({"space": {}}, ["search space is empty"]),
    ({"space": {"formats": {"ffn": []}}}, ["search space is empty"]),
    ({"space": {"formats": {"ffn": ["q8_0"]}}}, ["nothing to tune"]),
    ({"space": {"budget": {"low": "1GiB", "high": "64MiB"}}}, ["range of 'budget' is empty"]),
    ({"constraints": {"latency_s": {"min": "50ms", "max": "10ms"}}}, ["contradictory",
                                                                       "latency_s"]),
    ({"constraints": {"accuracy": {"max_ppl_delta": 0.001}}}, ["contradictory",
                                                               "max_ppl_delta"]),
    ({"space": {"formats": {"ffn": ["q8_0", "int4"]}}}, ["sourced quality figure", "int4"]),
    ({"objectives": ["latency"]}, ["unknown objective metric 'latency'", "latency_s"]),
    ({"objectives": ["energy_j"], "profile": "dimensity-9300"}, ["energy", "dimensity-9300",
                                                                  "snapdragon-8-gen-3"]),
    ({"sampler": "cmaes"}, ["unknown sampler", "tpe"]),
    ({"space": {"runtime": ["mnnn", "ideal"]}}, ["unknown runtime 'mnnn'", "'mnn'", "ideal"]),
    ({"workload": "gpt2-p4-q1"}, ["gpt2-p4-q1", "LLM-pP-dN"]),
    ({"trials": 0}, ["'trials'"]),
])
def test_bad_input_is_refused_before_any_trial(tmp_path, change, words):
    data = mixed_spec(**change)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    r = CliRunner().invoke(main, ["tune", str(path), "--out", str(tmp_path / "out")])
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and not isinstance(r.exception, ValueError)
    for w in words:
        assert w in r.output, (w, r.output)
    assert not (tmp_path / "out").exists()  # no storage, no study, no trial
    with pytest.raises(ExperimentError):
        parse_tune(data)


def test_shipped_specs_parse_and_a_stored_study_from_another_spec_is_refused(tmp_path):
    from experiments.tune_spec import builtin_tunes, load_tune

    assert len(builtin_tunes()) >= 2
    for name in builtin_tunes():
        assert load_tune(name).name == name
    spec = parse_tune(mixed_spec(trials=1, grid=False))
    run_tune(spec, tmp_path)
    other = parse_tune(mixed_spec(trials=1, grid=False,
                                  constraints={"accuracy": {"max_ppl_delta": 0.5}}))
    with pytest.raises(ExperimentError, match="different tune spec"):
        run_tune(other, tmp_path)
    assert len(load_results(tmp_path)) == 1


def test_multi_objective_pareto_front_and_cli(tmp_path):
    data = mixed_spec(trials=8, objectives=["latency_s", "ppl_delta"], constraints=None,
                      space={"dtype": ["fp16", "q8_0", "q6_k", "q4_0", "q4_k"],
                             "policy": ["preload", "flashmem"]}, dtype=None, policy=None)
    data = {k: v for k, v in data.items() if v is not None}
    path = tmp_path / "multi.yaml"
    path.write_text(yaml.safe_dump(data))
    r = CliRunner().invoke(main, ["tune", str(path), "--out", str(tmp_path / "out"),
                                  "--no-report"])
    assert r.exit_code == 0, r.output
    assert "Pareto front" in r.output and "equal evaluations (8 each" in r.output
    summary = json.loads((tmp_path / "out" / "tune-summary.json").read_text())
    front = pd.DataFrame(summary["pareto"])
    assert len(front) >= 2
    # no point of the front is dominated by any stored feasible trial
    rows = load_results(tmp_path / "out")
    ok = rows[rows["constraints_met"]]
    front = front[["search", "trial"]].merge(rows, on=["search", "trial"])
    for _, f in front.iterrows():
        better = ok[(ok["latency_s"] <= f["latency_s"]) & (ok["ppl_delta"] <= f["ppl_delta"])
                    & ((ok["latency_s"] < f["latency_s"]) | (ok["ppl_delta"] < f["ppl_delta"]))]
        assert better.empty
    assert (tmp_path / "out" / "convergence.png").exists()


@pytest.mark.parametrize("sampler", ["random", "nsga2"])
def test_other_samplers_run_multi_objective(tmp_path, sampler):
    spec = parse_tune(mixed_spec(trials=4, grid=False, sampler=sampler,
                                 objectives=["latency_s", "peak_memory_bytes"]))
    out = run_tune(spec, tmp_path)
    assert out.states == {"search": {"complete": 4}} and not out.pareto.empty


def test_profile_what_ifs_runtimes_and_policy_options_reach_the_run(tmp_path):
    spec = parse_tune(mixed_spec(
        space={"set": {"storage.read_bandwidth": {"low": "1GB/s", "high": "8GB/s", "log": True}},
               "options": {"flashmem": {"lookahead": [2, 8]}}}, constraints=None))
    cfg = config_of(spec, {"set.storage.read_bandwidth": 2.5e9, "options.flashmem.lookahead": 2})
    assert cfg["set"] == ["storage.read_bandwidth=2.5e+09 B/s"]
    assert cfg["options"] == {"lookahead": 2}
    row, values, _ = evaluate(spec, cfg)
    assert row["status"] == "ok" and "2.5e+09 B/s" in row["profile"]
    fast, _, _ = evaluate(spec, config_of(spec, {"set.storage.read_bandwidth": 8e9,
                                                 "options.flashmem.lookahead": 2}))
    assert fast["latency_s"] < row["latency_s"]  # a faster flash is a what-if that helps
    spec = parse_tune(mixed_spec(space={"runtime": ["ideal", "llama.cpp-opencl"]},
                                 constraints=None))
    rows = {rt: evaluate(spec, config_of(spec, {"runtime": rt}))[0]
            for rt in ("ideal", "llama.cpp-opencl")}
    assert rows["llama.cpp-opencl"]["runtime"] == "llama.cpp-opencl"
    assert rows["llama.cpp-opencl"]["policy"] == "flashmem@llama.cpp-opencl"
    assert rows["llama.cpp-opencl"]["init_s"] > rows["ideal"]["init_s"]  # its program builds
