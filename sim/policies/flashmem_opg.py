"""FlashMem's planner as the paper states it (`flashmem-opg`): the OPG model of
`sim.planner.opg` (preloaded set, earliest load layers, chunks per layer within per-op-class load
capacities, M_peak, lambda) with the paper's solver limit and fallbacks, executed like FlashMem
(streamed weights loaded straight into 2.5D textures, `direct`).

M_peak is the budget when one is given (of total memory, or of weights + staging with budget
scope `weights`), else `m_peak` (the paper's 500 MB). The plan is scored afterwards with the
timing the engine uses (`sim.planner.plan.makespan`) and against the latency lower bound; meta
records which planner produced it (OPG, OPG after fallbacks, or the greedy planner as the
last fallback), the solver status, objective, bound and gap, and the steps taken.
weightstream's own planner (`flashmem`) optimises latency directly; compare them with
`benchmarks/bench_planner.py`.
"""

from __future__ import annotations

import time
from dataclasses import replace

from hwprofiles.runtime import RuntimeProfile
from hwprofiles.schema import HardwareProfile
from hwprofiles.units import UnitError, parse_bytes
from sim.bounds import lower_bound
from sim.errors import SimError
from sim.planner.build import build_schedule
from sim.planner.opg import (
    CAPACITY,
    CHUNK,
    LAMBDA,
    M_PEAK,
    TIME_LIMIT,
    WINDOW,
    from_plan,
    greedy_opg,
    instance,
    memory,
    plan_opg,
    to_plan,
    violations,
)
from sim.planner.plan import greedy, makespan
from sim.planner.problem import build_problem
from sim.policies.builder import Builder
from sim.policies.flashmem import flashmem
from workloads.workload import Workload


def _size(value: int | str, what: str) -> int:
    try:
        n = parse_bytes(value)
    except UnitError as exc:
        raise SimError(f"flashmem-opg {what}: {exc}") from None
    if n <= 0:
        raise SimError(f"flashmem-opg {what} must be positive, found {value!r}")
    return n


def flashmem_opg(workload: Workload, profile: HardwareProfile, budget: int | None = None,
                 m_peak: int | str = M_PEAK, lam: float = LAMBDA,
                 time_limit: float = TIME_LIMIT, window: int = WINDOW,
                 chunk: int | str = CHUNK, max_units: int = 4000,
                 capacity: dict[str, float] | None = None,
                 runtime: RuntimeProfile | None = None, budget_scope: str = "total") -> Builder:
    """The OPG plan of `workload` under M_peak (the budget, else `m_peak`) with objective weight
    `lam`, the solver limited to `time_limit` (deterministic) seconds in all; `capacity` maps op
    classes to load capacities (fractions of a kernel's own traffic) instead of the paper's."""
    if not 0 <= lam <= 1:
        raise SimError(f"flashmem-opg lam (lambda) must be between 0 and 1, found {lam!r}")
    if not isinstance(window, int) or isinstance(window, bool) or window < 1:
        raise SimError(f"flashmem-opg window must be a whole number >= 1, found {window!r}")
    if not isinstance(time_limit, int | float) or time_limit <= 0:
        raise SimError(f"flashmem-opg time_limit must be positive seconds, found {time_limit!r}")
    if capacity is not None:
        bad = [k for k in capacity if k not in CAPACITY]
        if bad or not all(isinstance(v, int | float) and v >= 0 for v in capacity.values()):
            raise SimError(f"flashmem-opg capacity must map op classes ({', '.join(CAPACITY)}) "
                           f"to fractions >= 0; found {capacity!r}")
    t0 = time.perf_counter()
    cap = budget if budget is not None else _size(m_peak, "m_peak")
    problem = replace(build_problem(workload, profile, budget, runtime, budget_scope), budget=cap)
    inst = instance(problem, cap, float(lam), window, _size(chunk, "chunk"),
                    None if capacity is None else {k: float(v) for k, v in capacity.items()})
    meta: dict[str, object] = {"m_peak_bytes": cap, "lambda": float(lam), "opg_window": window,
                               "time_limit_s": float(time_limit)}
    found = greedy(problem)
    if len(inst.units) > max_units:
        outcome = None
        meta["fallback"] = (f"{len(inst.units)} weighted ops > max_units ({max_units}): the "
                            "greedy planner (the paper's last fallback)")
    else:
        start = greedy_opg(inst)  # a valid plan of the model, if M_peak holds it
        hint = start if not violations(inst, start) else (from_plan(found[0]) if found
                                                           else None)
        outcome = plan_opg(inst, float(time_limit), hint)
        meta["opg_steps"] = outcome.steps
        meta["solver_wall_s"] = outcome.solve_s
    if outcome is not None and outcome.solution is not None:
        sol = outcome.solution
        plan = to_plan(sol)
        planner = "opg" if not outcome.preloaded_by_fallback else "opg (after fallbacks)"
        if sol.status == "GREEDY":
            planner += " (its greedy start: the solver found no better plan in time)"
        if outcome.preloaded_by_fallback:
            meta["fallback"] = ("relaxed capacities, then preloaded "
                                f"{len(outcome.preloaded_by_fallback)} violating weight(s)")
        broken = violations(inst, sol)
        meta.update(solver_status=sol.status, solver_objective=sol.objective,
                    solver_bound=sol.bound, model_violations=len(broken),
                    planned_peak_bytes=max(memory(inst, sol), default=0),
                    preloaded_groups=len(sol.preload))
        if sol.objective:
            meta["solver_gap"] = max(0.0, (sol.objective - (sol.bound or 0.0)) / sol.objective)
    else:
        # the last fallback is weightstream's flashmem planner, greedy (its tiles and row
        # lookups included): the same floor as `flashmem`, which capacity searches rely on
        b = flashmem(workload, profile, cap, solver="greedy", runtime=runtime,
                     budget_scope=budget_scope)
        fm = b.schedule.meta
        b.schedule.policy = "flashmem-opg"
        b.schedule.budget_bytes = budget
        if fm["planner"] == "greedy":
            planner = "greedy (OPG fallback)"
            meta.setdefault("fallback", "no OPG plan: flashmem's greedy planner")
        else:
            planner = "just-in-time (no plan fits M_peak)"
            meta.setdefault("fallback", "no plan fits M_peak: every load just in time")
        meta.update(planner=planner, plan_time_s=time.perf_counter() - t0)
        b.schedule.meta.update(meta)
        return b
    b = build_schedule(replace(problem, budget=budget), plan, policy="flashmem-opg")
    est = makespan(problem, plan)
    lb = lower_bound(workload, profile, budget, problem)
    meta.update(planner=planner, estimated_latency_s=est, lower_bound_s=lb,
                gap_to_lower_bound=(est - lb) / est if est else None,
                plan_time_s=time.perf_counter() - t0, streamed_units=len(plan.issue),
                weighted_units=len(problem.units))
    b.schedule.meta.update(meta)
    return b
