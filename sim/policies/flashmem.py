"""FlashMem-style policy: solver-planned overlap and on-demand streaming into texture memory.

For every weight group the planner decides whether it stays resident (loaded before the first
op) or is streamed, and for streamed loads the op at whose start the load may begin, so that
loads hide behind compute while memory stays within the budget at every op boundary. Streamed
weights go straight into 2.5D textures (`direct`: pre-laid-out on flash, no transform), split
across image2d_array layers or kept in a buffer when they exceed the image limits.

At run time the plan is dynamic: each load starts as soon as its issue point and the memory
budget allow (the engine's gating), so it stays good when real durations differ.

Planner: the greedy planner, then CP-SAT (sim.planner.cpsat) within a (deterministic) time
limit, warm-started from the greedy plan, unless the greedy plan already meets the latency
lower bound: with solver="auto" on the whole graph when it has at most `solver_max_units`
weighted ops ("cp-sat" forces it on any graph); with solver="rolling" in rolling windows of
`solver_window` weighted ops (the other decisions and the resident set fixed to the incumbent
plan, each window's time a share of the limit), for zoo-sized graphs of up to
`rolling_max_units` weighted ops. Every candidate is scored with the timing the engine uses
(`plan.makespan`) and the best wins; meta records which planner produced the plan, the solver
status (and on whole graphs its bound and gap), the windows that improved it, the plan time
and the gap to the latency lower bound. (Rolling windows are opt-in: on the zoo models tried
each window proved the greedy plan optimal given the rest, at 1-30 s of planning;
`benchmarks/bench_planner.py` measures it.)
"""

from __future__ import annotations

import time

from hwprofiles.runtime import RuntimeProfile
from hwprofiles.schema import HardwareProfile
from sim.bounds import lower_bound
from sim.errors import SimError
from sim.planner.build import build_schedule
from sim.planner.cpsat import solve
from sim.planner.plan import DEFAULT_LOOKAHEAD, Plan, greedy, just_in_time, makespan
from sim.planner.problem import build_problem
from sim.policies.builder import Builder
from workloads.workload import Workload

SOLVERS = ("auto", "cp-sat", "rolling", "greedy")


def flashmem(workload: Workload, profile: HardwareProfile, budget: int | None = None,
             solver: str = "auto", time_limit: float = 2.0, solver_max_units: int = 48,
             lookahead: int = DEFAULT_LOOKAHEAD, solver_lookahead: int = 24,
             solver_window: int = 32, rolling_max_units: int = 2000,
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
    lb = lower_bound(workload, profile, budget, problem)
    n_units = len(problem.units)
    use_solver = solver == "cp-sat" or (solver == "auto" and n_units <= solver_max_units)
    rolling = solver == "rolling" and n_units <= rolling_max_units
    if solver in ("auto", "rolling") and est is not None and est <= lb * (1 + 1e-9):
        use_solver = rolling = False
        meta["solver_skipped"] = "the greedy plan meets the latency lower bound: optimal"
    elif solver == "auto" and not use_solver:
        meta["solver_skipped"] = (f"{n_units} weighted ops > solver_max_units "
                                  f"({solver_max_units}); solver=rolling runs CP-SAT in windows")
    elif solver == "rolling" and not rolling:
        meta["solver_skipped"] = (f"{n_units} weighted ops > rolling_max_units "
                                  f"({rolling_max_units})")
    if rolling and found is not None:
        plan, est = _rolling(problem, plan, est, time_limit, min(lookahead, solver_lookahead),
                             solver_window, meta)
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
    meta.update(estimated_latency_s=est, lower_bound_s=lb,
                gap_to_lower_bound=(est - lb) / est if est else None,
                plan_time_s=time.perf_counter() - t0,
                streamed_units=len(plan.issue), weighted_units=len(problem.units))
    b.schedule.meta.update(meta)
    return b


def _rolling(problem, plan, est: float, time_limit: float, lookahead: int, window: int,
             meta: dict[str, object]):
    """CP-SAT over consecutive windows of `window` weighted ops, each warm-started from the
    best plan so far with every other decision fixed; keeps a window's plan only if the
    engine's timing (`makespan`) says it is faster."""
    n = len(problem.units)
    starts = list(range(0, n, max(1, window)))
    share = time_limit / max(1, len(starts))
    improved, statuses, wall = 0, [], 0.0
    for a in starts:
        res = solve(problem, plan, share, lookahead, free=set(range(a, min(n, a + window))))
        statuses.append(res.status)
        wall += res.wall_s
        if res.plan is not None:
            t = makespan(problem, res.plan)
            if t < est - 1e-12:
                plan, est = Plan(res.plan.resident, res.plan.issue, "cp-sat"), t
                improved += 1
    meta.update(solver_windows=len(starts), solver_windows_improved=improved,
                solver_wall_s=wall, solver_status="rolling: " + ", ".join(
                    f"{statuses.count(k)} {k}" for k in dict.fromkeys(statuses)))
    if improved:
        meta["planner"] = "cp-sat (rolling windows)"
    return plan, est
