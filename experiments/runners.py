"""Runners: who executes the runs of a sweep. Same function, same arguments, same rows, whichever
runner is used: in-process serial, a local process pool, or a Dask distributed cluster.

A runner maps a top-level function over picklable items and yields (item, result) pairs as
results arrive (not in submission order). An item whose execution never returns a result (its
worker process died, the cluster gave up on it) yields `Lost(message)` instead, and the others
go on. Closing the generator early cancels what has not started; `abort()` also stops what is
running, so an interrupted sweep stops promptly and leaves no process behind.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import re
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import (
    FIRST_COMPLETED,
    CancelledError,
    Future,
    ProcessPoolExecutor,
    wait,
)
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from experiments.errors import ExperimentError

T = TypeVar("T")
R = TypeVar("R")

DASK_TIMEOUT_S = 20.0  # to reach the scheduler, and to wait for a first worker
_ADDRESS = re.compile(r"^(?:(?:tcp|tls|ucx|ws|wss)://)?(?:\[[0-9A-Fa-f:]+\]|[A-Za-z0-9_.\-]+)"
                      r":\d{1,5}$|^inproc://\S+$")


@dataclass(frozen=True)
class Lost:
    """The result of an item that never completed (its worker died; the cluster gave up)."""

    message: str


class Runner(Protocol):
    """Executes fn over items; yields (item, fn(item) or Lost) in completion order."""

    name: str

    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T]
                      ) -> Iterator[tuple[T, R | Lost]]:
        ...

    def start(self) -> None:
        ...

    def close(self) -> None:
        ...

    def abort(self) -> None:
        ...


@dataclass
class SerialRunner:
    """Runs everything in this process, one after another (debugging, tiny sweeps)."""

    name: str = "serial"

    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T]
                      ) -> Iterator[tuple[T, R | Lost]]:
        for item in items:
            yield item, fn(item)

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


def _watch_parent(parent: int) -> None:
    """Worker start-up: leave Ctrl-C to the parent, and exit as soon as the parent is gone
    (killed with SIGKILL, say), so no worker outlives its sweep."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(0.2)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


