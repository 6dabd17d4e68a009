"""One run of a sweep: its inputs (RunSpec), its stable key, the automatic budget points, and the
function that plans + simulates it into one results row.

`execute_run` and `budget_points` are plain top-level functions of picklable arguments so every
runner (serial, process pool, Dask) calls the same code and gets the same rows.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from typing import Any

from experiments.resolve import load_profile_ref, load_runtime_ref, load_workload
from experiments.spec import PolicyRef, ProfileRef, SweepSpec, WorkloadRef, digest_of

IDEAL_REF = ProfileRef("ideal", "ideal", (), digest_of({}))

# bump when the meaning of a results row changes: every run is then keyed anew and re-executed
# 2: status column; 3: runtimes, init/exec, OS memory; 4: budget scope, pipeline depth=auto on
# the engine, demand-layering and flashmem-opg, planner columns; 5: the executor columns, token
# metrics, flashmem streaming LLMs (lookups reading rows, tiles), hit rates, KV spill
RESULTS_SCHEMA = "weightstream-results/5"
# columns whose values depend on the machine and the moment, not on the inputs
TIMING_COLUMNS = ("wall_s", "meta.plan_time_s", "meta.solver_wall_s")


@cache
def code_version() -> str:
    """Results schema + installed package version: part of every run's key."""
    try:
        from importlib.metadata import version

        pkg = version("weightstream")
    except Exception:  # not installed (running from a source tree)
        pkg = "0"
    return f"{RESULTS_SCHEMA}+weightstream-{pkg}"


@dataclass(frozen=True)
class RunSpec:
    """The full inputs of one simulation run."""

    workload: WorkloadRef
    profile: ProfileRef
    policy: PolicyRef
    dtype: str
    budget_bytes: int | None
    auto_budget: bool = False
    runtime: ProfileRef = IDEAL_REF
    series: str = ""  # the (policy, runtime) label in tables and plots
    budget_scope: str = "total"
    engine: str = "auto"  # which executor (not part of the key: both give the same numbers)

    def identity(self) -> dict[str, Any]:
        """Everything the run's result depends on, as sorted-JSON-ready data."""
        out = {"workload": self.workload.to_dict(), "profile": self.profile.to_dict(),
               "policy": self.policy.to_dict(), "runtime": self.runtime.to_dict(),
               "dtype": self.dtype, "budget_bytes": self.budget_bytes,
               "version": code_version()}
        if self.budget_scope != "total":  # runs of a total budget keep their keys
            out["budget_scope"] = self.budget_scope
        return out

    @property
    def key(self) -> str:
        return digest_of(self.identity(), 24)

    def input_columns(self) -> dict[str, Any]:
        """The row's input columns (labels for tables and plots, exact refs for re-running)."""
        return {
            "key": self.key,
            "model": self.workload.label,
            "workload_kind": self.workload.kind,
            "workload_ref": self.workload.name,
            "workload_args": json.dumps(dict(self.workload.args), sort_keys=True),
            "profile": self.profile.label,
            "profile_name": self.profile.name,
            "profile_overrides": json.dumps(list(self.profile.overrides)),
            "policy": self.series or self.policy.label,
            "policy_name": self.policy.name,
            "runtime": self.runtime.label,
            "runtime_name": self.runtime.name,
            "runtime_overrides": json.dumps(list(self.runtime.overrides)),
            "policy_options": json.dumps(dict(self.policy.options), sort_keys=True),
            "dtype": self.dtype,
            "budget_bytes": self.budget_bytes,
            "budget_scope": self.budget_scope,
            "auto_budget": self.auto_budget,
            "code_version": code_version(),
        }


@dataclass(frozen=True)
class BudgetGroup:
    """The inputs that decide one set of automatic budget points."""

    workload: WorkloadRef
    profile: ProfileRef
    dtype: str
    pairs: tuple[tuple[PolicyRef, ProfileRef], ...]  # (policy, runtime)
    points: int
    budget_scope: str = "total"

    @property
    def key(self) -> str:
        ident = {"workload": self.workload.to_dict(), "profile": self.profile.to_dict(),
                 "dtype": self.dtype,
                 "pairs": [[p.to_dict(), r.to_dict()] for p, r in self.pairs],
                 "points": self.points, "version": code_version()}
        if self.budget_scope != "total":
            ident["budget_scope"] = self.budget_scope
        return digest_of(ident, 24)


@dataclass(frozen=True)
class BudgetPoints:
    """Resolved automatic budgets of one group, with the floor and ceiling they span."""

    key: str
    budgets: tuple[int, ...]
    min_feasible_bytes: int | None
    full_footprint_bytes: int | None
    notes: tuple[str, ...] = ()


def log_points(lo: int, hi: int, n: int) -> tuple[int, ...]:
    """`n` log-spaced whole byte counts from `lo` to `hi` inclusive (deduplicated)."""
    if n <= 1 or hi <= lo:
        return (max(lo, hi) if n > 1 else hi,)
    ratio = math.log(hi / lo)
    pts = [lo] + [int(round(lo * math.exp(ratio * i / (n - 1)))) for i in range(1, n - 1)]
    pts.append(hi)
    return tuple(sorted(set(pts)))


