"""`weightstream tune`: design-space search on Optuna, with an equal-evaluation grid baseline.

Each trial picks a configuration from the spec's space, plans and simulates it with the same
`execute_run` a sweep uses, and returns the objective values (inf for a run that is infeasible
or fails) with its constraint values (<= 0 means met) for the sampler.

Two studies live in one Optuna RDB storage (SQLite in the results folder by default, any
SQLAlchemy URL for a shared database): `NAME` (the sampler: TPE, random or NSGA-II) and
`NAME:grid` (a grid with the largest number of points that fits the same trial budget, visited
by Optuna's GridSampler). Both run until they hold `trials` complete trials, so a killed tune
resumes where it stopped; a trial whose worker died (no heartbeat for `stale_after`) is failed
and re-queued with the same parameters, so nothing is lost and nothing counted twice. Several
workers (processes, or Dask workers that reach the same database) share the studies.

Results: every complete trial's row lands in the Parquet store (keyed by study and trial, so an
export after a resume adds only new rows), plus the best trials, the Pareto front and the
best-found-versus-evaluations comparison of search and grid.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from experiments.errors import ExperimentError
from experiments.runners import SerialRunner, make_runner
from experiments.runs import RunSpec, execute_run
from experiments.spec import PolicyRef, ProfileRef, digest_of
from experiments.store import ResultsStore
from experiments.tune_results import TuneOutcome, best, convergence, export, pareto, trial_rows
from experiments.tune_spec import Axis, TuneSpec, override_text

GRID_SUFFIX = ":grid"
STUDY_DB = "study.db"
SEARCHES = ("search", "grid")


def _optuna():
    try:
        import optuna
    except ImportError:
        raise ExperimentError("weightstream tune needs Optuna: pip install "
                              "'weightstream[tune]' (optuna, sqlalchemy)") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # heartbeats and stale-trial retries are marked experimental; their use here is deliberate
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


# --- configurations ------------------------------------------------------------------------------
def config_of(spec: TuneSpec, params: dict[str, Any]) -> dict[str, Any]:
    """The full configuration of a trial: the spec's fixed values overlaid with `params`."""
    from workloads.precision import parse_precision

    cfg: dict[str, Any] = {
        "profile": params.get("profile", spec.fixed.get("profile")),
        "policy": params.get("policy", spec.fixed.get("policy")),
        "budget": params.get("budget", spec.fixed.get("budget")),
        "runtime": params.get("runtime", spec.fixed.get("runtime")),
    }
    base = params.get("dtype", spec.fixed.get("dtype"))
    groups = {k.split(".", 1)[1]: v for k, v in params.items() if k.startswith("formats.")}
    if groups:
        prec = parse_precision(base)
        cfg["dtype"] = parse_precision({"base": prec.base, **dict(prec.groups), **groups}).name
    else:
        cfg["dtype"] = base
    options = dict(spec.fixed.get("options", {}).get(cfg["policy"], {}) or {})
    for k, v in params.items():
        if k.startswith(f"options.{cfg['policy']}."):
            options[k.rsplit(".", 1)[1]] = v
    cfg["options"] = dict(sorted(options.items()))
    sets = []
    for k, v in sorted(params.items()):
        if k.startswith("set."):
            axis = spec.axis(k)
            text = override_text(axis.unit, v) if axis is not None and axis.unit else v
            sets.append(f"{k[4:]}={text}")
    cfg["set"] = sets
    return cfg


def run_spec(spec: TuneSpec, cfg: dict[str, Any]) -> RunSpec:
    """The sweep RunSpec of a configuration: trials run exactly what a sweep would run."""
    short = Path(cfg["profile"]).stem
    label = f"{short}+{','.join(cfg['set'])}" if cfg["set"] else short  # as sweeps label it
    prof = ProfileRef(cfg["profile"], label, tuple(cfg["set"]))
    opts = tuple(sorted(cfg["options"].items()))
    pol = PolicyRef(cfg["policy"], cfg["policy"], opts)
    rt_name = str(cfg["runtime"])
    rt_label = Path(rt_name).stem if rt_name.endswith((".yaml", ".yml")) else rt_name
    rt = ProfileRef(rt_name, rt_label)
    series = pol.label if rt_label == "ideal" else f"{pol.label}@{rt_label}"
    return RunSpec(spec.workload, prof, pol, cfg["dtype"], cfg["budget"], False, rt, series)


