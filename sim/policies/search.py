"""Choosing a policy's knob by simulation: the candidate depths to try and the executors' verdict
on each (one timing model: what runs the schedule scores it)."""

from __future__ import annotations

from collections.abc import Callable

from hwprofiles.runtime import RuntimeProfile
from hwprofiles.schema import HardwareProfile
from sim.policies.builder import Builder

EXHAUSTIVE_DEPTHS = 64  # try every depth up to this many; beyond, a doubling grid
PATIENCE = 2  # grid candidates in a row that do not beat the best before the search stops


def depth_grid(n: int, exhaustive: int = EXHAUSTIVE_DEPTHS) -> list[int]:
    """Depths 1..n if n <= `exhaustive`, else 1, 2, 4, 8, ... and n."""
    if n <= exhaustive:
        return list(range(1, n + 1))
    out, d = [], 1
    while d < n:
        out.append(d)
        d *= 2
    return [*out, n]


def simulated(b: Builder, profile: HardwareProfile, budget: int | None,
              runtime: RuntimeProfile | None) -> tuple[float, int]:
    """(latency, peak memory) of `b`'s schedule as the executors run it (the one-pass evaluator,
    or the engine where only it is exact: the same numbers); infinite latency if it does not
    complete within `budget`."""
    from sim.execute import simulate

    m = simulate(b.schedule, profile, budget=budget, record_trace=False, runtime=runtime).metrics
    return (m.latency_s if m.feasible else float("inf")), m.peak_memory_bytes


def fastest_depth(n: int, score: Callable[[int], tuple[float, int]]
                  ) -> tuple[int, float, int, int]:
    """The depth in 1..n with the lowest (latency, peak memory) by `score`: every depth when
    n <= EXHAUSTIVE_DEPTHS, else the doubling grid, stopping after PATIENCE candidates in a
    row that do not improve; returns (depth, latency, peak, candidates tried)."""
    best: tuple[float, int, int] | None = None
    stale = tried = 0
    exhaustive = n <= EXHAUSTIVE_DEPTHS
    for d in depth_grid(n):
        latency, peak = score(d)
        tried += 1
        if best is None or (latency, peak) < best[:2]:
            improved = best is None or latency < best[0]
            best = (latency, peak, d)
            stale = 0 if improved else stale + 1
        else:
            stale += 1
        if not exhaustive and stale >= PATIENCE:
            break
    assert best is not None
    return best[2], best[0], best[1], tried
