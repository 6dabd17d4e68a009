"""Work shared by the runs of one chunk of a sweep.

Runs that differ only in their budget (or policy) have most of their inputs in common: the
built workload, the profile, the runtime, the planning problem and its lower bound, and for a
policy whose schedule does not depend on the budget (preload, sequential, a pipeline of one
depth: `depth="auto"` tries several, each planned once) the schedule itself and its
unconstrained result. `Shared` computes each once per
chunk of runs (runners hand out runs in chunks of one workload, profile and dtype), and decides
budgets below the smallest working set of the workload without planning: no schedule fits
there, whatever the policy.

A budget-free schedule's result at a budget is its unconstrained result whenever the
evaluator's unconstrained peak fits the budget (no grant could wait, so the evaluator at that
budget computes the very same numbers); otherwise the run is executed at its budget.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

from experiments.resolve import load_profile_ref, load_runtime_ref, load_workload
from experiments.spec import ProfileRef, WorkloadRef
from hwprofiles.units import format_bytes


class Shared:
    """Caches for a chunk of runs (none outlives the chunk: no state between sweeps)."""

    def __init__(self, workloads: dict[tuple[str, str], Any] | None = None) -> None:
        # built workloads by (workload ref, dtype): a caller may keep them across chunks
        self.workloads: dict[tuple[str, str], Any] = {} if workloads is None else workloads
        self.profiles: dict[ProfileRef, Any] = {}
        self.runtimes: dict[ProfileRef, Any] = {}
        # (workload, profile, runtime, budget scope, rows) -> budget-free planning problem
        self.problems: dict[tuple, Any] = {}
        self.floors: dict[tuple, int] = {}
        self.free: dict[tuple, tuple[Any, Any]] = {}  # budget-free schedule and its result

    def workload(self, ref: WorkloadRef, dtype: str) -> Any:
        key = (json.dumps(ref.to_dict(), sort_keys=True), dtype)
        if key not in self.workloads:
            self.workloads[key] = load_workload(ref, dtype)
        return self.workloads[key]

    def profile(self, ref: ProfileRef) -> Any:
        if ref not in self.profiles:
            self.profiles[ref] = load_profile_ref(ref)
        return self.profiles[ref]

    def runtime(self, ref: ProfileRef) -> Any:
        if ref not in self.runtimes:
            self.runtimes[ref] = load_runtime_ref(ref)
        return self.runtimes[ref]

    def problem(self, run: Any, wl: Any, prof: Any, rt: Any, budget: int | None,
                rows: bool = False) -> Any:
        """The planning problem of `run` at `budget` (extracted once, budget set per run);
        `rows`: of the workload with its lookups reading rows (the lower bound's)."""
        from sim.lowering import lower
        from sim.planner.problem import build_problem
        from workloads.streaming import gather_rows

        key = (_key(run.workload), run.dtype, run.profile, run.runtime, run.budget_scope, rows)
        if key not in self.problems:
            lowered = lower(wl, rt)
            self.problems[key] = build_problem(gather_rows(lowered) if rows else lowered, prof,
                                               None, rt, run.budget_scope)
        return replace(self.problems[key], budget=budget)

    def floor(self, run: Any, wl: Any, prof: Any, rt: Any) -> int:
        """No schedule the run's policy makes fits below this (see sim.capacity)."""
        from sim.capacity import policy_floor

        opts = dict(run.policy.options)
        key = (_key(run.workload), run.dtype, run.profile, run.runtime, run.budget_scope,
               run.policy.name, json.dumps(opts, sort_keys=True, default=str))
        if key not in self.floors:
            self.floors[key] = policy_floor(run.policy.name, wl, prof, rt, opts,
                                            self.problem(run, wl, prof, rt, None),
                                            run.budget_scope)
        return self.floors[key]

    def execute(self, run: Any) -> dict[str, Any]:
        """Plan and simulate one run into its results row; a failure becomes the row's
        `error`, never an exception."""
        from experiments.runs import error_row
        from sim.bounds import lower_bound

        t0 = time.perf_counter()
        row: dict[str, Any] = run.input_columns()
        error: str | None = None
        lb: float | None = None
        budget = run.budget_bytes
        try:
            wl = self.workload(run.workload, run.dtype)
            prof = self.profile(run.profile)
            rt = self.runtime(run.runtime)
            options = dict(run.policy.options)
            problem = self.problem(run, wl, prof, rt, budget)
            floor = self.floor(run, wl, prof, rt)
            if budget is not None and budget < floor:
                m = _unrun(run, wl, prof, rt, budget, (
                    f"budget {format_bytes(budget)} is below the smallest working set of "
                    f"{run.policy.name} for {wl.name} on {prof.name}: {format_bytes(floor)} "
                    f"({floor} bytes) that one op needs at once; no schedule of it fits"))
            else:
                m = self._metrics(run, wl, prof, rt, budget, options, problem)
            metrics = m.flat()
            for k in ("policy", "profile", "model", "budget_bytes", "runtime", "budget_scope"):
                metrics.pop(k, None)  # inputs keep the spec's labels
            row.update(metrics)
            row["profile_resolved"] = m.profile
            error = m.error
            lb = m.meta.get("lower_bound_s")
        except Exception as exc:  # one failing run must not stop the sweep
            return error_row(run, f"{type(exc).__name__}: {exc}", time.perf_counter() - t0)
        if lb is None:
            try:
                lb = float(lower_bound(wl, prof, budget,
                                       self.problem(run, wl, prof, rt, budget, rows=True), rt,
                                       run.budget_scope))
            except Exception:  # the bound is a courtesy column: never fail a run over it
                lb = None
        row["feasible"] = bool(row.get("feasible", False)) and error is None
        # ok | infeasible (the budget is below what the policy can run in) | error (it raised)
        row["status"] = "ok" if row["feasible"] else "infeasible"
        row["error"] = error
        row["lower_bound_s"] = lb
        row["wall_s"] = time.perf_counter() - t0
        return row

    def _metrics(self, run: Any, wl: Any, prof: Any, rt: Any, budget: int | None,
                 options: dict[str, Any], problem: Any) -> Any:
        from sim import plan, simulate
        from sim.policies import budget_free

        name = run.policy.name
        if name == "pipeline" and options.get("depth", "auto") == "auto":
            return self._auto_pipeline(run, wl, prof, rt, budget, options)
        if not budget_free(name, options):
            s = plan(name, wl, prof, budget, rt, run.budget_scope, problem=problem, **options)
            return simulate(s, prof, budget=budget, record_trace=False, runtime=rt,
                            engine=run.engine).metrics
        return self._at_budget(run, wl, prof, rt, budget, options)

    def _at_budget(self, run: Any, wl: Any, prof: Any, rt: Any, budget: int | None,
                   options: dict[str, Any]) -> Any:
        """The metrics of a budget-free schedule at `budget`: planned and run unconstrained
        once, then executed again only where the budget could make a grant wait."""
        from sim import plan, simulate

        name, scope = run.policy.name, run.budget_scope
        key = self._free_key(run, options)
        if key not in self.free:
            s = plan(name, wl, prof, None, rt, scope, **options)
            free = simulate(s, prof, budget=None, record_trace=False, runtime=rt,
                            engine=run.engine).metrics
            self.free[key] = (s, free)
        s, free = self.free[key]
        biggest = max((st.bytes for st in s.loads), default=0)
        used = free.peak_memory_bytes if scope == "total" else free.peak_weight_bytes
        if free.executor == "evaluator" and (budget is None or (
                used <= budget and biggest <= budget)):
            return replace(free, budget_bytes=budget, meta=dict(free.meta))
        return simulate(replace(s, budget_bytes=budget), prof, budget=budget,
                        record_trace=False, runtime=rt, engine=run.engine).metrics

    @staticmethod
    def _free_key(run: Any, options: dict[str, Any]) -> tuple:
        """Which budget-free schedule a run at any budget shares."""
        return (_key(run.workload), run.dtype, run.profile, run.runtime, run.budget_scope,
                run.policy.name, json.dumps(options, sort_keys=True, default=str))

    def _auto_pipeline(self, run: Any, wl: Any, prof: Any, rt: Any, budget: int | None,
                       options: dict[str, Any]) -> Any:
        """pipeline depth='auto' as `sim.policies.baselines.stream` chooses it (the fastest
        candidate depth at this budget), each depth's schedule planned once per chunk."""
        from sim.lowering import lower
        from sim.policies.builder import units
        from sim.policies.search import fastest_robust_depth, fits_at_any_timing

        lowered = lower(wl, rt)
        n = max(1, sum(1 for u in units(lowered) if u.op.weights))
        act = lowered.activation_profile() if run.budget_scope == "total" else None

        def score(d: int) -> tuple[float, int]:
            m = self._at_budget(run, wl, prof, rt, budget, {**options, "depth": d})
            return (m.latency_s if m.feasible else float("inf")), m.peak_memory_bytes

        def robust(d: int) -> bool:
            s, _ = self.free[self._free_key(run, {**options, "depth": d})]
            return fits_at_any_timing(s, prof, budget, rt, act)

        d, tried, rejected = fastest_robust_depth(n, score, robust)
        m = self._at_budget(run, wl, prof, rt, budget, {**options, "depth": d})
        return replace(m, meta={**m.meta, "auto_candidates": tried,
                                "auto_rejected_fragile": rejected})


def _key(ref: WorkloadRef) -> str:
    """A hashable identity of a workload reference (its arguments may hold dicts)."""
    return json.dumps([ref.kind, ref.name, list(ref.args)], sort_keys=True, default=str)


def _unrun(run: Any, wl: Any, prof: Any, rt: Any, budget: int | None, error: str) -> Any:
    """The Metrics of a run decided without executing it (infeasible by a bound)."""
    from sim.memory import CATEGORIES
    from sim.metrics import Metrics

    return Metrics(
        policy=run.policy.name, workload=wl.name, profile=prof.name, budget_bytes=budget,
        feasible=False, error=error, latency_s=0.0, cold_latency_s=0.0, warm_latency_s=None,
        invocation_latencies_s=[], peak_memory_bytes=0,
        peak_memory_by_category=dict.fromkeys(CATEGORIES, 0), avg_memory_bytes=0.0,
        avg_memory_by_category=dict.fromkeys(CATEGORIES, 0.0), weight_bytes=wl.weight_bytes,
        flash_bytes_read=0, compute_s=0.0, gpu_stall_s=0.0, utilisation={}, runtime=rt.name,
        memory_limit_bytes=prof.memory_limit(), executor="analytic")