def _app_memory(profile: str, sets: list[str]) -> int:
    """What the OS lets one app hold on this profile (`HardwareProfile.memory_limit`)."""
    from hwprofiles import load_profile

    return load_profile(profile, sets).memory_limit()


def evaluate(spec: TuneSpec, cfg: dict[str, Any],
             workloads: dict[Any, Any] | None = None) -> tuple[dict[str, Any], list[float],
                                                              list[float]]:
    """Simulate one configuration: (results row, objective values, constraint values);
    `workloads` caches built workloads across calls."""
    row = execute_run(run_spec(spec, cfg), workloads)
    _quality(row, cfg["dtype"])
    ok = row.get("status") == "ok"
    values = []
    for o in spec.objectives:
        v = row.get(o.metric)
        bad = not ok or v is None or (isinstance(v, float) and math.isnan(v))
        sign = 1.0 if o.direction == "minimize" else -1.0
        values.append(sign * math.inf if bad else float(v))
    cons = [0.0 if ok else 1.0]
    c = spec.constraints
    if c.memory is not None:
        limit = _app_memory(cfg["profile"], cfg["set"]) if c.memory == "app_memory" else c.memory
        peak = row.get("peak_memory_bytes")
        cons.append((peak - limit) / limit if ok and peak is not None else 1.0)
        row["tune_memory_limit_bytes"] = limit
    for b in c.bounds:
        v = row.get(b.metric)
        if not ok or v is None:
            cons.append(1.0)
            continue
        v = float(v)
        viol = 0.0
        if b.high is not None:
            viol = max(viol, (v - b.high) / max(abs(b.high), 1e-300))
        if b.low is not None:
            viol = max(viol, (b.low - v) / max(abs(b.low), 1e-300))
        cons.append(viol)
    if c.max_ppl_delta is not None:
        d = row.get("ppl_delta")
        cons.append(1.0 if d is None else d - c.max_ppl_delta)
    row["constraints_met"] = all(x <= 0 for x in cons)
    return row, values, cons


def _quality(row: dict[str, Any], precision: str) -> None:
    from workloads.model import WorkloadError
    from workloads.quality import precision_quality

    try:
        q = precision_quality(precision)
    except WorkloadError:
        row["ppl_delta"], row["ppl_note"] = None, None
        return
    row["ppl_delta"], row["ppl_note"] = q.ppl_delta, q.note


# --- samplers and the grid -------------------------------------------------------------------------
def suggest(trial: Any, spec: TuneSpec) -> dict[str, Any]:
    """Sample every axis (policy options only for the policy chosen in this trial)."""
    params: dict[str, Any] = {}
    policy = spec.fixed.get("policy")
    for a in spec.axes:
        if a.policy is not None and a.policy != policy:
            continue
        if a.kind == "categorical":
            v = trial.suggest_categorical(a.name, list(a.choices))
        elif a.kind == "int":
            v = trial.suggest_int(a.name, int(a.low), int(a.high), log=a.log)
        else:
            v = trial.suggest_float(a.name, a.low, a.high, log=a.log)
        params[a.name] = v
        if a.name == "policy":
            policy = v
    return params


def _levels(a: Axis, n: int) -> list[Any]:
    """`n` values of an axis for the grid (all choices of a categorical axis)."""
    if a.kind == "categorical":
        return list(a.choices)
    if n == 1:
        mid = math.sqrt(a.low * a.high) if a.log else (a.low + a.high) / 2
        vals = [mid]
    elif a.log:
        vals = list(np.geomspace(a.low, a.high, n))
    else:
        vals = list(np.linspace(a.low, a.high, n))
    if a.kind == "int":
        return list(dict.fromkeys(int(round(v)) for v in vals))
    return [float(v) for v in vals]


