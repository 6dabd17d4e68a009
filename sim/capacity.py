"""The smallest feasible budget of a policy: bisection on simulated feasibility between an
analytical floor and a verified ceiling."""

from __future__ import annotations

from typing import Any

from hwprofiles.schema import HardwareProfile
from sim.engine import simulate
from sim.planner.plan import just_in_time, memory_profile
from sim.planner.problem import build_problem
from sim.policies import plan
from workloads.workload import Workload


def feasible(policy: str, workload: Workload, profile: HardwareProfile, budget: int,
             **options: Any) -> bool:
    """Does `policy` complete `workload` within `budget` bytes?"""
    s = plan(policy, workload, profile, budget, **options)
    return simulate(s, profile, budget=budget, record_trace=False).metrics.feasible


def working_set_floor(workload: Workload, profile: HardwareProfile) -> int:
    """No schedule fits below this: while an op runs, its weights and activations are in memory."""
    p = build_problem(workload, profile, None)
    need = list(p.act_bytes)
    for u in p.units:
        need[u.pos] += sum(t.nbytes for t in dict.fromkeys(p.seq[u.pos].op.weights))
    return max(need, default=1)


def min_feasible_budget(policy: str, workload: Workload, profile: HardwareProfile,
                        rel_tol: float = 0.005, **options: Any) -> int:
    """Smallest budget (within `rel_tol`) at which `policy` completes `workload`."""
    if policy == "flashmem":
        # whether any plan fits does not depend on how hard the solver optimises it
        options = {**options, "solver": "greedy"}
    lo = working_set_floor(workload, profile) - 1  # infeasible for every policy
    hi = None
    if policy == "flashmem":
        # loading each layer just in time needs the least memory of any flashmem plan
        p = build_problem(workload, profile, None)
        jit = max(memory_profile(p, just_in_time(p)), default=1)
        if feasible(policy, workload, profile, jit, **options):
            hi = jit
    if hi is None:
        hi = simulate(plan(policy, workload, profile, None, **options), profile,
                      record_trace=False).metrics.peak_memory_bytes
        while not feasible(policy, workload, profile, hi, **options):
            lo, hi = hi, 2 * hi  # memory gating can need slack above the free-running peak
    while hi - lo > max(1, int(hi * rel_tol)):
        mid = (lo + hi) // 2
        if feasible(policy, workload, profile, mid, **options):
            hi = mid
        else:
            lo = mid
    return hi
