"""The memory pool: a budget that every allocation waits on, accounted by category.

Requests are granted strictly in order of (priority, arrival): a waiting request blocks every
later one of the same or lower priority, as a runtime that allocates in issue order would.
Computes' activations get priority over loads, so prefetching never starves the op that runs
now. Usage is recorded as a step function of time (one row per instant, the state at its end)
for peaks and time averages: several changes at one instant count as one, so a release and an
allocation at the same moment never make a peak that existed for no time at all (the engine
also samples after each grant, so what a step allocates counts even when what it releases in
consequence goes at the same instant).

`BudgetPool` is the clock-agnostic core (the OpenCL replay drives it with host time, granting
at once what fits); `MemoryPool` is the SimPy engine's face: requests made during an instant
are granted together at its end, in order of (priority, time asked, step, segment).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import simpy

from sim.schedule import Compute, Step

CATEGORIES = ("weights", "staging", "activations", "workspace", "kv")
# what a budget caps: every category, or weights + staging (the papers' parameter memory)
SCOPE_CATEGORIES = {"total": CATEGORIES, "weights": ("weights", "staging")}
PRIO_COMPUTE = 0
PRIO_LOAD = 1


@dataclass(order=True)
class Ticket:
    """One allocation request; `granted` flips (and `on_grant` runs) once it fits the budget."""

    priority: int
    seq: int
    parts: dict[str, int] = field(compare=False)
    what: str = field(compare=False, default="")
    on_grant: Callable[[], object] | None = field(compare=False, default=None, repr=False)
    granted: bool = field(compare=False, default=False)

    @property
    def nbytes(self) -> int:
        return sum(self.parts.values())


class Peaks:
    """Peak statistics over end-of-instant memory rows (time, total, *CATEGORIES)."""

    def __init__(self) -> None:
        self.total = 0
        self.row: tuple = (0.0, 0, 0, 0, 0, 0, 0)  # the first row with the largest total
        self.by_cat = [0] * len(CATEGORIES)
        self.weights_staging = 0

    def add(self, row: tuple) -> None:
        if row[1] > self.total:
            self.total = row[1]
            self.row = row
        by_cat = self.by_cat
        for k in range(len(CATEGORIES)):
            if row[2 + k] > by_cat[k]:
                by_cat[k] = row[2 + k]
        ws = row[2] + row[3]
        if ws > self.weights_staging:
            self.weights_staging = ws


class BudgetPool:
    """Budget-enforcing byte accounting by category with a usage timeline (time from `clock`).

    `used` is what the schedule holds (the budget gates it). With a page cache, clean weight
    pages the OS has evicted (`evicted`) still belong to their mapping but not to physical
    memory: peaks, averages and the timeline are physical (`used - evicted`). `limit` is the OS
    limit on physical memory: past it `reclaim` (a page cache's eviction) runs first, and what it
    cannot bring back under the limit is recorded as `oom` (time, bytes): the app is killed.
    `scope` says which categories the budget caps (`SCOPE_CATEGORIES`); the others are granted
    at once, still counted in peaks and averages."""

    def __init__(self, budget: int | None, clock: Callable[[], float], limit: int | None = None,
                 scope: str = "total"):
        self.budget = budget
        self.gated = frozenset(SCOPE_CATEGORIES[scope])
        self.all_gated = scope == "total"  # the common case: every byte counts
        self.used_gated = 0  # the bytes the budget caps
        self.clock = clock
        self.limit = limit
        self.used = 0
        self.evicted = 0
        self.by_cat = dict.fromkeys(CATEGORIES, 0)
        self.waiting: list[Ticket] = []
        self.reclaim: Callable[[int], None] | None = None
        self.oom: tuple[float, int] | None = None
        self._seq = 0
        self._peaks = Peaks()  # over rows of instants that have ended
        # timeline: (time, total, weights, staging, activations, workspace, kv); the last row is
        # the instant in progress
        self.timeline: list[tuple[float, ...]] = [(0.0, 0, 0, 0, 0, 0, 0)]

    @property
    def physical(self) -> int:
        return self.used - self.evicted

    def _final(self) -> Peaks:
        """Peaks including the instant in progress."""
        p = Peaks()
        done = self._peaks
        p.total, p.row, p.by_cat, p.weights_staging = (done.total, done.row, list(done.by_cat),
                                                       done.weights_staging)
        p.add(self.timeline[-1])
        return p

    @property
    def peak(self) -> int:
        return self._final().total

    @property
    def peak_by_cat(self) -> dict[str, int]:
        return dict(zip(CATEGORIES, self._final().by_cat, strict=True))

    @property
    def at_peak(self) -> dict[str, int]:
        """The categories at the (first) instant of `peak`."""
        return dict(zip(CATEGORIES, self._final().row[2:], strict=True))

    @property
    def peak_weights_staging(self) -> int:
        return self._final().weights_staging

    def _changed(self) -> None:
        """Apply the OS limit and record the timeline after any change."""
        if self.limit is not None and self.physical > self.limit:
            if self.reclaim is not None:
                self.reclaim(self.physical - self.limit)
            if self.physical > self.limit and self.oom is None:
                self.oom = (self.clock(), self.physical)
        cats = self.by_cat
        row = (self.clock(), self.physical, cats["weights"] - self.evicted, cats["staging"],
               cats["activations"], cats["workspace"], cats["kv"])
        timeline = self.timeline
        if timeline[-1][0] == row[0]:
            timeline[-1] = row
        else:
            self._peaks.add(timeline[-1])
            timeline.append(row)

    def _grant(self, t: Ticket) -> None:
        for category, nbytes in t.parts.items():
            self.used += nbytes
            self.by_cat[category] += nbytes
        self.used_gated += self.need(t.parts)
        self._changed()
        self._done(t)

    @staticmethod
    def _done(t: Ticket) -> None:
        t.granted = True
        if t.on_grant is not None:
            t.on_grant()

    def gated_bytes(self, parts: dict[str, int]) -> int:
        """The bytes of `parts` that the budget caps."""
        return sum(n for c, n in parts.items() if c in self.gated)

    def need(self, parts: dict[str, int]) -> int:
        """What a request of `parts` takes from the budget."""
        return sum(parts.values()) if self.all_gated else self.gated_bytes(parts)

    def fits(self, need: int) -> bool:
        """Whether `need` more budgeted bytes fit."""
        return self.budget is None or self.used_gated + need <= self.budget

    def request(self, parts: dict[str, int], priority: int = PRIO_LOAD, what: str = "",
                on_grant: Callable[[], object] | None = None) -> Ticket:
        """Ask for bytes of several categories at once (granted all together or not at all);
        granted now if nothing waits and they fit."""
        self._seq += 1
        t = Ticket(priority, self._seq, {c: b for c, b in parts.items() if b > 0}, what, on_grant)
        if t.nbytes <= 0:
            self._done(t)
        elif not self.waiting and self.fits(self.need(t.parts)):
            self._grant(t)
        else:
            heapq.heappush(self.waiting, t)
            self._drain()
        return t

    def free(self, nbytes: int, category: str) -> None:
        if nbytes <= 0:
            return
        self.used -= nbytes
        self.by_cat[category] -= nbytes
        if category in self.gated:
            self.used_gated -= nbytes
        self._changed()
        self._drain()

    def move(self, nbytes: int, src: str, dst: str) -> None:
        """Re-label `nbytes` from one category to another (a staging buffer that becomes a weight)."""
        self.by_cat[src] -= nbytes
        self.by_cat[dst] += nbytes
        self.used_gated += nbytes * ((dst in self.gated) - (src in self.gated))
        self._changed()

    def restore(self, nbytes: int) -> None:
        """Evicted weight pages faulted back into physical memory."""
        self.evicted -= nbytes
        self._changed()

    def _drain(self) -> None:
        while self.waiting and self.fits(self.need(self.waiting[0].parts)):
            self._grant(heapq.heappop(self.waiting))

    @property
    def blocked(self) -> list[tuple[str, int]]:
        """What is still waiting for memory: (description, bytes), head first."""
        return [(r.what, r.nbytes) for r in sorted(self.waiting)]

    def time_average(self, end: float) -> dict[str, float]:
        """Time-averaged bytes in use, total and by category, over [0, end]."""
        return time_average(self.timeline, end)


class PreallocatedPool:
    """Stands in for the pool of a load into a schedule's preallocated buffers (taken from the
    budget once, at the start): every request is granted at once, nothing is counted."""

    def request(self, parts: dict[str, int], priority: int = PRIO_LOAD, what: str = "",
                on_grant: Callable[[], object] | None = None) -> Ticket:
        t = Ticket(priority, 0, dict(parts), what, on_grant)
        BudgetPool._done(t)
        return t

    def free(self, nbytes: int, category: str) -> None:
        pass

    def move(self, nbytes: int, src: str, dst: str) -> None:
        pass


PREALLOCATED = PreallocatedPool()


def buffer_parts(buffers: dict[str, dict]) -> dict[str, int]:
    """Bytes per category of a schedule's preallocated buffers."""
    parts: dict[str, int] = {}
    for buf in buffers.values():
        parts[buf["category"]] = parts.get(buf["category"], 0) + int(buf["bytes"])
    return parts