def _points(spec: TuneSpec, levels: dict[str, int]) -> list[dict[str, Any]]:
    """Every grid point for `levels` numeric levels per axis; policy options cross only with
    their own policy, so no two points run the same configuration."""
    common = [a for a in spec.axes if a.policy is None]
    policies = next((list(a.choices) for a in common if a.name == "policy"),
                    [spec.fixed.get("policy")])
    out: list[dict[str, Any]] = []
    for pol in policies:
        axes = [a for a in common if a.name != "policy"]
        axes += [a for a in spec.axes if a.policy == pol]
        values = [_levels(a, levels.get(a.name, 1)) for a in axes]
        for combo in itertools.product(*values):
            p = dict(zip((a.name for a in axes), combo, strict=True))
            if spec.axis("policy") is not None:
                p = {"policy": pol, **p}
            out.append(p)
    return out


def grid_points(spec: TuneSpec) -> list[dict[str, Any]]:
    """The largest grid that fits `spec.trials` evaluations: every categorical value, and as
    many levels per numeric axis (raised one axis at a time, in spec order) as still fit. If
    the categorical axes alone exceed the budget, every numeric axis gets its midpoint and the
    grid sampler visits `trials` of the points in its (seeded) random order."""
    numeric = [a.name for a in spec.axes if a.kind != "categorical"]
    levels = dict.fromkeys(numeric, 1)
    points = _points(spec, levels)
    grew = True
    while grew:
        grew = False
        for name in numeric:
            trial = {**levels, name: levels[name] + 1}
            axis = spec.axis(name)
            if axis is not None and axis.kind == "int" and trial[name] > axis.size:
                continue
            cand = _points(spec, trial)
            if len(cand) <= spec.trials and len(cand) > len(points):
                levels, points, grew = trial, cand, True
    return points


