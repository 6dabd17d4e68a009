"""A lower bound on the latency of any schedule of a workload at a budget.

Valid for every policy under the engine's model:
- all compute: every op runs once on one in-order GPU, at best weight-read efficiency;
- storage: every distinct weight is read at least once, and a reused tensor that cannot stay
  resident is read again for each reuse; which reloads are unavoidable is bounded by a
  fractional knapsack (keep the most reused bytes within budget - peak activations);
  reading B bytes takes at least read_time(B) (one contiguous read) — plus, without
  zero-copy, B / copy bandwidth on the copy unit; and, as every load must fit the budget, the
  contiguous bytes take at least ceil(bytes / budget) reads (a request latency each) while
  gathered rows are read a row at a time;
- critical path: a weighted op cannot start before the first read of every weight it and the
  ops before it use has finished (at least one request latency + those bytes / bandwidth), and
  the last weighted op of each invocation not before every read they need (each distinct
  weight once, plus the unavoidable reloads among them) has finished; after which it and
  every op after it still run;
- memory-limited prefetch: when op k starts, at most budget - activations(k) bytes of the
  distinct weights that ops k, k+1, ... still use can be in memory, so the rest is read after
  op k starts (every op before k has run), and the op that uses the last of it runs after.

Schedules may stream a weight in row tiles (workloads.streaming: an op whose weights' rows are
its output rows runs as partial kernels, each after its own tile), and read only the rows an
embedding lookup gathers: the bound is of the workload with its lookups reading rows, and an
op of a tileable kind counts as divisible: it may run all but an arbitrarily small last piece
before its last weight byte arrives (the terms above then add only the ops after it).
"""

from __future__ import annotations

import math

import numpy as np

from hwprofiles.runtime import RuntimeProfile
from hwprofiles.schema import HardwareProfile
from hwprofiles.storage import read_time
from sim.hardware import IDEAL
from sim.lowering import lower
from sim.planner.problem import Problem, build_problem
from workloads.streaming import TILEABLE, gather_rows
from workloads.workload import Workload


def lower_bound(workload: Workload, profile: HardwareProfile, budget: int | None,
                problem: Problem | None = None, runtime: RuntimeProfile | None = None,
                budget_scope: str = "total") -> float:
    """Seconds no schedule of `workload` (as `runtime` lowers it) on `profile` within `budget`
    (of `budget_scope`) can beat (`problem`: the already extracted planning problem of the same
    inputs)."""
    if problem is None:
        rt = runtime or IDEAL
        problem = build_problem(gather_rows(lower(workload, rt)), profile, budget, rt,
                                budget_scope)
    p = problem
    compute = sum(p.best_compute_s)
    if not p.units:
        return compute
    # ops k, k+1, ... still to run once unit u's last weight byte has arrived: from its own
    # op on, or (a divisible op) from the op after it
    after = np.concatenate((np.cumsum(p.best_compute_s[::-1])[::-1], [0.0]))
    arr = p.arrays
    tail = after[arr.unit_pos + divisible(p)]
    cap = float("inf") if budget is None else max(0, budget - max(p.act_bytes, default=0))
    must = _must_read(p, {g.gid: len(g.uses) for g in p.groups}, cap)
    storage = max(read_time(profile.storage, int(must)), reads_bound(p, profile, budget, must))
    if not profile.transfer.zero_copy:  # every byte is copied, at the faster of the two lines
        t = profile.transfer
        storage = max(storage, must / max(t.host_to_gpu_bandwidth,
                                          t.host_to_texture_bandwidth or 0.0))
    first = p.units[0]
    first_read = p.groups[first.group].read_s
    critical = first_read + float(tail[0]) if not divisible(p)[0] else 0.0
    # every weighted op waits for the first read of every weight it and earlier ops use (a
    # read of B bytes takes at least one request latency + B / bandwidth)
    first_use = np.zeros(len(p.units), dtype=np.int64)
    seen_at = np.full(len(p.groups), len(p.units), dtype=np.int64)
    np.minimum.at(seen_at, arr.unit_group, np.arange(len(p.units)))
    first_use[seen_at] = arr.group_bytes
    st = profile.storage
    need = st.request_latency + np.cumsum(first_use) / st.read_bandwidth
    critical = max(critical, float((need + tail).max()))
    # the last weighted op of each invocation waits for every read it and earlier ops need
    uses: dict[int, int] = {}
    lasts = {p.seq[u.pos].inv: u for u in p.units}
    ends = {u.index for u in lasts.values()}
    for u in p.units:
        uses[u.group] = uses.get(u.group, 0) + 1
        if u.index in ends:
            need = read_time(profile.storage, int(_must_read(p, uses, cap)))
            critical = max(critical, need + float(tail[u.index]))
    return max(compute, storage, critical, prefetch_bound(p, profile, budget))