def budget_points(group: BudgetGroup) -> BudgetPoints:
    """From the smallest budget any streaming policy of the sweep runs in (preload's floor is its
    full footprint) up to the full preload footprint, `points` log-spaced budgets."""
    from sim import plan, simulate
    from sim.capacity import min_feasible_budget

    wl = load_workload(group.workload, group.dtype)
    prof = load_profile_ref(group.profile)
    notes: list[str] = []
    full: int | None = None
    scope = group.budget_scope
    try:
        pre = simulate(plan("preload", wl, prof, None), prof, record_trace=False).metrics
        full = pre.peak_memory_bytes if scope == "total" else pre.peak_weight_bytes
    except Exception as exc:
        notes.append(f"preload footprint: {type(exc).__name__}: {exc}")
    floors: list[int] = []
    for p, r in group.pairs:
        if p.name == "preload":
            continue
        try:
            floors.append(min_feasible_budget(p.name, wl, prof, runtime=load_runtime_ref(r),
                                              budget_scope=scope, **dict(p.options)))
        except Exception as exc:
            notes.append(f"min feasible budget of {p.label} with runtime {r.label}: "
                         f"{type(exc).__name__}: {exc}")
    lo = min(floors) if floors else full
    if lo is None or full is None:
        hi = lo if full is None else full
        pts = (hi,) if hi is not None else ()
    else:
        pts = log_points(lo, max(full, lo), group.points)
    return BudgetPoints(group.key, tuple(pts), lo, full, tuple(notes))


def expand(spec: SweepSpec, auto: dict[str, BudgetPoints] | None = None,
           engine: str = "auto") -> list[RunSpec]:
    """Every run of `spec` in a fixed order; `auto` maps BudgetGroup keys to resolved points."""
    runs: list[RunSpec] = []
    for w in spec.workloads:
        for prof in spec.profiles:
            for dtype in spec.dtypes:
                if spec.budgets.auto:
                    g = budget_group(spec, w, prof, dtype)
                    if auto is None or g.key not in auto:
                        raise KeyError(f"automatic budgets of {w.label} on {prof.label} not resolved")
                    budgets: tuple[int | None, ...] = auto[g.key].budgets or (None,)
                else:
                    budgets = spec.budgets.values
                for pol, rt in spec.pairs():
                    for b in budgets:
                        runs.append(RunSpec(w, prof, pol, dtype, b, bool(spec.budgets.auto), rt,
                                            spec.series(pol, rt), spec.budget_scope, engine))
    return runs


def budget_group(spec: SweepSpec, w: WorkloadRef, prof: ProfileRef, dtype: str) -> BudgetGroup:
    return BudgetGroup(w, prof, dtype, tuple(spec.pairs()), int(spec.budgets.auto or 0),
                       spec.budget_scope)


def budget_groups(spec: SweepSpec) -> list[BudgetGroup]:
    """The groups whose automatic budgets must be resolved before the runs are known."""
    if not spec.budgets.auto:
        return []
    return [budget_group(spec, w, p, d) for w in spec.workloads for p in spec.profiles
            for d in spec.dtypes]


def execute_run(run: RunSpec, workloads: dict[tuple[str, str], Any] | None = None) -> dict[str, Any]:
    """Plan and simulate one run; any failure becomes the row's `error`, never an exception.
    `workloads` is a caller-owned cache of built workloads (by workload ref and dtype), for
    callers that run many configurations of one workload (tune workers)."""
    return execute_runs([run], workloads)[0]


def execute_runs(runs: list[RunSpec], workloads: dict[tuple[str, str], Any] | None = None
                 ) -> list[dict[str, Any]]:
    """Plan and simulate a chunk of runs, sharing the work they have in common (the built
    workload, the planning problem, budget-free schedules: see experiments.shared)."""
    from experiments.shared import Shared

    shared = Shared(workloads)
    return [shared.execute(r) for r in runs]


def error_row(run: RunSpec, message: str, wall_s: float | None = None) -> dict[str, Any]:
    """The row of a run that raised or never returned: its inputs, status 'error' and the
    message. The store keeps it for the record and the next sweep runs it again."""
    row: dict[str, Any] = run.input_columns()
    row.update(feasible=False, status="error", error=message, lower_bound_s=None, wall_s=wall_s)
    return row


def _lower_bound(wl: Any, prof: Any, budget: int | None, runtime: Any = None,
                 scope: str = "total") -> float | None:
    try:
        from sim.bounds import lower_bound
    except ImportError:
        return None
    try:
        return float(lower_bound(wl, prof, budget, runtime=runtime, budget_scope=scope))
    except Exception:
        return None


def run_of_row(row: Any) -> RunSpec:
    """The RunSpec of a stored results row (sweep or tune), from its input columns, so a run
    can be simulated again (e.g. for its Gantt timeline)."""
    import pandas as pd

    from experiments.spec import PolicyRef, ProfileRef, WorkloadRef

    def get(k: str) -> Any:
        v = row.get(k)
        return None if v is None or (not isinstance(v, list | tuple) and pd.isna(v)) else v

    w = WorkloadRef(str(get("workload_kind")), str(get("workload_ref")), str(get("model")),
                    tuple(sorted(json.loads(get("workload_args") or "{}").items())))
    p = ProfileRef(str(get("profile_name")), str(get("profile")),
                   tuple(json.loads(get("profile_overrides") or "[]")))
    pol = PolicyRef(str(get("policy_name")), str(get("policy")),
                    tuple(sorted(json.loads(get("policy_options") or "{}").items())))
    rt = IDEAL_REF
    if get("runtime_name") is not None:
        rt = ProfileRef(str(get("runtime_name")), str(get("runtime") or get("runtime_name")),
                        tuple(json.loads(get("runtime_overrides") or "[]")))
    budget = get("budget_bytes")
    return RunSpec(w, p, pol, str(get("dtype")), None if budget is None else int(budget),
                   bool(get("auto_budget") or False), rt, str(get("series") or ""),
                   str(get("budget_scope") or "total"))
