"""FlashMem-style policy: solver-planned overlap and on-demand streaming into texture memory.

For every weight group the planner decides whether it stays resident (loaded before the first
op) or is streamed, and for streamed loads the op at whose start the load may begin, so that
loads hide behind compute while memory stays within the budget at every op boundary. Streamed
weights go straight into 2.5D textures (`direct`: pre-laid-out on flash, no transform), split
across image2d_array layers or kept in a buffer when they exceed the image limits.

At run time the plan is dynamic: each load starts as soon as its issue point and the memory
budget allow (the engine's gating), so it stays good when real durations differ.

LLM-scale streaming (workloads.streaming): with `embedding="rows"` (the default) a lookup reads
only its tokens' rows from flash, a row at a time, and the table never has to be resident; with
`tile="auto"` (the default) a linear, matmul or convolution whose weights exceed what one
allocation holds (`gpu.max_alloc`) or half the budget left after the activations runs as
partial kernels over row tiles of them; where the weights do not all fit the budget, tiles of
a quarter of that are tried too (finer pieces fill the memory kept resident across
invocations, e.g. across an LLM's tokens, more fully), and the planner picks the tile size by
the plans' estimated latency (never below 256 KiB; untiled where every op fits); `tile=N` tiles at N bytes,
`tile="off"` never. The smallest budget is then a tile and the live activations.

Planner: CP-SAT (sim.planner.cpsat) within a (deterministic) time limit, hinted by the greedy
planner, with issue points at most `solver_lookahead` ops ahead; graphs with more than
`solver_max_units` weighted ops use the greedy planner alone (solver="cp-sat" forces it). The best plan by
the analytical timeline wins; meta records which planner, the solver bound and the gap, the
plan time and the latency lower bound.
"""

from __future__ import annotations

import time
from dataclasses import replace

from hwprofiles.runtime import RuntimeProfile
from hwprofiles.schema import HardwareProfile
from sim.bounds import lower_bound
from sim.errors import SimError
from sim.planner.build import build_schedule
from sim.planner.cpsat import solve
from sim.planner.plan import DEFAULT_LOOKAHEAD, greedy, just_in_time, makespan
from sim.planner.problem import Problem, build_problem
from sim.policies.builder import Builder
from workloads.streaming import TILEABLE, gather_rows, tile_workload
from workloads.workload import Workload

SOLVERS = ("auto", "cp-sat", "greedy")
EMBEDDINGS = ("rows", "table")


MIN_TILE = 256 * 1024  # bytes: smaller tiles cost more in kernel launches than they save


def tile_limit(workload: Workload, profile: HardwareProfile, budget: int | None) -> int:
    """The largest tile `tile="auto"` allows: one allocation, and half of what the budget
    leaves after the activations (so a tile can stream in while the one before it runs), but
    never below MIN_TILE."""
    limit = profile.gpu.max_alloc
    if budget is not None:
        room = (budget - max(workload.activation_profile(), default=0)) // 2
        limit = min(limit, max(room, MIN_TILE))
    return limit


def streamed_workload(workload: Workload, embedding: str = "rows") -> Workload:
    """The workload flashmem plans before tiling: lookups reading rows (or whole tables)."""
    if embedding not in EMBEDDINGS:
        raise SimError(f"unknown flashmem embedding {embedding!r}; valid: "
                       f"{', '.join(EMBEDDINGS)}")
    return gather_rows(workload) if embedding == "rows" else workload


def flashmem(workload: Workload, profile: HardwareProfile, budget: int | None = None,
             solver: str = "auto", time_limit: float = 2.0, solver_max_units: int = 48,
             lookahead: int = DEFAULT_LOOKAHEAD, solver_lookahead: int = 24,
             embedding: str = "rows", tile: str | int = "auto",
             runtime: RuntimeProfile | None = None, problem: Problem | None = None) -> Builder:
    if solver not in SOLVERS:
        raise SimError(f"unknown flashmem solver {solver!r}; valid: {', '.join(SOLVERS)}")
    t0 = time.perf_counter()
    workload = streamed_workload(workload, embedding)
    if tile == "auto":
        limit = tile_limit(workload, profile, budget)
        largest = max((op.weight_bytes for inv in workload.invocations for op in inv.model.ops
                       if op.kind in TILEABLE), default=0)
        # untiled where every op's weights fit one allocation and the limit; tiles at the
        # limit; and quarter tiles where some op is larger and the weights do not all fit
        # (finer pieces fill the memory kept resident across invocations more fully)
        sizes: list[int | None] = []
        if largest <= profile.gpu.max_alloc:
            sizes.append(None)
        if largest > limit:
            sizes.append(limit)
        quarter = max(MIN_TILE, limit // 4)
        if largest > quarter and budget is not None and workload.weight_bytes > budget:
            sizes.append(quarter)
    elif tile == "off":
        sizes = [None]
    elif isinstance(tile, int) and not isinstance(tile, bool) and tile >= MIN_TILE // 256:
        sizes = [tile]
    else:
        raise SimError(f"flashmem tile must be 'auto', 'off' or a size of at least "
                       f"{MIN_TILE // 256} bytes, found {tile!r}")
    best: tuple | None = None
    for size in sizes:
        wl = workload if size is None else tile_workload(workload, size)
        if problem is not None and problem.workload is wl:
            prob = replace(problem, budget=budget)
        else:
            prob = build_problem(wl, profile, budget, runtime)
        found = greedy(prob, lookahead)
        if best is None or (found is not None and (best[2] is None
                                                   or found[1] < best[2][1] - 1e-15)):
            best = (wl, prob, found, size)
    workload, problem, found, size = best  # type: ignore[misc]
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
    if size is not None:
        meta["tile_bytes"] = size
        meta["tiled_ops"] = sum(1 for inv in workload.invocations[:1] for op in inv.model.ops
                                if "tile" in op.attrs)
    meta.update(estimated_latency_s=est, lower_bound_s=lb,
                gap_to_lower_bound=(est - lb) / est if est else None,
                plan_time_s=time.perf_counter() - t0,
                streamed_units=len(plan.issue), weighted_units=len(problem.units))
    b.schedule.meta.update(meta)
    return b