def reads_bound(p: Problem, profile: HardwareProfile, budget: int | None, must: float
                ) -> float:
    """Storage time when every load must fit the budget: the contiguous bytes take at least
    ceil(bytes / budget) reads, each paying a request latency, and gathered rows are read a
    piece at a time (at best all of them in one load, requests `queue_depth` deep); `must`
    bytes in all cross the link."""
    st = profile.storage
    pieces = [(nbytes, r) for g in p.groups for _, nbytes, r in g.parts if r]
    gathered = sum(nbytes for nbytes, _ in pieces)
    rows = read_time(st, gathered, request_size=min(r for _, r in pieces)) if pieces else 0.0
    return rows + least_reads(p, budget) * st.request_latency + \
        (must - gathered) / st.read_bandwidth


def least_reads(p: Problem, budget: int | None) -> int:
    """Contiguous reads (not gathered rows) any schedule needs: every load fits the budget."""
    contiguous = sum(nbytes for g in p.groups for _, nbytes, r in g.parts if not r)
    if not contiguous:
        return 0
    return 1 if budget is None else math.ceil(contiguous / budget)


def divisible(p: Problem) -> np.ndarray:
    """Per unit: 1 where its op may run in row tiles (see the module docstring), else 0."""
    cache = p.__dict__.setdefault("_divisible", {})
    if "d" not in cache:
        cache["d"] = np.fromiter((p.seq[u.pos].op.kind in TILEABLE for u in p.units),
                                 dtype=np.int64, count=len(p.units))
    return cache["d"]


def _must_read(p: Problem, uses: dict[int, int], cap: float) -> float:
    """Bytes read at least, for groups used `uses[g]` times: each once, and again for every
    further use unless it stays resident (fractional knapsack of `cap` bytes, most reused
    first)."""
    must = sum(p.groups[g].bytes for g in uses)
    reloads = sorted(((n - 1, p.groups[g].bytes) for g, n in uses.items() if n > 1),
                     reverse=True)
    for n, nbytes in reloads:
        kept = min(nbytes, cap)
        cap -= kept
        must += n * (nbytes - kept)
    return must


def prefetch_bound(p: Problem, profile: HardwareProfile, budget: int | None) -> float:
    """The memory-limited prefetch term (see the module docstring); 0 without a budget."""
    if budget is None or not p.units:
        return 0.0
    arr = p.arrays
    pos, group = arr.unit_pos, arr.unit_group
    best = np.asarray(p.best_compute_s)
    before = np.concatenate(([0.0], np.cumsum(best)))  # compute of ops 0..k-1
    # distinct weight bytes used at or after each unit: a group counts at its last use
    last = np.zeros(len(p.groups), dtype=np.int64)
    last[group] = np.arange(len(pos))  # the last write wins: the group's last unit
    counted = np.zeros(len(pos), dtype=np.int64)
    counted[last] = arr.group_bytes
    ahead = np.cumsum(counted[::-1])[::-1]
    # the least an op using the last of the weights still runs after it: its kernel, or
    # (divisible) nothing
    own = np.where(divisible(p) > 0, 0.0, best[pos])
    least = np.minimum.accumulate(own[::-1])[::-1]
    late = ahead - (budget - arr.act[pos])
    k = np.flatnonzero(late > 0)
    if not k.size:
        return 0.0
    # reading B bytes takes at least one request latency + B / bandwidth
    st = profile.storage
    need = st.request_latency + late[k] / st.read_bandwidth
    return float((before[pos[k]] + need + least[k]).max())


def token_read_bound(workload: Workload, budget: int) -> float:
    """Bytes each decode step of an LLM generation must read at least: the distinct weights
    one step uses, less what can stay resident across steps (the budget less the largest
    activation footprint of the run); 0 if it has no decode step."""
    steps = [inv.model for inv in workload.invocations if inv.label.startswith("decode[")]
    if not steps:
        return 0.0
    act = max(workload.activation_profile(), default=0)
    return float(max(0, max(m.weight_bytes for m in steps) - (budget - act)))