def time_average(timeline: list[tuple[float, ...]], end: float) -> dict[str, float]:
    """Time-averaged bytes in use, total and by category, over [0, end], of a timeline of
    end-of-instant rows (time, total, *CATEGORIES)."""
    cols = ("total", *CATEGORIES)
    if end <= 0:
        return dict.fromkeys(cols, 0.0)
    rows = np.asarray(timeline, dtype=np.float64)
    times = np.append(rows[:, 0], end)
    dt = np.minimum(times[1:], end) - times[:-1]
    keep = dt > 0
    acc = (rows[keep, 1:] * dt[keep, None]).sum(axis=0)
    return {c: float(v) / end for c, v in zip(cols, acc, strict=True)}


class MemoryPool(BudgetPool):
    """The pool inside the SimPy engine: requests wait for the end of the instant they are made
    in (`Engine` calls `grant` then), and are granted in order of (priority, time asked, step,
    segment) while the head fits; a request that does not fit blocks every later one of the same
    or lower priority."""

    def __init__(self, env: simpy.Environment, budget: int | None, limit: int | None = None,
                 on_pending: Callable[[], None] | None = None, scope: str = "total"):
        super().__init__(budget, lambda: env.now, limit, scope)
        self.env = env
        self.on_pending = on_pending  # asks the engine for an end-of-instant grant pass
        # (priority, time, step, segment, budgeted bytes, parts, callback)
        self.queue: list[tuple] = []

    def submit(self, parts: tuple[tuple[str, int], ...], priority: int, step: int,
               segment: int, callback: Callable[[], object]) -> None:
        """Ask for `parts` together; `callback` runs when they are granted."""
        need = sum([b for c, b in parts if self.all_gated or c in self.gated])
        heapq.heappush(self.queue, (priority, self.env.now, step, segment, need, parts,
                                    callback))
        if self.on_pending is not None:
            self.on_pending()

    def free(self, nbytes: int, category: str) -> None:
        if nbytes <= 0:
            return
        self.used -= nbytes
        self.by_cat[category] -= nbytes
        if category in self.gated:
            self.used_gated -= nbytes
        self._changed()
        if self.queue and self.on_pending is not None:
            self.on_pending()

    def grant(self) -> None:
        """Grant waiting requests in order while the head fits (their callbacks run at once)."""
        q = self.queue
        budget = self.budget
        while q and (budget is None or self.used_gated + q[0][4] <= budget):
            _, _, _, _, need, parts, callback = heapq.heappop(q)
            nbytes = sum([b for _, b in parts])
            if nbytes > 0:
                by_cat = self.by_cat
                for category, b in parts:
                    by_cat[category] += b
                self.used += nbytes
                self.used_gated += need
                self._changed()
                self._peaks.add(self.timeline[-1])  # a grant's bytes count before any release
            callback()

    def sample(self) -> None:
        """Count the state now in the peaks (the end of a grant pass: what a stage allocated
        counts even when the stage that releases it takes no time)."""
        self._peaks.add(self.timeline[-1])

    @property
    def blocked_steps(self) -> list[tuple[int, int]]:
        """(step, bytes) still waiting for memory, head first."""
        return [(r[2], r[4]) for r in sorted(self.queue, key=lambda r: r[:4])]


