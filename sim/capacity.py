"""The smallest feasible budget of a policy: bisection on simulated feasibility."""

from __future__ import annotations

from typing import Any

from hwprofiles.schema import HardwareProfile
from sim.engine import simulate
from sim.policies import plan
from workloads.workload import Workload


def feasible(policy: str, workload: Workload, profile: HardwareProfile, budget: int,
             **options: Any) -> bool:
    """Does `policy` complete `workload` within `budget` bytes?"""
    s = plan(policy, workload, profile, budget, **options)
    return simulate(s, profile, budget=budget, record_trace=False).metrics.feasible


def min_feasible_budget(policy: str, workload: Workload, profile: HardwareProfile,
                        rel_tol: float = 0.005, **options: Any) -> int:
    """Smallest budget (within `rel_tol`) at which `policy` completes `workload`.

    The upper end is the policy's peak memory with no budget; the lower end the largest
    single load, which must fit at once.
    """
    unconstrained = simulate(plan(policy, workload, profile, None, **options), profile,
                             record_trace=False).metrics.peak_memory_bytes
    lo = max([s.bytes for s in plan(policy, workload, profile, unconstrained, **options).loads]
             + [1]) - 1  # infeasible
    hi = unconstrained
    if not feasible(policy, workload, profile, hi, **options):
        hi = 2 * hi  # memory gating can need slack above the free-running peak
    while hi - lo > max(1, int(hi * rel_tol)):
        mid = (lo + hi) // 2
        if feasible(policy, workload, profile, mid, **options):
            hi = mid
        else:
            lo = mid
    return hi
