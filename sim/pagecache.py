"""The page cache of mmap'd weights: what the OS evicts when an app is over its memory limit and
what a kernel must fault back from flash before it can run.

Weights that a runtime maps from its model file (llama.cpp's and ExecuTorch's mmap loaders) are
clean file-backed pages: under memory pressure the kernel drops them (least recently used first)
instead of killing the app, and the next touch faults them back, `readahead` bytes per major
fault. Pages are tracked per tensor (resident bytes in LRU order of last use, evicted in whole
pages): a kernel touches all pages of its weights together, so LRU over pages and LRU over
tensors with page-rounded partial eviction choose the same victims.
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict

from sim.memory import BudgetPool


class PageCache:
    """LRU over the mapped weight pages of one run; evicts through `pool.reclaim`."""

    def __init__(self, pool: BudgetPool, page_size: int, readahead: int):
        self.pool = pool
        self.page = page_size
        self.readahead = readahead
        self.resident: OrderedDict[str, int] = OrderedDict()  # least recently used first
        self.evicted: dict[str, int] = {}
        self.pinned: Counter[str] = Counter()
        self.evicted_total = 0  # every byte ever evicted
        self.faults = 0
        self.fault_bytes = 0
        pool.reclaim = self.reclaim

    def insert(self, tensor: str, nbytes: int) -> None:
        """A tensor's pages were just read into the cache (most recently used)."""
        self.resident[tensor] = nbytes
        self.resident.move_to_end(tensor)
        self.evicted[tensor] = 0

    def missing(self, tensor: str) -> int:
        return self.evicted.get(tensor, 0)

    def fault_count(self, nbytes: int) -> int:
        """Major faults needed to bring `nbytes` back (one per readahead window)."""
        return math.ceil(nbytes / self.readahead) if nbytes > 0 else 0

    def restore(self, tensor: str) -> int:
        """Fault a tensor's evicted pages back; returns the bytes read from flash."""
        nbytes = self.evicted.get(tensor, 0)
        if nbytes <= 0:
            return 0
        self.evicted[tensor] = 0
        self.resident[tensor] = self.resident.get(tensor, 0) + nbytes
        self.resident.move_to_end(tensor)
        self.faults += self.fault_count(nbytes)
        self.fault_bytes += nbytes
        self.pool.restore(nbytes)
        return nbytes

    def touch(self, tensor: str) -> None:
        if tensor in self.resident:
            self.resident.move_to_end(tensor)

    def pin(self, tensors: tuple[str, ...]) -> None:
        self.pinned.update(tensors)

    def unpin(self, tensors: tuple[str, ...]) -> None:
        self.pinned.subtract(tensors)
        for t in tensors:
            self.touch(t)

    def drop(self, tensor: str) -> None:
        """The mapping is released (a schedule's free): its evicted pages leave the books."""
        nbytes = self.evicted.pop(tensor, 0)
        self.resident.pop(tensor, None)
        self.pool.evicted -= nbytes

    def reclaim(self, excess: int) -> None:
        """Evict least recently used unpinned pages until `excess` bytes are freed (or none is left)."""
        want = math.ceil(excess / self.page) * self.page
        for tensor in list(self.resident):
            if want <= 0:
                break
            if self.pinned[tensor] > 0:
                continue
            take = min(self.resident[tensor], want)
            self.resident[tensor] -= take
            if self.resident[tensor] == 0:
                del self.resident[tensor]
            self.evicted[tensor] += take
            self.pool.evicted += take
            self.evicted_total += take
            want -= take
