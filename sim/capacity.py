"""The smallest feasible budget of a policy: bisection on simulated feasibility between an
analytical floor and a verified ceiling."""

from __future__ import annotations

from typing import Any

from hwprofiles.runtime import RuntimeProfile
from hwprofiles.schema import HardwareProfile
from hwprofiles.units import format_bytes
from sim.errors import InfeasibleBudget
from sim.execute import simulate
from sim.hardware import IDEAL
from sim.lowering import lower
from sim.planner.plan import just_in_time, memory_profile
from sim.planner.problem import Problem, build_problem
from sim.policies import plan
from workloads.workload import Workload


def feasible(policy: str, workload: Workload, profile: HardwareProfile, budget: int,
             runtime: RuntimeProfile | None = None, budget_scope: str = "total",
             engine: str = "auto", **options: Any) -> bool:
    """Does `policy` complete `workload` within `budget` bytes (with `runtime`; the budget
    capping `budget_scope`)?"""
    s = plan(policy, workload, profile, budget, runtime, budget_scope, **options)
    return simulate(s, profile, budget=budget, record_trace=False, runtime=runtime,
                    engine=engine).metrics.feasible


def working_set_floor(workload: Workload, profile: HardwareProfile,
                      runtime: RuntimeProfile | None = None, problem: Problem | None = None,
                      budget_scope: str = "total") -> int:
    """No schedule fits below this: while an op runs, its weights and (in a total budget)
    activations are in memory (`problem`: the planning problem of the same inputs, if already
    extracted)."""
    p = problem or build_problem(lower(workload, runtime or IDEAL), profile, None, runtime,
                                 budget_scope)
    need = list(p.act_bytes)
    for u in p.units:
        need[u.pos] += sum(t.nbytes for t in dict.fromkeys(p.seq[u.pos].op.weights))
    return max(need, default=1)


def policy_floor(policy: str, workload: Workload, profile: HardwareProfile,
                 runtime: RuntimeProfile | None = None, options: dict[str, Any] | None = None,
                 problem: Problem | None = None, budget_scope: str = "total") -> int:
    """No schedule `policy` makes fits below this. Policies that load whole tensors need the
    largest op's weights and activations at once (`working_set_floor`); flashmem, which reads
    lookups' rows and can split weights into tiles as small as it likes, needs the activations
    (with `tile="off"`, the largest op of the workload it streams)."""
    options = options or {}
    if policy != "flashmem":
        return working_set_floor(workload, profile, runtime, problem, budget_scope)
    from sim.policies.flashmem import streamed_workload

    keys = ("embedding", "routing", "routing_seed", "sparsity", "bundle", "predictor_rank",
            "kv_spill", "kv_block")
    chosen = {k: options[k] for k in keys if k in options}
    if chosen.get("kv_spill") == "auto":  # the least KV it may keep in memory: one block
        chosen["kv_spill"] = chosen.get("kv_block", 16)
    wl, _ = streamed_workload(lower(workload, runtime or IDEAL), **chosen)
    if options.get("tile", "auto") == "off":
        return working_set_floor(wl, profile, runtime, budget_scope=budget_scope)
    from sim.policies.flashmem import MIN_TILE

    # the activations, and the smallest tile (or whole weights, when smaller) of the op
    p = problem if problem is not None and problem.workload is wl else \
        build_problem(wl, profile, None, runtime, budget_scope)
    need = list(p.act_bytes)
    for u in p.units:
        need[u.pos] += min(p.groups[u.group].bytes, MIN_TILE)
    return max(need, default=1)


def min_feasible_budget(policy: str, workload: Workload, profile: HardwareProfile,
                        rel_tol: float = 0.005, runtime: RuntimeProfile | None = None,
                        engine: str = "auto", budget_scope: str = "total",
                        **options: Any) -> int:
    """Smallest budget (within `rel_tol`) at which `policy` completes `workload` (with `runtime`,
    the budget capping `budget_scope`); raises InfeasibleBudget when no budget does (the OS
    kills it at every size)."""
    if policy == "flashmem-opg":
        # its last fallbacks are flashmem's greedy and just-in-time plans: the same floor
        policy, options = "flashmem", {}
    if policy == "flashmem":
        # whether any plan fits does not depend on how hard the solver optimises it
        options = {**options, "solver": "greedy"}
    rt = runtime or IDEAL
    scope = budget_scope
    # infeasible for the policy
    lo = policy_floor(policy, workload, profile, rt, options, budget_scope=scope) - 1
    hi = None
    if policy == "flashmem":
        # loading each layer just in time needs the least memory of any flashmem plan
        p = build_problem(lower(workload, rt), profile, None, rt, scope)
        jit = max(memory_profile(p, just_in_time(p)), default=1)
        if feasible(policy, workload, profile, jit, rt, scope, engine, **options):
            hi = jit
    if hi is None:
        free = simulate(plan(policy, workload, profile, None, rt, scope, **options), profile,
                        record_trace=False, runtime=rt, engine=engine).metrics
        limit = profile.memory_limit()  # a budget above what the OS gives one app cannot help
        used = free.peak_memory_bytes if scope == "total" else free.peak_weight_bytes
        hi = min(used, limit)
        while not feasible(policy, workload, profile, hi, rt, scope, engine, **options):
            if hi >= limit:
                raise InfeasibleBudget(
                    f"{policy} cannot run {workload.name} on {profile.name} with runtime "
                    f"{rt.name} at any budget: it needs more than the {format_bytes(limit)} "
                    f"one app may hold ({free.error or 'the memory limit'})")
            # memory gating can need slack above the free-running peak
            lo, hi = hi, min(2 * hi, limit)
    while hi - lo > max(1, int(hi * rel_tol)):
        mid = (lo + hi) // 2
        if feasible(policy, workload, profile, mid, rt, scope, engine, **options):
            hi = mid
        else:
            lo = mid
    return hi
