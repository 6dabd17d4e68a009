"""Runners: who executes the runs of a sweep. Same function, same arguments, same rows, whichever
runner is used: in-process serial, a local process pool, or a Dask distributed cluster.

A runner maps a top-level function over picklable items and yields (item, result) pairs as
results arrive (not in submission order). Closing the generator early cancels what has not
started, so an interrupted sweep stops promptly.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from experiments.errors import ExperimentError

T = TypeVar("T")
R = TypeVar("R")


class Runner(Protocol):
    """Executes fn over items; yields (item, fn(item)) in completion order."""

    name: str

    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[tuple[T, R]]:
        ...

    def close(self) -> None:
        ...


@dataclass
class SerialRunner:
    """Runs everything in this process, one after another (debugging, tiny sweeps)."""

    name: str = "serial"

    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[tuple[T, R]]:
        for item in items:
            yield item, fn(item)

    def close(self) -> None:
        pass


@dataclass
class PoolRunner:
    """A pool of worker processes on this machine (default: one per core).

    Workers are started with 'spawn' (no inherited threads or locks, the same on Linux and
    macOS) on first use and kept until `close()`, so the budget and run phases of a sweep share
    them; at most 2 x workers runs are in flight so an interruption cancels the rest promptly.
    """

    workers: int = 0
    name: str = "process pool"
    _pool: ProcessPoolExecutor | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.workers = self.workers or os.cpu_count() or 1

    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[tuple[T, R]]:
        if not items:
            return
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.workers,
                                             mp_context=multiprocessing.get_context("spawn"))
        ex = self._pool
        todo = iter(items)
        pending: dict[Future[R], T] = {}
        try:
            for item in todo:
                pending[ex.submit(fn, item)] = item
                if len(pending) >= 2 * self.workers:
                    break
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    item = pending.pop(fut)
                    nxt = next(todo, None)
                    if nxt is not None:
                        pending[ex.submit(fn, nxt)] = nxt
                    yield item, fut.result()
        finally:
            for fut in pending:
                fut.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


@dataclass
class AutoRunner:
    """Serial while that is faster, a process pool once the work pays its start-up.

    The first item runs in this process and is timed; the rest go to a pool of `workers`
    processes only when running them here would take longer than running them there plus
    starting the pool (`startup_s` per worker: spawning, importing numpy, pandas, SimPy and
    OR-Tools), so a small sweep never waits for workers it does not need.
    """

    workers: int = 0
    startup_s: float = 2.0
    name: str = "auto"
    _pool: PoolRunner | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.workers = self.workers or os.cpu_count() or 1

    def pool_pays(self, seconds_here: float) -> bool:
        """Would `seconds_here` of serial work finish sooner on the pool?"""
        w = self.workers
        return w > 1 and seconds_here - seconds_here / w > self.startup_s * w / 2

    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[tuple[T, R]]:
        if not items:
            return
        t0 = time.perf_counter()
        yield items[0], fn(items[0])
        rest = items[1:]
        if not rest:
            return
        per_item = time.perf_counter() - t0
        if self._pool is None and not self.pool_pays(per_item * len(rest)):
            for item in rest:
                yield item, fn(item)
            return
        if self._pool is None:
            self._pool = PoolRunner(self.workers)
            self.name = f"auto: {self.workers} processes"
        yield from self._pool.map_unordered(fn, rest)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


@dataclass
class DaskRunner:
    """Runs on a Dask distributed cluster at `address` (tcp://host:8786), or a given Client.

    The workers need weightstream installed (same version: it is part of every run's key).
    """

    address: str | None = None
    client: Any = None
    name: str = "dask"

    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[tuple[T, R]]:
        try:
            from distributed import Client, as_completed
        except ImportError:
            raise ExperimentError("--scheduler needs Dask distributed: pip install "
                                  "'weightstream[dask]' (or dask[distributed])") from None
        if not items:
            return
        own = self.client is None
        try:
            client = self.client or Client(self.address, timeout="10s")
        except OSError as exc:
            raise ExperimentError(f"cannot reach the Dask scheduler at {self.address!r}: {exc}") from None
        try:
            futures = client.map(fn, list(items), pure=False)
            index = {f.key: i for i, f in enumerate(futures)}
            ac = as_completed(futures, with_results=True)
            try:
                for fut, result in ac:
                    yield items[index[fut.key]], result
            finally:
                client.cancel(futures)
        finally:
            if own:
                client.close()

    def close(self) -> None:
        pass


def make_runner(workers: int | None = None, scheduler: str | None = None) -> Runner:
    """The runner the CLI options ask for: Dask if a scheduler is given, else serial for
    workers == 1, a process pool of `workers` processes, or (workers=None) serial or a pool
    of one process per core, whichever the work pays for (`AutoRunner`)."""
    if scheduler:
        return DaskRunner(scheduler)
    if workers is not None and workers < 1:
        raise ExperimentError(f"--workers must be at least 1, found {workers}")
    if workers == 1:
        return SerialRunner()
    if workers is None:
        return AutoRunner()
    return PoolRunner(workers)
