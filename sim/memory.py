"""The memory pool: a budget that every allocation waits on, accounted by category.

Requests are granted strictly in order of (priority, arrival): a waiting request blocks every
later one of the same or lower priority, as a runtime that allocates in issue order would.
Computes' activations get priority over loads, so prefetching never starves the op that runs
now. Usage is recorded as a step function of time for peaks and time averages.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import simpy

CATEGORIES = ("weights", "staging", "activations", "workspace", "kv")
PRIO_COMPUTE = 0
PRIO_LOAD = 1


@dataclass(order=True)
class _Request:
    priority: int
    seq: int
    nbytes: int = field(compare=False)
    parts: dict[str, int] = field(compare=False)
    event: simpy.Event = field(compare=False)
    what: str = field(compare=False, default="")


class MemoryPool:
    """Budget-enforcing allocator with per-category accounting and a usage timeline."""

    def __init__(self, env: simpy.Environment, budget: int | None):
        self.env = env
        self.budget = budget
        self.used = 0
        self.by_cat = dict.fromkeys(CATEGORIES, 0)
        self.peak = 0
        self.peak_by_cat = dict.fromkeys(CATEGORIES, 0)
        self._waiting: list[_Request] = []
        self._seq = 0
        # timeline: (time, total, weights, staging, activations, workspace, kv)
        self.timeline: list[tuple[float, ...]] = [(0.0, 0, 0, 0, 0, 0, 0)]

    def _record(self) -> None:
        row = (self.env.now, self.used, *self.by_cat.values())
        if self.timeline[-1][0] == row[0]:
            self.timeline[-1] = row
        else:
            self.timeline.append(row)

    def _grant(self, parts: dict[str, int]) -> None:
        for category, nbytes in parts.items():
            self.used += nbytes
            self.by_cat[category] += nbytes
            if self.by_cat[category] > self.peak_by_cat[category]:
                self.peak_by_cat[category] = self.by_cat[category]
        if self.used > self.peak:
            self.peak = self.used
        self._record()

    def fits(self, nbytes: int) -> bool:
        return self.budget is None or self.used + nbytes <= self.budget

    def alloc(self, nbytes: int, category: str, priority: int = PRIO_LOAD,
              what: str = "") -> simpy.Event:
        """Event that fires once `nbytes` of `category` are granted within the budget."""
        return self.alloc_parts({category: nbytes}, priority, what)

    def alloc_parts(self, parts: dict[str, int], priority: int = PRIO_LOAD,
                    what: str = "") -> simpy.Event:
        """One request for several categories at once (granted all together or not at all)."""
        ev = self.env.event()
        parts = {c: b for c, b in parts.items() if b > 0}
        nbytes = sum(parts.values())
        if nbytes <= 0:
            ev.succeed()
            return ev
        if not self._waiting and self.fits(nbytes):
            self._grant(parts)
            ev.succeed()
            return ev
        self._seq += 1
        heapq.heappush(self._waiting, _Request(priority, self._seq, nbytes, parts, ev, what))
        self._drain()
        return ev

    def free(self, nbytes: int, category: str) -> None:
        if nbytes <= 0:
            return
        self.used -= nbytes
        self.by_cat[category] -= nbytes
        self._record()
        self._drain()

    def move(self, nbytes: int, src: str, dst: str) -> None:
        """Re-label `nbytes` from one category to another (a staging buffer that becomes a weight)."""
        self.by_cat[src] -= nbytes
        self.by_cat[dst] += nbytes
        self.peak_by_cat[dst] = max(self.peak_by_cat[dst], self.by_cat[dst])
        self._record()

    def _drain(self) -> None:
        while self._waiting and self.fits(self._waiting[0].nbytes):
            req = heapq.heappop(self._waiting)
            self._grant(req.parts)
            req.event.succeed()

    @property
    def blocked(self) -> list[tuple[str, int]]:
        """What is still waiting for memory: (description, bytes), head first."""
        return [(r.what, r.nbytes) for r in sorted(self._waiting)]

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
