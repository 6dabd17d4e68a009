"""FlashMem-style policy: solver-planned overlap and on-demand streaming into texture memory.

For every weight group the planner decides whether it stays resident (loaded before the first
op) or is streamed, and for streamed loads the op at whose start the load may begin, so that
loads hide behind compute while memory stays within the budget at every op boundary. Streamed
weights go straight into 2.5D textures (`direct`: pre-laid-out on flash, no transform), split
across image2d_array layers or kept in a buffer when they exceed the image limits.

At run time the plan is dynamic: each load starts as soon as its issue point and the memory
budget allow (the engine's gating), so it stays good when real durations differ.

Planner: CP-SAT (sim.planner.cpsat) within a (deterministic) time limit, hinted by the greedy
planner, with issue points at most `solver_lookahead` ops ahead; graphs with more than
`solver_max_units` weighted ops use the greedy planner alone (solver="cp-sat" forces it). The best plan by
the analytical timeline wins; meta records which planner, the solver bound and the gap, the
plan time and the latency lower bound.
"""

from __future__ import annotations

import time

from hwprofiles.runtime import RuntimeProfile
from hwprofiles.schema import HardwareProfile
from sim.bounds import lower_bound
from sim.errors import SimError
from sim.planner.build import build_schedule
from sim.planner.cpsat import solve
from sim.planner.plan import DEFAULT_LOOKAHEAD, greedy, just_in_time, makespan
from sim.planner.problem import build_problem
from sim.policies.builder import Builder
from workloads.workload import Workload

SOLVERS = ("auto", "cp-sat", "greedy")


def flashmem(workload: Workload, profile: HardwareProfile, budget: int | None = None,
             solver: str = "auto", time_limit: float = 2.0, solver_max_units: int = 48,
             lookahead: int = DEFAULT_LOOKAHEAD, solver_lookahead: int = 24,
             runtime: RuntimeProfile | None = None, budget_scope: str = "total") -> Builder:
    if solver not in SOLVERS:
        raise SimError(f"unknown flashmem solver {solver!r}; valid: {', '.join(SOLVERS)}")
    t0 = time.perf_counter()
    problem = build_problem(workload, profile, budget, runtime, budget_scope)
    found = greedy(problem, lookahead)
    meta: dict[str, object] = {"planner": "greedy"}
    if found is None:
        plan, est = just_in_time(problem), None
        meta["planner"] = "just-in-time (no plan fits the budget)"
    else:
        plan, est = found
    use_solver = solver == "cp-sat" or (solver == "auto" and len(problem.units) <= solver_max_units)
    if solver == "auto" and not use_solver:
        meta["solver_skipped"] = (f"{len(problem.units)} weighted ops > solver_max_units "
                                  f"({solver_max_units})")
    if use_solver and found is not None:
        res = solve(problem, plan, time_limit, min(lookahead, solver_lookahead))
        meta.update(solver_status=res.status, solver_wall_s=res.wall_s,
                    solver_objective_s=res.objective_s, solver_bound_s=res.bound_s)
        if res.objective_s:
            meta["solver_gap"] = (res.objective_s - res.bound_s) / res.objective_s
        if res.plan is not None:
            t = makespan(problem, res.plan)
            if est is None or t < est - 1e-12:
                plan, est = res.plan, t
                meta["planner"] = "cp-sat"
    b = build_schedule(problem, plan)
    lb = lower_bound(workload, profile, budget, problem)
    meta.update(estimated_latency_s=est, lower_bound_s=lb,
                gap_to_lower_bound=(est - lb) / est if est else None,
                plan_time_s=time.perf_counter() - t0,
                streamed_units=len(plan.issue), weighted_units=len(problem.units))
    b.schedule.meta.update(meta)
    return b