@dataclass
class PoolRunner:
    """A pool of worker processes on this machine (default: one per core).

    Workers are started with 'spawn' (no inherited threads or locks, the same on Linux and
    macOS) on first use and kept until `close()`, so the budget and run phases of a sweep share
    them; at most 2 x workers runs are in flight so an interruption cancels the rest promptly.
    If a worker dies (a run crashed the interpreter, the OOM killer), the pool is restarted,
    the runs that were in flight are run again one at a time, and a run whose worker dies
    while it runs alone is reported `Lost`.
    """

    workers: int = 0
    name: str = "process pool"
    _pool: ProcessPoolExecutor | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.workers = self.workers or os.cpu_count() or 1

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.workers,
                                             mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_watch_parent, initargs=(os.getpid(),))
        return self._pool

    def _exit_codes(self) -> list[int]:
        procs = getattr(self._pool, "_processes", None) or {}
        return sorted({p.exitcode for p in list(procs.values()) if p.exitcode not in (None, 0)})

    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T]
                      ) -> Iterator[tuple[T, R | Lost]]:
        todo = deque(range(len(items)))
        suspects: deque[int] = deque()  # in flight when a worker died: rerun one at a time
        pending: dict[Future[R], int] = {}
        try:
            while todo or suspects or pending:
                ex = self._ensure_pool()
                if suspects:
                    if not pending:
                        i = suspects.popleft()
                        pending[ex.submit(fn, items[i])] = i
                else:
                    while todo and len(pending) < 2 * self.workers:
                        i = todo.popleft()
                        pending[ex.submit(fn, items[i])] = i
                alone = len(pending) == 1  # a death now is this run's own
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                broken: list[int] = []
                for fut in done:
                    i = pending.pop(fut)
                    try:
                        result = fut.result()
                    except BrokenProcessPool:
                        broken.append(i)
                        continue
                    yield items[i], result
                if not broken:
                    continue
                wait(pending)  # a broken pool fails every future it still holds
                for fut, i in list(pending.items()):
                    try:
                        yield items[i], fut.result()
                    except BrokenProcessPool:
                        broken.append(i)
                pending.clear()
                codes = self._exit_codes()
                self._discard()
                if alone and len(broken) == 1:
                    yield items[broken[0]], Lost(_death_message(codes))
                else:
                    suspects.extend(sorted(broken))
        finally:
            for fut in pending:
                fut.cancel()

    def start(self) -> None:
        pass  # workers are started on first use (a sweep with nothing to run starts none)

    def _discard(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        """Wait for the workers to finish what they run and stop them."""
        self._discard()

    def abort(self) -> None:
        """Stop every worker now (what runs is lost; its row is simply not stored)."""
        if self._pool is None:
            return
        procs = list((getattr(self._pool, "_processes", None) or {}).values())
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.kill()
                p.join(5)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None


def _death_message(codes: list[int]) -> str:
    how = ""
    if codes:
        sigs = []
        for c in codes:
            try:
                sigs.append(f"killed by {signal.Signals(-c).name}" if c < 0 else f"exit code {c}")
            except ValueError:
                sigs.append(f"exit code {c}")
        how = f" ({', '.join(sigs)})"
    return (f"WorkerDied: the worker process running this run died{how}, also when it ran alone; "
            "out of memory, or a crash in native code? The sweep went on without it")


def check_scheduler_address(address: str) -> str:
    """`address` if it looks like a Dask scheduler address (tcp://host:port), else an error."""
    if not isinstance(address, str) or not _ADDRESS.match(address.strip()):
        raise ExperimentError(f"--scheduler {address!r} is not a Dask scheduler address; give "
                              "tcp://HOST:PORT, e.g. tcp://10.0.0.5:8786")
    return address.strip()


async def _identity(address: str, timeout: float) -> dict[str, Any]:
    from distributed.comm import connect

    async def ask() -> dict[str, Any]:
        comm = await connect(address, timeout=timeout)
        try:
            await comm.write({"op": "identity"})
            return await comm.read()
        finally:
            await comm.close()

    return await asyncio.wait_for(ask(), timeout)


def probe_scheduler(address: str, timeout: float) -> None:
    """Check within `timeout` s that a Dask scheduler answers at `address` (a wrong port, a
    service that is not Dask, or a Dask worker gives an ExperimentError, never a hang)."""
    try:
        info = asyncio.run(_identity(address, timeout))
    except (OSError, TimeoutError) as exc:
        raise ExperimentError(f"cannot reach a Dask scheduler at {address} within {timeout:g} s "
                              f"({str(exc) or type(exc).__name__}); is `dask scheduler` running "
                              "there, and is that its address?") from None
    except Exception as exc:  # a service that answers, but not in Dask's protocol
        raise ExperimentError(f"{address} does not answer like a Dask scheduler "
                              f"({type(exc).__name__}: {exc})") from None
    kind = info.get("type") if isinstance(info, dict) else None
    if kind != "Scheduler":
        raise ExperimentError(f"{address} is a Dask {kind or 'service'}, not a scheduler; give "
                              "the scheduler's address")


@dataclass
class AutoRunner:
    """Serial while that is faster, a process pool once the work pays its start-up.

    Items run in this process, timed, until running the rest here would take longer (at the
    mean time per item so far) than running them on a pool of `workers` processes plus starting
    it (`startup_s` per worker: spawning, importing numpy, pandas and SimPy); then the rest go
    to the pool. A small sweep never waits for workers it does not need.
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

    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T]
                      ) -> Iterator[tuple[T, R | Lost]]:
        if not items:
            return
        if self._pool is None:
            # decided again after every item, from the mean so far: the first items of a
            # sweep (an infeasible budget decided analytically) can be far cheaper than the rest
            t0 = time.perf_counter()
            for k, item in enumerate(items):
                if k and self.pool_pays((time.perf_counter() - t0) / k * (len(items) - k)):
                    self._pool = PoolRunner(self.workers)
                    self.name = f"auto: {self.workers} processes"
                    yield from self._pool.map_unordered(fn, items[k:])
                    return
                yield item, fn(item)
            return
        yield from self._pool.map_unordered(fn, items)

    def start(self) -> None:
        pass  # the pool starts only if the work pays for it

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def abort(self) -> None:
        if self._pool is not None:
            self._pool.abort()
            self._pool = None


@dataclass
class DaskRunner:
    """Runs on a Dask distributed cluster at `address` (tcp://host:8786), or a given Client.

    The workers need weightstream installed (same version: it is part of every run's key).
    A run whose workers keep dying (Dask's KilledWorker) is reported `Lost` and the sweep goes
    on; a scheduler that is unreachable, not Dask, has no worker for `timeout` s, or goes away
    mid-sweep gives an ExperimentError (the rows already received are kept by the sweep).
    """

    address: str | None = None
    client: Any = None
    name: str = "dask"
    timeout: float = DASK_TIMEOUT_S
    _futures: list[Any] = field(default_factory=list, init=False, repr=False)
    _own: Any = field(default=None, init=False, repr=False)

    def _connect(self) -> Any:
        try:
            from distributed import Client
        except ImportError:
            raise ExperimentError("--scheduler needs Dask distributed: pip install "
                                  "'weightstream[dask]' (or dask[distributed])") from None
        if self.client is not None:
            return self.client
        if self._own is None:
            address = check_scheduler_address(str(self.address))
            probe_scheduler(address, self.timeout)
            try:
                self._own = Client(address, timeout=f"{self.timeout}s")
            except (OSError, TimeoutError, ValueError) as exc:
                raise ExperimentError(f"cannot connect to the Dask scheduler at {address}: "
                                      f"{exc}") from None
        return self._own

    def start(self) -> None:
        """Reach the scheduler and wait for a worker now, before the sweep touches any file."""
        self._wait_for_workers(self._connect())

    def _wait_for_workers(self, client: Any) -> None:
        try:
            client.wait_for_workers(1, timeout=self.timeout)
        except TimeoutError:
            raise ExperimentError(f"the Dask scheduler at {client.scheduler.address} has no "
                                  f"worker (waited {self.timeout:g} s); start some with "
                                  f"`dask worker {client.scheduler.address}`") from None

    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T]
                      ) -> Iterator[tuple[T, R | Lost]]:
        if not items:
            return
        client = self._connect()
        from distributed import wait as dwait

        self._wait_for_workers(client)
        futures = client.map(fn, list(items), pure=False)
        self._futures = futures
        index = {f.key: i for i, f in enumerate(futures)}
        pending = set(futures)
        idle_since: float | None = None
        try:
            while pending:
                try:
                    done, pending = dwait(pending, timeout=1.0, return_when="FIRST_COMPLETED")
                except TimeoutError:
                    done = set()
                except CancelledError:  # the scheduler went away: Dask cancels every future
                    raise ExperimentError(
                        f"lost the connection to the Dask scheduler at {client.scheduler.address}"
                        " (its runs were cancelled); finished runs are saved: run the same "
                        "command again to resume") from None
                if not done:
                    idle_since = self._check_cluster(client, idle_since)
                    continue
                idle_since = None
                for fut in done:
                    item = items[index[fut.key]]
                    if fut.status == "finished":
                        try:  # waits if the result was lost meanwhile and is computed again
                            result = fut.result()
                        except Exception as exc:  # ... and that run failed
                            yield item, Lost(f"{type(exc).__name__}: {exc}")
                        else:
                            yield item, result
                    elif fut.status == "error":
                        exc = fut.exception()
                        yield item, Lost(f"{type(exc).__name__}: {exc}")
                    elif fut.status in ("lost", "pending"):
                        # finished, then its result went with a worker that died before we
                        # fetched it: the scheduler computes it again
                        pending.add(fut)
                    else:
                        raise ExperimentError(
                            f"the Dask scheduler at {client.scheduler.address} dropped the "
                            f"sweep's runs (future {fut.status}); did it stop? Finished runs are "
                            "saved: run the same command again to resume")
        finally:
            self._cancel(client)

    def _check_cluster(self, client: Any, idle_since: float | None) -> float | None:
        """Raise if the scheduler is gone, or has had no worker for `timeout` seconds."""
        if client.status not in ("running", "connecting"):
            raise ExperimentError(f"lost the connection to the Dask scheduler at "
                                  f"{client.scheduler.address} (client {client.status}); "
                                  "finished runs are saved: run the same command again to resume")
        try:
            workers = client.scheduler_info(n_workers=-1).get("workers", {})
        except TypeError:  # older distributed: no n_workers argument
            workers = client.scheduler_info().get("workers", {})
        except Exception as exc:
            raise ExperimentError(f"lost the Dask scheduler at {client.scheduler.address} "
                                  f"({type(exc).__name__}: {exc}); finished runs are saved: "
                                  "run the same command again to resume") from None
        if workers:
            return None
        now = time.monotonic()
        if idle_since is None:
            return now
        if now - idle_since > self.timeout:
            raise ExperimentError(f"the Dask cluster at {client.scheduler.address} has had no "
                                  f"worker for {self.timeout:g} s; start workers with `dask worker "
                                  f"{client.scheduler.address}` and run the same command again")
        return idle_since

    def _cancel(self, client: Any) -> None:
        if self._futures:
            try:
                client.cancel(self._futures)
            except Exception:
                pass  # the scheduler is gone: nothing left to cancel
            self._futures = []

    def close(self) -> None:
        if self._own is not None:
            try:
                self._own.close(timeout=self.timeout)
            except Exception:
                pass  # a dead scheduler cannot be said goodbye to
            self._own = None

    def abort(self) -> None:
        if self._own is not None or self.client is not None:
            self._cancel(self._own or self.client)
        self.close()


def make_runner(workers: int | None = None, scheduler: str | None = None,
                dask_timeout: float = DASK_TIMEOUT_S) -> Runner:
    """The runner the CLI options ask for: Dask if a scheduler is given, else serial for
    workers == 1, a process pool of `workers` processes, or (workers=None) serial or a pool
    of one process per core, whichever the work pays for (`AutoRunner`)."""
    if scheduler is not None:
        if workers is not None:
            raise ExperimentError("--workers and --scheduler exclude each other: the Dask "
                                  "cluster decides how many workers run")
        if not dask_timeout > 0 or dask_timeout == float("inf"):
            raise ExperimentError(f"--dask-timeout must be a positive number of seconds, "
                                  f"found {dask_timeout}")
        return DaskRunner(check_scheduler_address(scheduler), timeout=dask_timeout)
    if workers is not None and workers < 1:
        raise ExperimentError(f"--workers must be at least 1, found {workers}")
    if workers == 1:
        return SerialRunner()
    if workers is None:
        return AutoRunner()
    return PoolRunner(workers)
