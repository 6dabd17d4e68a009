"""The host-side memory budget of a replay: same grant order as the simulator's pool (priority,
then arrival; computes before loads), accounted by category, with a usage timeline."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

CATEGORIES = ("weights", "staging", "activations", "workspace", "kv")
PRIO_COMPUTE = 0
PRIO_LOAD = 1


@dataclass(order=True)
class Ticket:
    """One allocation request; `granted` flips once the bytes fit the budget."""

    priority: int
    seq: int
    parts: dict[str, int] = field(compare=False)
    granted: bool = field(compare=False, default=False)

    @property
    def nbytes(self) -> int:
        return sum(self.parts.values())


class HostPool:
    """Budget-enforcing byte accounting (no real allocation happens here)."""

    def __init__(self, budget: int | None, clock):
        self.budget = budget
        self.clock = clock
        self.used = 0
        self.peak = 0
        self.by_cat = dict.fromkeys(CATEGORIES, 0)
        self.waiting: list[Ticket] = []
        self.seq = 0
        self.timeline: list[tuple[float, ...]] = [(0.0, 0, 0, 0, 0, 0, 0)]

    def _record(self) -> None:
        row = (self.clock(), self.used, *self.by_cat.values())
        if self.timeline[-1][0] == row[0]:
            self.timeline[-1] = row
        else:
            self.timeline.append(row)

    def fits(self, nbytes: int) -> bool:
        return self.budget is None or self.used + nbytes <= self.budget

    def _grant(self, t: Ticket) -> None:
        for c, b in t.parts.items():
            self.by_cat[c] += b
            self.used += b
        self.peak = max(self.peak, self.used)
        t.granted = True
        self._record()

    def request(self, parts: dict[str, int], priority: int) -> Ticket:
        """Ask for bytes; the ticket is granted now if nothing waits and they fit."""
        self.seq += 1
        t = Ticket(priority, self.seq, {c: b for c, b in parts.items() if b > 0})
        if t.nbytes == 0 or (not self.waiting and self.fits(t.nbytes)):
            if t.nbytes:
                self._grant(t)
            t.granted = True
            return t
        heapq.heappush(self.waiting, t)
        self._drain()
        return t

    def free(self, nbytes: int, category: str) -> None:
        if nbytes <= 0:
            return
        self.used -= nbytes
        self.by_cat[category] -= nbytes
        self._record()
        self._drain()

    def move(self, nbytes: int, src: str, dst: str) -> None:
        self.by_cat[src] -= nbytes
        self.by_cat[dst] += nbytes
        self._record()

    def _drain(self) -> None:
        while self.waiting and self.fits(self.waiting[0].nbytes):
            self._grant(heapq.heappop(self.waiting))