def make_sampler(spec: TuneSpec, search: str, salt: int = 0, grid_size: int = 0) -> Any:
    """The Optuna sampler of a study; `salt` varies the seed per worker and per resume so a
    restarted sampler does not replay the random points it already proposed."""
    optuna = _optuna()
    seed = spec.seed + salt
    if search == "grid":
        return optuna.samplers.GridSampler({"grid_point": list(range(grid_size))}, seed=spec.seed)
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.sampler == "nsga2":
        pop = min(50, max(4, spec.trials // 5))
        return optuna.samplers.NSGAIISampler(population_size=pop, seed=seed)
    # multivariate TPE with conditional groups (policy options); few random startup trials:
    # on the per-layer-group format space of tests/test_tune.py this setting found the optimum
    # most often at 20-40 evaluations (benchmarks/bench_tune.py measures it against the grid)
    startup = min(10, max(3, spec.trials // 6))
    return optuna.samplers.TPESampler(n_startup_trials=startup, seed=seed, multivariate=True,
                                      group=True)


# --- storage, studies and workers --------------------------------------------------------------
def storage_url(out_dir: str | Path, url: str | None) -> str:
    """The RDB URL: the given one, or SQLite in the results folder."""
    if url:
        return url
    path = Path(out_dir).resolve() / STUDY_DB
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def open_storage(spec: TuneSpec, url: str) -> Any:
    optuna = _optuna()
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    try:
        storage = optuna.storages.RDBStorage(
            url, heartbeat_interval=max(1, int(spec.stale_after / 5)),
            grace_period=int(math.ceil(spec.stale_after)),
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=3), **kwargs)
    except Exception as exc:  # bad URL, missing driver, unreachable server
        raise ExperimentError(f"cannot open the study storage {url!r}: "
                              f"{type(exc).__name__}: {exc}") from None
    if url.startswith("sqlite"):
        _sqlite_wal(storage.engine)
    return storage


def _sqlite_wal(engine: Any) -> None:
    """Write-ahead log with commits synced at checkpoints: safe against a killed process (not
    against power loss), and about 10x fewer fsyncs than SQLite's default journal."""
    from sqlalchemy import event

    def pragmas(conn: Any, _record: Any) -> None:
        cur = conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    event.listen(engine, "connect", pragmas)
    engine.dispose()  # connections opened before the listener get the pragmas on reconnect


def study_names(spec: TuneSpec) -> dict[str, str]:
    names = {"search": spec.name}
    if spec.grid:
        names["grid"] = spec.name + GRID_SUFFIX
    return names


def prepare_studies(spec: TuneSpec, url: str) -> dict[str, Any]:
    """Create (or load and check) the studies; a stored study from another spec is refused."""
    optuna = _optuna()
    storage = open_storage(spec, url)
    directions = [o.direction for o in spec.objectives]
    out = {}
    for search, name in study_names(spec).items():
        study = optuna.create_study(study_name=name, storage=storage, directions=directions,
                                    load_if_exists=True)
        attrs = study.user_attrs
        if "spec_digest" not in attrs:
            study.set_user_attr("spec_digest", spec.digest)
            study.set_user_attr("uid", digest_of({"name": name, "digest": spec.digest,
                                                  "t": time.time_ns(), "pid": os.getpid()}, 16))
            if search == "grid":
                study.set_user_attr("grid", grid_points(spec))
        elif attrs["spec_digest"] != spec.digest:
            raise ExperimentError(f"study {name!r} in {url} was made from a different tune spec "
                                  "(space, objectives or constraints changed); give the spec "
                                  "another name, or another --storage")
        out[search] = study
    return out


@dataclass(frozen=True)
class WorkerTask:
    """What one worker process needs: the spec, the storage, which study, the trial target."""

    spec: TuneSpec
    url: str
    search: str
    trials: int
    worker: int = 0


def complete_count(study: Any) -> int:
    optuna = _optuna()
    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))


def run_worker(task: WorkerTask) -> int:
    """Run trials of one study until it holds `task.trials` complete trials; returns how many
    this worker completed. A top-level function of picklable input: any runner can call it."""
    optuna = _optuna()
    spec = task.spec
    name = study_names(spec)[task.search]
    storage = open_storage(spec, task.url)
    probe = optuna.load_study(study_name=name, storage=storage)
    grid = probe.user_attrs.get("grid") if task.search == "grid" else None
    have = len(probe.get_trials(deepcopy=False))
    salt = 7919 * task.worker + have
    sampler = make_sampler(spec, task.search, salt, len(grid or ()))
    study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
    done = 0
    workloads: dict[Any, Any] = {}  # this worker's built workloads, by ref and precision
    seen: dict[str, Any] = {}  # configurations this worker evaluated: a repeat is not re-run

    def objective(trial: Any) -> list[float] | float:
        nonlocal done
        if grid is not None:
            idx = trial.suggest_categorical("grid_point", list(range(len(grid))))
            params = dict(grid[idx])
        else:
            params = suggest(trial, spec)
        cfg = config_of(spec, params)
        key = json.dumps(cfg, sort_keys=True, default=str)
        if key not in seen:  # deterministic simulation: a repeated configuration's result
            seen[key] = evaluate(spec, cfg, workloads)
        row, values, cons = seen[key]
        row = dict(row)
        row["config"], row["constraint_values"] = cfg, cons
        trial.set_user_attr("row", json.dumps(row, default=_json_default))
        # the samplers read these (<= 0: met); a trial retried after its worker was killed
        # carries the ones the dead worker set, for the same configuration: equal by
        # determinism, so they are kept, not set twice
        held = trial.storage.get_trial_system_attrs(trial._trial_id)
        for i, c in enumerate(cons):
            if f"constraints:c{i}" not in held:
                trial.set_constraint(f"c{i}", c)
        done += 1
        return values if len(values) > 1 else values[0]

    target = min(task.trials, len(grid)) if grid is not None else task.trials
    if complete_count(study) < target:
        study.optimize(objective, callbacks=[optuna.study.MaxTrialsCallback(target)],
                       gc_after_trial=False)
    return done


def _json_default(v: Any) -> Any:
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return str(v)


def fail_unstarted(spec: TuneSpec, study: Any) -> int:
    """Fail trials a killed worker left RUNNING before their first heartbeat (Optuna's
    stale-trial check only sees trials with one). A live worker records its first heartbeat
    milliseconds after it starts a trial, so such a trial older than `stale_after` has no
    worker. One that had drawn parameters is re-queued with them, as a stale trial is."""
    import copy
    import datetime as dt

    optuna = _optuna()
    storage = study._storage
    now = dt.datetime.now()
    n = 0
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if t.datetime_start is None or \
                (now - t.datetime_start).total_seconds() <= spec.stale_after or \
                _has_heartbeat(storage, t._trial_id):
            continue
        try:
            storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another process finished or failed it meanwhile
        n += 1
        retry = storage.get_heartbeat_stale_trial_callback()
        if t.params and retry is not None:
            retry(study, copy.deepcopy(storage.get_trial(t._trial_id)))
    return n


def _has_heartbeat(storage: Any, trial_id: int) -> bool:
    """Whether the trial has recorded a heartbeat in the RDB storage."""
    from optuna.storages._rdb import models

    backend = getattr(storage, "_backend", storage)
    with backend.scoped_session() as session:
        return models.TrialHeartbeatModel.where_trial_id(trial_id, session) is not None


def optuna_fail_stale(study: Any) -> None:
    """Fail (and re-queue) trials whose heartbeat went stale: workers that died mid-trial."""
    _optuna().storages.fail_stale_trials(study)


def study_states(studies: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Trial counts per state (complete, fail, running, waiting) of each study."""
    out = {}
    for search, study in studies.items():
        counts: dict[str, int] = {}
        for t in study.get_trials(deepcopy=False):
            counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
        out[search] = counts
    return out


def run_tune(spec: TuneSpec, out_dir: str | Path, storage: str | None = None,
             workers: int = 1, scheduler: str | None = None) -> TuneOutcome:
    """Run (or resume) the search and grid studies of `spec` until each holds `spec.trials`
    complete trials, export every trial row to the Parquet store in `out_dir`, and return the
    TuneOutcome (best trials, Pareto front, curves)."""
    import yaml

    t0 = time.perf_counter()
    if workers < 1:
        raise ExperimentError(f"--workers must be at least 1, found {workers}")
    url = storage_url(out_dir, storage)
    studies = prepare_studies(spec, url)
    store = ResultsStore(out_dir)
    store.root.mkdir(parents=True, exist_ok=True)
    store.write_text("tune.yaml", yaml.safe_dump(spec.source, sort_keys=False))
    for study in studies.values():
        optuna_fail_stale(study)
        fail_unstarted(spec, study)
    # with a Dask scheduler, `workers` is how many trial loops share the study on the cluster
    runner = make_runner(None if scheduler else workers, scheduler)
    executed: dict[str, int] = {}
    try:
        for search in studies:
            n = 1 if isinstance(runner, SerialRunner) else workers
            tasks = [WorkerTask(spec, url, search, spec.trials, w) for w in range(n)]
            executed[search] = sum(done for _t, done in runner.map_unordered(run_worker, tasks))
    finally:
        runner.close()
    studies = prepare_studies(spec, url)  # reload: other workers' trials
    df = trial_rows(spec, studies)
    added = export(df, out_dir)
    grid = len(studies["grid"].user_attrs.get("grid", [])) if "grid" in studies else 0
    return TuneOutcome(spec, url, df, best(df, spec), pareto(df, spec), convergence(df, spec),
                       grid, executed, study_states(studies), added,
                       time.perf_counter() - t0, Path(out_dir))