class Activations:
    """Activation liveness of a schedule: an op's output is freed once its last consumer has
    run (at once if it has none), its workspace when it ends. Computes end in list order (one
    in-order GPU queue), so what each one releases is fixed in advance. Shared by the engine,
    the evaluator and the replay."""

    def __init__(self, steps: list[Step]):
        consumers: dict[int, int] = {}  # compute id -> consumers still to run
        computes = [st for st in steps if type(st) is Compute]
        for st in computes:
            consumers.setdefault(st.id, 0)
            for i in st.inputs:
                consumers[i] = consumers.get(i, 0) + 1
        # per compute: (activation bytes, workspace bytes) freed when it ends
        self.freed: dict[int, tuple[int, int]] = {}
        for st in computes:
            act = 0
            for i in st.inputs:
                consumers[i] -= 1
                if consumers[i] == 0:
                    act += steps[i].output_bytes  # type: ignore[union-attr]
            if consumers[st.id] == 0:
                act += st.output_bytes
            self.freed[st.id] = (act, st.workspace_bytes)

    def release(self, pool: BudgetPool, st: Compute) -> None:
        """Return what compute `st` no longer needs to `pool` once it has finished."""
        act, ws = self.freed[st.id]
        pool.free(ws, "workspace")
        pool.free(act, "activations")
