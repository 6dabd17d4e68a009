"""A lower bound on the latency of any schedule of a workload at a budget.

Valid for every policy under the engine's model:
- all compute: every op runs once on one in-order GPU, at best weight-read efficiency;
- storage: every distinct weight is read at least once, and a reused tensor that cannot stay
  resident is read again for each reuse; which reloads are unavoidable is bounded by a
  fractional knapsack (keep the most reused bytes within budget - peak activations);
  reading B bytes takes at least read_time(B) (one contiguous read) — plus, without
  zero-copy, B / copy bandwidth on the copy unit;
- critical path: the first weighted op cannot start before its own weights are read, and the
  last weighted op cannot start before every read has finished.
"""

from __future__ import annotations

from hwprofiles.runtime import RuntimeProfile
from hwprofiles.schema import HardwareProfile
from hwprofiles.storage import read_time
from sim.hardware import IDEAL
from sim.lowering import lower
from sim.planner.problem import Problem, build_problem
from workloads.workload import Workload


def lower_bound(workload: Workload, profile: HardwareProfile, budget: int | None,
                problem: Problem | None = None, runtime: RuntimeProfile | None = None,
                budget_scope: str = "total") -> float:
    """Seconds no schedule of `workload` (as `runtime` lowers it) on `profile` within `budget`
    (of `budget_scope`) can beat (`problem`: the already extracted planning problem of the same
    inputs)."""
    if problem is None:
        rt = runtime or IDEAL
        problem = build_problem(lower(workload, rt), profile, budget, rt, budget_scope)
    p = problem
    compute = sum(p.best_compute_s)
    if not p.units:
        return compute
    must = sum(g.bytes for g in p.groups)
    reloads = sorted(((len(g.uses) - 1, g.bytes) for g in p.groups if len(g.uses) > 1),
                     reverse=True)
    cap = float("inf") if budget is None else max(0, budget - max(p.act_bytes, default=0))
    for uses, nbytes in reloads:
        kept = min(nbytes, cap)
        cap -= kept
        must += uses * (nbytes - kept)
    storage = read_time(profile.storage, int(must))
    if not profile.transfer.zero_copy:
        storage = max(storage, must / profile.transfer.host_to_gpu_bandwidth)
    first, last = p.units[0], p.units[-1]
    first_read = p.groups[first.group].read_s
    critical = max(first_read + sum(p.best_compute_s[first.pos:]),
                   storage + sum(p.best_compute_s[last.pos:]))
    return max(compute, storage, critical)
