"""The memory pool: a budget that every allocation waits on, accounted by category.

Requests are granted strictly in order of (priority, arrival): a waiting request blocks every
later one of the same or lower priority, as a runtime that allocates in issue order would.
Computes' activations get priority over loads, so prefetching never starves the op that runs
now. Usage is recorded as a step function of time for peaks and time averages.

`BudgetPool` is the clock-agnostic core (the OpenCL replay drives it with host time);
`MemoryPool` is its SimPy face, whose requests are events.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

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
        self.used_gated = 0
        self.clock = clock
        self.limit = limit
        self.used = 0
        self.evicted = 0
        self.by_cat = dict.fromkeys(CATEGORIES, 0)
        self.peak = 0
        self.peak_by_cat = dict.fromkeys(CATEGORIES, 0)
        self.at_peak = dict.fromkeys(CATEGORIES, 0)  # the categories at the instant of `peak`
        self.peak_weights_staging = 0
        self.waiting: list[Ticket] = []
        self.reclaim: Callable[[int], None] | None = None
        self.oom: tuple[float, int] | None = None
        self._seq = 0
        # timeline: (time, total, weights, staging, activations, workspace, kv)
        self.timeline: list[tuple[float, ...]] = [(0.0, 0, 0, 0, 0, 0, 0)]

    @property
    def physical(self) -> int:
        return self.used - self.evicted

    def _changed(self, grew: Iterable[str] = ()) -> None:
        """Apply the OS limit, update peaks (of the categories in `grew`, the only ones that can
        have risen) and record the timeline after any change."""
        if self.limit is not None and self.used - self.evicted > self.limit:
            if self.reclaim is not None:
                self.reclaim(self.used - self.evicted - self.limit)
            if self.used - self.evicted > self.limit and self.oom is None:
                self.oom = (self.clock(), self.used - self.evicted)
        by, ev, peaks = self.by_cat, self.evicted, self.peak_by_cat
        weights = by["weights"] - ev
        for category in grew:
            v = weights if category == "weights" else by[category]
            if v > peaks[category]:
                peaks[category] = v
        total = self.used - ev
        if total > self.peak:
            self.peak = total
            self.at_peak = {**by, "weights": weights}
        if weights + by["staging"] > self.peak_weights_staging:
            self.peak_weights_staging = weights + by["staging"]
        row = (self.clock(), total, weights, by["staging"], by["activations"], by["workspace"],
               by["kv"])
        if self.timeline[-1][0] == row[0]:
            self.timeline[-1] = row
        else:
            self.timeline.append(row)

    def _grant(self, t: Ticket) -> None:
        for category, nbytes in t.parts.items():
            self.used += nbytes
            self.by_cat[category] += nbytes
        self.used_gated += t.nbytes if self.all_gated else self.gated_bytes(t.parts)
        self._changed(t.parts)
        self._done(t)

    @staticmethod
    def _done(t: Ticket) -> None:
        t.granted = True
        if t.on_grant is not None:
            t.on_grant()

    def gated_bytes(self, parts: dict[str, int]) -> int:
        """The bytes of `parts` that the budget caps."""
        return sum(n for c, n in parts.items() if c in self.gated)

    def fits(self, t: Ticket) -> bool:
        if self.budget is None:
            return True
        need = t.nbytes if self.all_gated else self.gated_bytes(t.parts)
        return self.used_gated + need <= self.budget

    def request(self, parts: dict[str, int], priority: int = PRIO_LOAD, what: str = "",
                on_grant: Callable[[], object] | None = None) -> Ticket:
        """Ask for bytes of several categories at once (granted all together or not at all);
        granted now if nothing waits and they fit."""
        self._seq += 1
        t = Ticket(priority, self._seq, {c: b for c, b in parts.items() if b > 0}, what, on_grant)
        if t.nbytes <= 0:
            self._done(t)
        elif not self.waiting and self.fits(t):
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
        self._changed((dst,))

    def restore(self, nbytes: int) -> None:
        """Evicted weight pages faulted back into physical memory."""
        self.evicted -= nbytes
        self._changed(("weights",))

    def _drain(self) -> None:
        while self.waiting and self.fits(self.waiting[0]):
            self._grant(heapq.heappop(self.waiting))

    @property
    def blocked(self) -> list[tuple[str, int]]:
        """What is still waiting for memory: (description, bytes), head first."""
        return [(r.what, r.nbytes) for r in sorted(self.waiting)]

    def time_average(self, end: float) -> dict[str, float]:
        """Time-averaged bytes in use, total and by category, over [0, end]."""
        cols = ("total", *CATEGORIES)
        acc = dict.fromkeys(cols, 0.0)
        if end <= 0:
            return acc
        rows = [*self.timeline, (end, *self.timeline[-1][1:])]
        for a, b in zip(rows, rows[1:], strict=False):
            dt = min(b[0], end) - a[0]
            if dt > 0:
                for i, c in enumerate(cols):
                    acc[c] += a[1 + i] * dt
        return {c: v / end for c, v in acc.items()}


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


class MemoryPool(BudgetPool):
    """The pool inside a SimPy simulation: requests are events that fire when granted."""

    def __init__(self, env: simpy.Environment, budget: int | None, limit: int | None = None,
                 scope: str = "total"):
        super().__init__(budget, lambda: env.now, limit, scope)
        self.env = env

    def alloc(self, nbytes: int, category: str, priority: int = PRIO_LOAD,
              what: str = "") -> simpy.Event:
        """Event that fires once `nbytes` of `category` are granted within the budget."""
        return self.alloc_parts({category: nbytes}, priority, what)

    def alloc_parts(self, parts: dict[str, int], priority: int = PRIO_LOAD,
                    what: str = "") -> simpy.Event:
        """Event that fires once all `parts` are granted together."""
        ev = self.env.event()
        self.request(parts, priority, what, on_grant=ev.succeed)
        return ev


class Activations:
    """Activation liveness of a schedule: an op's output is freed once its last consumer has
    run (at once if it has none), its workspace when it ends. Shared by engine and replay."""

    def __init__(self, steps: list[Step]):
        self.steps = steps
        self.consumers: dict[int, int] = {}  # compute id -> consumers still to run
        for st in steps:
            if isinstance(st, Compute):
                self.consumers.setdefault(st.id, 0)
                for i in st.inputs:
                    self.consumers[i] = self.consumers.get(i, 0) + 1

    def release(self, pool: BudgetPool, st: Compute) -> None:
        """Return what compute `st` no longer needs to `pool` once it has finished."""
        pool.free(st.workspace_bytes, "workspace")
        for i in st.inputs:
            self.consumers[i] -= 1
            if self.consumers[i] == 0:
                pool.free(self.steps[i].output_bytes, "activations")  # type: ignore[union-attr]
        if self.consumers[st.id] == 0:
            pool.free(st.output_bytes, "activations")
