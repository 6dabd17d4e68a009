"""Choosing a policy's knob by simulation: the candidate depths to try and the engine's verdict
on each (one timing model: the engine that runs the schedule scores it)."""

from __future__ import annotations

from hwprofiles.runtime import RuntimeProfile
from hwprofiles.schema import HardwareProfile
from sim.policies.builder import Builder

EXHAUSTIVE_DEPTHS = 64  # every candidate depth up to this many, then a grid


def depth_grid(depths: list[int], exhaustive: int = EXHAUSTIVE_DEPTHS) -> list[int]:
    """`depths` (ascending) if there are at most `exhaustive`, else the first eight, the powers
    of two and the last."""
    if len(depths) <= exhaustive:
        return list(depths)
    return sorted(set(depths[:8]) | {d for d in depths if d & (d - 1) == 0} | {depths[-1]})


def simulated(b: Builder, profile: HardwareProfile, budget: int | None,
              runtime: RuntimeProfile | None) -> tuple[float, int]:
    """(latency, peak memory) of `b`'s schedule on the engine; infinite latency if it does not
    complete within `budget`."""
    from sim.engine import simulate

    m = simulate(b.schedule, profile, budget=budget, record_trace=False, runtime=runtime).metrics
    return (m.latency_s if m.feasible else float("inf")), m.peak_memory_bytes
