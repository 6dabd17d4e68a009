"""Choosing a policy's knob by simulation: the candidate depths to try and the executors' verdict
on each (one timing model: what runs the schedule scores it)."""

from __future__ import annotations

from collections.abc import Callable

from hwprofiles.runtime import RuntimeProfile
from hwprofiles.schema import HardwareProfile
from sim.flow import LoadFlow
from sim.policies.builder import Builder
from sim.schedule import Compute, Free, Load, Schedule

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


def load_peak(flow: LoadFlow, keep_files: bool) -> int:
    """The most bytes one load holds at once over its stages (a staging buffer and its
    destination together during a copy or transform); `keep_files`: the runtime keeps its host
    file copies until initialisation ends (counted as kept throughout)."""
    cur = peak = 0
    for seg in flow.segments:
        cur += sum(b for _, b in seg.request)
        peak = max(peak, cur)
        for action in seg.post:
            if action[0] == "free":
                cur -= action[2]
            elif action[0] == "file" and not keep_files:
                cur -= action[1]
    return peak


def fits_at_any_timing(schedule: Schedule, profile: HardwareProfile, budget: int | None,
                       runtime: RuntimeProfile | None, activations: list[int] | None) -> bool:
    """Whether a layer-window schedule (the load of weighted layer j waits for layer j - depth
    to finish and free its weights) fits `budget` whatever the timing, so that no request ever
    waits. Once weighted kernel m has finished and freed its weights, the loads holding memory
    are among those its window has let in (first used at most m + depth) and not yet released
    (freed after a later kernel), each at most at its own peak; `activations` (per kernel, in
    order; None where the budget does not count them) adds the live activations of the kernels
    that may run meanwhile. A depth that fits only at the nominal timing can wait forever on a
    device that reads faster than the profile says: a load first in line for memory that only
    steps queued behind it would free."""
    from sim.flow import prepare
    from sim.hardware import IDEAL

    if budget is None:
        return True
    depth = schedule.meta["depth"]
    runtime = runtime or IDEAL
    flows = prepare(schedule, profile, runtime).loads
    keep = runtime.host_copy == "until_init"
    owner: dict[str, int] = {}
    first: dict[int, int] = {}  # load -> weighted kernels finished before its first user
    last: dict[int, int] = {}  # load -> the weighted kernel its free waits for
    position: dict[int, int] = {}
    finished: list[int] = []  # per kernel: weighted kernels finished before it starts
    for st in schedule.steps:
        if isinstance(st, Load):
            for t in st.tensors:
                owner[t] = st.id
        elif isinstance(st, Compute):
            finished.append(len(position))
            if st.weights:
                for t in st.weights:
                    first.setdefault(owner[t], len(position))
                position[st.id] = len(position)
        elif isinstance(st, Free):
            end = max((position[c] for c in st.after if c in position), default=-1)
            for t in st.tensors:
                last[owner[t]] = max(last.get(owner[t], -1), end)
    n = len(position)
    # index m + 1 for m = -1 .. n - 1: the last weighted kernel whose window marker has fired;
    # its free then has too (frees follow their kernels in order), so the loads holding memory
    # are those first used at most m + depth and released by a kernel after m
    held = [0] * (n + 2)
    for lid, start in first.items():
        end = last.get(lid, -1)
        end = n if end < 0 else end
        lo, hi = max(-1, start - depth), end - 1
        if lo <= hi:
            peak = load_peak(flows[lid], keep)
            held[lo + 1] += peak
            held[hi + 2] -= peak
    live = [0] * (n + 2)  # the kernels that may run meanwhile: m + 1 .. m + 3 finished before
    if activations is not None:
        per = activations if len(activations) == len(finished) else \
            [max(activations, default=0)] * len(finished)
        for f, a in zip(finished, per, strict=True):
            for m in range(f - 3, f):
                if -1 <= m < n:
                    live[m + 1] = max(live[m + 1], a)
    run = worst = 0
    for i in range(n + 1):
        run += held[i]
        worst = max(worst, run + live[i])
    return worst <= budget


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


def fastest_robust_depth(n: int, score: Callable[[int], tuple[float, int]],
                         robust: Callable[[int], bool]) -> tuple[int, int, int]:
    """The fastest candidate depth (by `score`, least memory among equals) that `robust` accepts
    (depth 1 runs one layer at a time, so it needs no check); returns (depth, candidates
    scored, faster candidates rejected as fitting the budget only at the nominal timing)."""
    scored: dict[int, tuple[float, int]] = {}

    def keep(d: int) -> tuple[float, int]:
        scored[d] = score(d)
        return scored[d]

    fastest_depth(n, keep)
    ranked = sorted(scored, key=lambda d: (*scored[d], d))
    for rejected, d in enumerate(ranked):
        if scored[d][0] == float("inf"):
            break
        if d == 1 or robust(d):
            return d, len(scored), rejected
    return ranked[0], len(scored), 0
