"""Capacity search: the smallest memory budget at which a policy meets a latency target.

Bisection between the policy's smallest feasible budget and the full footprint (everything
resident). Latency is non-increasing in the budget only approximately (a planner may choose a
different plan at each budget), so the search bisects on the predicate "feasible and latency
<= target" and reports the budget it found together with the latency measured there: the
predicate holds at the reported budget and failed just below it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from hwprofiles.runtime import RuntimeProfile
from hwprofiles.schema import HardwareProfile
from hwprofiles.units import format_bytes, format_time
from workloads.workload import Workload

REL_TOL = 0.01  # stop when the bracket is within 1 % of its upper end


@dataclass
class CapacityResult:
    """Outcome of one capacity search (sizes in bytes, times in seconds)."""

    policy: str
    target_s: float
    met: bool
    budget_bytes: int | None  # smallest budget found that meets the target (None: unreachable)
    latency_s: float | None  # latency at budget_bytes
    best_latency_s: float | None  # best latency seen, at most the full footprint
    min_feasible_bytes: int | None
    full_footprint_bytes: int
    evaluations: int
    probes: list[tuple[int, float | None]] = field(default_factory=list)  # (budget, latency)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def message(self) -> str:
        """One line for the CLI."""
        if self.error:
            return f"{self.policy}: {self.error}"
        if self.met:
            return (f"{self.policy}: {format_bytes(self.budget_bytes or 0)} "
                    f"({self.budget_bytes} bytes) meets {format_time(self.target_s)} with a "
                    f"latency of {format_time(self.latency_s or 0.0)}")
        best = "no feasible run" if self.best_latency_s is None else format_time(self.best_latency_s)
        return (f"{self.policy}: cannot meet {format_time(self.target_s)} even with everything "
                f"resident ({format_bytes(self.full_footprint_bytes)}); best achievable latency "
                f"is {best}")


def latency_at(policy: str, workload: Workload, profile: HardwareProfile, budget: int | None,
               runtime: RuntimeProfile | None = None, budget_scope: str = "total",
               engine: str = "auto",
               **options: Any) -> float | None:
    """Simulated latency of `policy` at `budget`, or None if it does not complete."""
    from sim import plan, simulate
    from sim.errors import SimError

    try:
        s = plan(policy, workload, profile, budget, runtime, budget_scope, **options)
    except SimError:
        if budget is None:
            raise
        return None
    m = simulate(s, profile, budget=budget, record_trace=False, runtime=runtime,
                 engine=engine).metrics
    return m.latency_s if m.feasible else None


def full_footprint(policy: str, workload: Workload, profile: HardwareProfile,
                   runtime: RuntimeProfile | None = None, budget_scope: str = "total",
                   engine: str = "auto", **options: Any) -> int:
    """Budget at which everything can stay resident: preload's peak (of weights + staging for a
    weights-scope budget), or the policy's own unconstrained peak if that is larger; never more
    than the OS lets one app hold."""
    from sim import plan, simulate

    peaks = []
    for p, o in (("preload", {}), (policy, options)):
        m = simulate(plan(p, workload, profile, None, runtime, budget_scope, **o), profile,
                     record_trace=False, runtime=runtime, engine=engine).metrics
        peaks.append(m.peak_memory_bytes if budget_scope == "total" else m.peak_weight_bytes)
    return min(max(peaks), profile.memory_limit())


def search_capacity(policy: str, workload: Workload, profile: HardwareProfile, target_s: float,
                    rel_tol: float = REL_TOL, runtime: RuntimeProfile | None = None,
                    budget_scope: str = "total", engine: str = "auto",
                    **options: Any) -> CapacityResult:
    """Smallest budget (within `rel_tol`) at which `policy` runs `workload` in <= `target_s`."""
    from sim.capacity import min_feasible_budget

    probes: list[tuple[int, float | None]] = []

    def probe(b: int) -> float | None:
        lat = latency_at(policy, workload, profile, b, runtime, budget_scope, engine,
                         **options)
        probes.append((b, lat))
        return lat

    def ok(lat: float | None) -> bool:
        return lat is not None and lat <= target_s

    hi = full_footprint(policy, workload, profile, runtime, budget_scope, engine, **options)
    lo = min(min_feasible_budget(policy, workload, profile, runtime=runtime, engine=engine,
                                 budget_scope=budget_scope, **options), hi)
    hi_lat = probe(hi)
    seen = [lat for _, lat in probes if lat is not None]
    if not ok(hi_lat):
        unbounded = latency_at(policy, workload, profile, None, runtime, budget_scope, engine,
                               **options)
        best = min([*seen, *([unbounded] if unbounded is not None else [])], default=None)
        return CapacityResult(policy, target_s, False, None, None, best, lo, hi, len(probes),
                              probes)
    lo_lat = probe(lo)
    if ok(lo_lat):
        return CapacityResult(policy, target_s, True, lo, lo_lat, _best(probes), lo, hi,
                              len(probes), probes)
    bad, good, good_lat = lo, hi, hi_lat
    while good - bad > max(1, int(good * rel_tol)):
        mid = (bad + good) // 2
        lat = probe(mid)
        if ok(lat):
            good, good_lat = mid, lat
        else:
            bad = mid
    return CapacityResult(policy, target_s, True, good, good_lat, _best(probes), lo, hi,
                          len(probes), probes)


def _best(probes: list[tuple[int, float | None]]) -> float | None:
    lats = [lat for _, lat in probes if lat is not None]
    return min(lats) if lats else None
