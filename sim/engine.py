"""The discrete-event engine (SimPy): the reference executor of a Schedule on a hardware model.

It follows the step descriptions of `sim.flow` and the same-instant rule stated there. Units:
storage (one request stream; a read's time comes from the request-size model), a copy unit and
a transform unit (first come, first served), the host (a runtime's parsing, CPU transforms,
program builds) and the GPU (one in-order queue: computes run in list order). With
`gpu.shared_with_transfers` (a CPU OpenCL device) copies, transforms and computes are served by
one unit in order of arrival.

A step that waits for work on another unit (a copy for its read, a kernel for its load, a load
for the kernel that freed its memory) starts `gpu.sync_latency` after that work ends; kernels on
the in-order GPU queue follow each other without it. Where the profile gives a hop its own
latency (`gpu.sync_read`, `sync_copy`, `sync_transform`, `sync_kernel`, `sync_free`) that hop
takes it instead; a given `sync_read` also applies to reads that waited for a free. With
`gpu.sync_serial` those waits (and kernel launches) are one driver thread's work: each occupies
a driver unit, first come first served, and the step goes on when its turn ends. A runtime
whose `init.order` is before_load reads no weight before its programs are built. With `storage.compute_contention` k > 1, a
read progresses k times slower while a kernel runs: reads are then served one at a time by a
storage process that re-plans at every kernel start and end. With a runtime whose reader keeps
more than one read in flight, a read's first request latency overlaps the transfer of the read
ahead of it (`HardwareModel.hidden_read_latency`). A kernel with `after_read` also waits until
those loads' reads have ended (plus the sync latency); a load's `copy_after` holds its stages
after the read until those steps have finished. Every allocation waits on the memory pool's
budget (what it caps: the schedule's `budget_scope`); preallocated buffers are taken at the
start and held to the end. A schedule that can make no progress (an allocation that can never fit,
or a cycle of waits) is reported infeasible, not hung.

Steps are not processes: a step advances by callbacks when what it waits for is done, each
stage costs one timeout, and one end-of-instant pass (an event of lower priority than every
other at that time) grants memory and hands arrived stages to their units. This is the
executor for what only a discrete-event model can do: memory waits that bind, contention,
duration hooks (jitter), page-cache faults. `sim.evaluate` computes the same numbers in one pass
where none of these apply.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import simpy

from hwprofiles.runtime import RuntimeProfile
from hwprofiles.schema import HardwareProfile
from sim.flow import COMPUTE, LOAD, Prepared, Segment, init_cost, issue_time, prepare
from sim.gcpause import paused_gc
from sim.hardware import IDEAL
from sim.memory import PRIO_COMPUTE, PRIO_LOAD, MemoryPool
from sim.metrics import Metrics
from sim.outcome import RunRecord, assemble
from sim.pagecache import PageCache
from sim.schedule import Compute, Load, Schedule
from sim.trace import Interval, Trace

# (step, stage, nominal seconds) -> actual seconds: lets tests and the planner perturb durations
DurationHook = Callable[[object, str, float], float]
END_OF_INSTANT = 2  # event priority after SimPy's URGENT (0) and NORMAL (1)
FAULT_SEGMENT = -1
DRIVER_READY = -2  # the arrival key of a step's hop on the driver (before its first segment)
DRIVER_LAUNCH = -3  # the arrival key of a kernel's launch on the driver

__all__ = ["DurationHook", "SimResult", "init_cost", "jitter_hook", "simulate"]


@dataclass
class SimResult:
    """What one simulation produced."""

    metrics: Metrics
    trace: Trace


def jitter_hook(amount: float, seed: int = 0) -> DurationHook:
    """Multiply every duration by a seeded random factor in [1 - amount, 1 + amount]."""
    rng = np.random.default_rng(seed)

    def hook(step: object, stage: str, t: float) -> float:
        return t * float(1.0 + rng.uniform(-amount, amount))

    return hook


class _CountingEnvironment(simpy.Environment):
    """A SimPy environment that counts scheduled events (for throughput benchmarks)."""

    def __init__(self) -> None:
        super().__init__()
        self.scheduled = 0

    def schedule(self, event, priority=simpy.core.NORMAL, delay=0):  # type: ignore[override]
        self.scheduled += 1
        super().schedule(event, priority, delay)

    def schedule_at(self, event: simpy.Event, time: float, priority: int) -> None:
        """Schedule `event` at absolute `time` (not now + delay, which rounds: both executors
        then compute every time with the same arithmetic)."""
        self.scheduled += 1
        heapq.heappush(self._queue, (time, priority, next(self._eid), event))


class _Engine:
    """State of one simulation (kept out of the public API)."""

    def __init__(self, prep: Prepared, budget: int | None, hook: DurationHook | None,
                 record_trace: bool):
        self.p = prep
        s = self.s = prep.schedule
        profile = prep.profile
        self.env = env = _CountingEnvironment()
        self.pool = MemoryPool(env, budget, profile.memory_limit(), self._need_pass,
                               s.budget_scope)
        self.cache = (PageCache(self.pool, profile.os.page_size, profile.os.readahead)
                      if prep.mapped else None)
        self.hook = hook
        self.record = record_trace
        self.intervals: list[Interval] = []
        self.shared = profile.gpu.shared_with_transfers
        self.contention = profile.storage.compute_contention
        n = prep.n
        self.left = [len(d) for d in prep.deps]
        self.dependents: list[list[int]] = [[] for _ in range(n)]
        for i, d in enumerate(prep.deps):
            for j in d:
                self.dependents[j].append(i)
        for c, loads in prep.after_read.items():  # a read's end counts as one more dependency
            self.left[c] += len(loads)
        self.read_end: dict[int, float] = {}
        # loads whose segment waits for steps (copy_after): step -> [(load, segment)] waiting
        self.seg_waiters: dict[int, list[tuple[int, int]]] = {}
        self.seg_left: dict[tuple[int, int], int] = {}
        self.hidden = prep.hidden_read
        self.sync = profile.gpu.sync_latency
        self.issue = profile.gpu.kernel_issue_interval
        self.host = prep.init_s - self.issue  # when the host issued the kernel before
        self.end_time = [0.0] * n
        self.done = [False] * n
        self.finished = 0
        self.free_at = {"storage": 0.0, "copy": 0.0, "transform": 0.0, "gpu": 0.0, "host": 0.0,
                        "driver": 0.0}
        self.serial = profile.gpu.sync_serial and prep.synchronised
        self.launch = profile.gpu.kernel_launch_overhead
        self.launch_on_driver = self.serial and self.launch > 0.0
        self.busy: dict[str, list[float]] = {r: [] for r in ("storage", "copy", "transform",
                                                              "gpu")}
        self.stalls: list[float] = []
        self.computed: list[float] = []
        self.dram_bytes = 0
        self.flash_bytes = 0
        self.error: str | None = None
        self.labels = [inv.label for inv in s.invocations]
        self.init_end: float | None = None  # when the first kernel started
        self.held_files = 0  # host copies kept until init ends (runtime host_copy)
        self.until_init = prep.runtime.host_copy == "until_init"
        self.stages: list[tuple[str, float, float]] = []  # (stage, start, end) of loads, builds
        self.pass_due = False
        # stages that reached a unit this instant: (step, segment, unit, earliest, seconds, then)
        self.arrivals: list[tuple] = []
        if self.contention > 1.0:
            self.storage_unit = simpy.Resource(env, 1)
            self.kernel_running = False
            self.kernel_change = env.event()  # succeeds at the next kernel start or end

    # --- helpers -----------------------------------------------------------------------------
    def dur(self, step: object, stage: str, t: float) -> float:
        return self.hook(step, stage, t) if self.hook and t > 0 else t

    def interval(self, resource: str, name: str, step: int, start: float, end: float,
                 nbytes: int = 0, inv: str = "") -> None:
        busy = self.busy.get(resource)
        if busy is None:
            busy = self.busy[resource] = []
        busy.append(end - start)
        if self.record:
            self.intervals.append(Interval(resource, name, step, start, end, nbytes, inv))

    def at(self, time: float, callback: Callable[[], object], priority: int = 1) -> None:
        """Call `callback` at simulated `time` (never before now): one event."""
        ev = simpy.Event(self.env)
        ev._ok = True
        ev._value = None
        ev.callbacks.append(lambda _ev: callback())
        self.env.schedule_at(ev, time if time > self.env.now else self.env.now, priority)

    def _need_pass(self) -> None:
        """Schedule this instant's end-of-instant pass (once)."""
        if not self.pass_due:
            self.pass_due = True
            self.at(self.env.now, self._end_of_instant, END_OF_INSTANT)

    def _end_of_instant(self) -> None:
        """Grant memory in order, then hand the stages that arrived at this instant to their
        units in order of (step, segment)."""
        self.pass_due = False
        self.pool.grant()
        arrivals, self.arrivals = self.arrivals, []
        arrivals.sort(key=lambda a: (a[0], a[1]))
        now = self.env.now
        free_at = self.free_at
        for _i, _k, unit, earliest, seconds, then in arrivals:
            if unit == "storage" and self.contention > 1.0:
                self.env.process(self._contended(seconds, earliest - now, then))
                continue
            start = earliest if earliest > free_at[unit] else free_at[unit]
            if unit == "storage" and self.hidden > 0.0:
                # the reader submitted this read while the device was still busy: its first
                # request's latency ran during the transfer of the read ahead of it
                dispatch = now if now > self.sync else self.sync
                lat = self.hidden if self.hidden < seconds else seconds
                end = max(free_at[unit], dispatch + lat) + seconds - lat
            else:
                end = start + seconds
            free_at[unit] = end
            then(start, end)
        self.pool.sample()

    def _arrive(self, i: int, k: int, unit: str, earliest: float, seconds: float,
                then: Callable[[float, float], None]) -> None:
        """Stage `k` of step `i` reached `unit` now; `then(start, end)` runs when the unit has
        given it its turn (in this instant's pass)."""
        self.arrivals.append((i, k, unit, earliest, seconds, then))
        self._need_pass()

    def _after(self, start: float, end: float, done: Callable[[float], None]) -> None:
        """A stage given its `start` and `end`: `done(start)` runs when it ends."""
        self.at(end, lambda: done(start))

    # --- dependencies ------------------------------------------------------------------------
    def _finish(self, i: int) -> None:
        now = self.env.now
        self.end_time[i] = now
        self.done[i] = True
        self.finished += 1
        left = self.left
        for d in self.dependents[i]:
            left[d] -= 1
            if left[d] == 0:
                self._ready(d)
        if self.seg_waiters and i in self.seg_waiters:
            for j, k in self.seg_waiters.pop(i):
                self.seg_left[(j, k)] -= 1
                if self.seg_left[(j, k)] == 0:
                    del self.seg_left[(j, k)]
                    self._segment_go(j, k, self.p.loads[j].segments[k])

    def _ready(self, i: int) -> None:
        """All of step `i`'s dependencies have finished: start it once their ends have reached
        its unit (sync latency) and, for the first kernel, once the programs are built."""
        now = self.env.now
        p = self.p
        ready = now
        if p.synchronised:
            end = self.end_time
            for j, lag in zip(p.deps[i], p.lags[i], strict=True):
                if end[j] + lag > ready:
                    ready = end[j] + lag
        hop = ready
        if p.after_read and i in p.after_read:  # a lock-step barrier: the reads have ended
            for j in p.after_read[i]:
                if self.read_end[j] + self.sync > ready:
                    ready = self.read_end[j] + self.sync
        if (i == p.first_compute or (p.loads_after_init and p.kinds[i] == LOAD)) \
                and p.init_s > ready:
            ready = p.init_s
        if self.serial and hop > now:  # the hop is the driver's work: it queues there
            self._on_driver(i, DRIVER_READY, hop - now, lambda: self._start(i), ready)
        elif ready > now:
            self.at(ready, lambda: self._start(i))
        else:
            self._start(i)

    def _start(self, i: int) -> None:
        kind = self.p.kinds[i]
        if kind == LOAD:
            self._segment(i, 0)
        elif kind == COMPUTE:
            st = self.s.steps[i]
            if self.cache is not None:
                self.cache.pin(st.weights)  # type: ignore[union-attr]
            self.pool.submit(self.p.request(i), PRIO_COMPUTE, i, 0, lambda: self._granted(i))
        else:
            st = self.s.steps[i]
            if self.cache is not None:
                for t in st.tensors:  # type: ignore[union-attr]
                    self.cache.drop(t)
            self.pool.free(self.p.free_bytes[i], "weights")
            self._finish(i)

    # --- loads -------------------------------------------------------------------------------
    def _segment(self, i: int, k: int) -> None:
        flow = self.p.loads[i]
        if k == len(flow.segments):
            self.flash_bytes += flow.flash_bytes
            self.dram_bytes += flow.dram_bytes
            self._finish(i)
            return
        seg = flow.segments[k]
        if seg.wait:
            pending = [j for j in seg.wait if not self.done[j]]
            if pending:  # copy_after: continue once those steps have finished
                self.seg_left[(i, k)] = len(pending)
                for j in pending:
                    self.seg_waiters.setdefault(j, []).append((i, k))
                return
        self._segment_go(i, k, seg)

    def _segment_go(self, i: int, k: int, seg: Segment) -> None:
        if seg.request:
            self.pool.submit(seg.request, PRIO_LOAD, i, k, lambda: self._granted_load(i, k))
        else:
            self._stage(i, k, seg)

    def _granted_load(self, i: int, k: int) -> None:
        seg = self.p.loads[i].segments[k]
        if self.cache is not None and seg.stage == "read":
            self.cache.pin(self.s.steps[i].tensors)  # type: ignore[union-attr]
        self._stage(i, k, seg)

    def _stage(self, i: int, k: int, seg: Segment) -> None:
        if not seg.unit:
            self._post(i, k, seg)
            return
        now = self.env.now
        earliest = now + seg.lag
        if seg.floor > earliest:  # a read is dispatched by the runtime's host thread
            earliest = seg.floor
        if self.serial and earliest > now:  # that hop is the driver's work: it queues there
            self._on_driver(i, k, earliest - now, lambda: self._stage_go(i, k, seg, self.env.now))
            return
        self._stage_go(i, k, seg, earliest)

    def _on_driver(self, i: int, k: int, seconds: float, then: Callable[[], object],
                   not_before: float = 0.0) -> None:
        """`seconds` of the driver thread's work for stage `k` of step `i`, in its turn;
        `then` runs when it is done (and not before `not_before`)."""
        self._arrive(i, k, "driver", self.env.now, seconds,
                     lambda start, end: self.at(max(end, not_before), then))

    def _stage_go(self, i: int, k: int, seg: Segment, earliest: float) -> None:
        self._arrive(i, k, seg.unit, earliest, self.dur(self.s.steps[i], seg.stage, seg.seconds),
                     lambda start, end: self._after(start, end,
                                                    lambda s0: self._stage_done(i, k, s0)))

    def _stage_done(self, i: int, k: int, start: float) -> None:
        seg = self.p.loads[i].segments[k]
        now = self.env.now
        st = self.s.steps[i]
        self.interval(seg.resource, f"{seg.stage} {','.join(st.tensors)[:80]}"  # type: ignore[union-attr]
                      if self.record else "", i, start, now, seg.nbytes)
        self.stages.append((seg.stage, start, now))
        if self.cache is not None and seg.stage == "read":
            tb = self.s.tensor_bytes
            for t in st.tensors:  # type: ignore[union-attr]
                self.cache.insert(t, tb[t])
            self.cache.unpin(st.tensors)  # type: ignore[union-attr]
        if seg.stage == "read" and i in self.p.read_waiters:
            self._read_done(i)
        self._post(i, k, seg)

    def _read_done(self, i: int) -> None:
        """Load `i`'s read has ended: the kernels waiting for it (after_read) count it done."""
        self.read_end[i] = self.env.now
        left = self.left
        for c in self.p.read_waiters[i]:
            left[c] -= 1
            if left[c] == 0:
                self._ready(c)

    def _post(self, i: int, k: int, seg: Segment) -> None:
        pool = self.pool
        for action in seg.post:
            if action[0] == "free":
                pool.free(action[2], action[1])
            elif action[0] == "move":
                pool.move(action[1], "staging", "weights")
            elif self.until_init and self.init_end is None:  # a host file copy
                self.held_files += action[1]
            else:
                pool.free(action[1], "staging")
        self._segment(i, k + 1)

    def _contended(self, t: float, delay: float, then: Callable[[float, float], None]):
        """A read that needs `t` seconds alone, dispatched after `delay`, served in arrival
        order and progressing `storage.compute_contention` times slower while a kernel runs;
        `then(start, end)` runs at its end."""
        env, k = self.env, self.contention
        if delay > 0:
            yield env.timeout(delay)
        with self.storage_unit.request() as turn:
            yield turn
            start = env.now
            left = t
            while left > 1e-15:
                rate = 1.0 / k if self.kernel_running else 1.0
                seg, change = env.now, self.kernel_change
                yield env.timeout(left / rate) | change
                left -= (env.now - seg) * rate
        then(start, env.now)  # ends now (a zero-length timeout)

    def _kernel_state(self, running: bool) -> None:
        """Record a kernel starting or ending and wake the reads that progress at its pace."""
        self.kernel_running = running
        change, self.kernel_change = self.kernel_change, self.env.event()
        change.succeed()

    # --- computes ----------------------------------------------------------------------------
    def _granted(self, c: int) -> None:
        cache = self.cache
        if cache is not None:
            st = self.s.steps[c]
            missing = [(w, cache.missing(w)) for w in st.weights  # type: ignore[union-attr]
                       if cache.missing(w) > 0]
            if missing:
                self._fault(c, missing)
                return
        self._run_kernel(c)

    def _fault(self, c: int, missing: list[tuple[str, int]]) -> None:
        """Fault the evicted pages of a kernel's mapped weights back before it runs."""
        st = self.s.steps[c]
        hw = self.p.hw
        t = self.dur(st, "fault", sum(hw.fault_time(n) for _, n in missing))
        nbytes = sum(n for _, n in missing)
        label = f"fault {','.join(w for w, _ in missing)[:80]}"

        def done(start: float) -> None:
            self.interval("storage", label, c, start, self.env.now, nbytes)
            for w, _ in missing:
                self.flash_bytes += self.cache.restore(w)  # type: ignore[union-attr]
            self._run_kernel(c)

        self._arrive(c, FAULT_SEGMENT, "storage", self.env.now, t,
                     lambda start, end: self._after(start, end, done))

    def _run_kernel(self, c: int) -> None:
        now = self.env.now
        t = self.dur(self.s.steps[c], "compute", self.p.compute_s[self.p.cindex[c]])
        if self.issue:  # the host issues kernels one per interval, ahead of the GPU
            p = self.p
            self.host = issue_time(self.host, self.issue, p.deps[c],
                                   p.lags[c] if p.synchronised else (), p.kinds, self.end_time)
            if self.host > now:
                self.at(self.host, lambda: self._dispatch(c, t))
                return
        self._dispatch(c, t)

    def _dispatch(self, c: int, t: float) -> None:
        """Kernel `c`, issued and granted its memory, goes to the GPU (through the driver
        thread with `gpu.sync_serial`: launching it is that thread's work, queued with its
        hops, and the kernel starts when its launch does)."""
        if self.launch_on_driver:
            self._arrive(c, DRIVER_LAUNCH, "driver", self.env.now, self.launch,
                         lambda start, end: self._to_gpu(c, start, t))
            return
        self._to_gpu(c, self.env.now, t)

    def _to_gpu(self, c: int, at: float, t: float) -> None:
        if self.shared:  # wait for the copies/transforms that reached the unit first
            self._arrive(c, 0, "gpu", at, t,
                         lambda start, end: self._kernel_at(c, start, t))
            return
        self._kernel_at(c, at, t)

    def _kernel_at(self, c: int, start: float, t: float) -> None:
        now = self.env.now
        if self.init_end is None:
            self.init_end = start
            if self.held_files:
                held, self.held_files = self.held_files, 0
                if start > now:
                    self.at(start, lambda: self.pool.free(held, "staging"))
                else:
                    self.pool.free(held, "staging")
        end = self.end_time
        ready = max([0.0] + [end[j] for j in self.p.data_ready[self.p.cindex[c]]])
        # the GPU was free and this op's inputs ready at `ready`; waiting past it is a stall
        self.stalls.append(start - ready)
        if self.contention > 1.0:  # reads slow down while it runs: mark its start and end
            if start > now:
                self.at(start, lambda: self._kernel_state(True))
            else:
                self._kernel_state(True)
        self.at(start + t, lambda: self._kernel_done(c, start, t))

    def _kernel_done(self, c: int, start: float, t: float) -> None:
        if self.contention > 1.0:
            self._kernel_state(False)
        st: Compute = self.s.steps[c]  # type: ignore[assignment]
        self.computed.append(t)
        self.dram_bytes += int(self.p.dram[self.p.cindex[c]])
        self.interval("gpu", st.op, c, start, self.env.now, 0, self.labels[st.invocation])
        if self.cache is not None:
            self.cache.unpin(st.weights)
        pool = self.pool
        for category, nbytes in self.p.release(c):
            pool.free(nbytes, category)
        self._finish(c)

    # --- driver ------------------------------------------------------------------------------
    def run(self) -> None:
        p = self.p
        budget = self.pool.budget
        if budget is not None:
            for i in p.loads:
                st = self.s.steps[i]
                if st.bytes > budget and not st.preallocated:  # type: ignore[union-attr]
                    self.error = (f"load step {i} needs {st.bytes} bytes at once, more than "  # type: ignore[union-attr]
                                  f"the budget of {budget} bytes")
                    return
        if p.buffers:  # preallocated buffers: taken at the start, held to the end
            if budget is not None and self.pool.gated_bytes(p.buffers) > budget:
                self.error = (f"the schedule's preallocated buffers need "
                              f"{sum(p.buffers.values())} bytes, more than the budget of "
                              f"{budget} bytes")
                return
            self.pool.submit(tuple(p.buffers.items()), PRIO_COMPUTE, -1, 0, lambda: None)
        if p.init_s > 0:
            self.free_at["host"] = p.init_s
            self.interval("host", f"build {p.programs} program(s)", -1, 0.0, p.init_s)
            self.stages.append(("build", 0.0, p.init_s))
        for i in [i for i, left in enumerate(self.left) if not left]:
            self._ready(i)
        self.env.run()
        if self.finished < p.n:
            pending = self.done.index(False)
            blocked = self.pool.blocked_steps
            head = ""
            if blocked:
                sid, nbytes = blocked[0]
                head = (f"; waiting for memory: {self._what(sid)} needs {nbytes} bytes with "
                        f"{self.pool.used} of {budget} bytes in use")
            self.error = (f"schedule cannot complete within the budget: "
                          f"{p.n - self.finished} step(s) never ran, first step {pending}{head}")

    def _what(self, sid: int) -> str:
        st = self.s.steps[sid]
        if isinstance(st, Load):
            return f"load step {sid} ({st.bytes} bytes)"
        return f"compute step {sid} ({st.op})"  # type: ignore[union-attr]


def simulate(schedule: Schedule, profile: HardwareProfile, *, budget: int | None = None,
             hook: DurationHook | None = None, record_trace: bool = True,
             runtime: RuntimeProfile | None = None, prepared: Prepared | None = None
             ) -> SimResult:
    """Run `schedule` on `profile` under `budget` (default: the schedule's own budget) with the
    costs `runtime` adds (default: none, the `ideal` runtime) in the SimPy engine."""
    if budget is None:
        budget = schedule.budget_bytes
    runtime = runtime or IDEAL
    prep = prepared or prepare(schedule, profile, runtime)
    with paused_gc():
        e = _Engine(prep, budget, hook, record_trace)
        e.run()
    cache = e.cache
    rec = RunRecord(
        end_time=e.end_time, busy={k: math.fsum(v) for k, v in e.busy.items()},
        stall_s=math.fsum(e.stalls), compute_s=math.fsum(e.computed),
        dram_bytes=e.dram_bytes, flash_bytes=e.flash_bytes, error=e.error,
        init_end=e.init_end, stages=e.stages, timeline=e.pool.timeline,
        peak=e.pool._final(), oom=e.pool.oom, events=e.env.scheduled,
        page_faults=cache.faults if cache else 0,
        refault_bytes=cache.fault_bytes if cache else 0,
        evicted_bytes=cache.evicted_total if cache else 0,
        thrashed=bool(cache and cache.faults), evicted=bool(cache and cache.evicted_total))
    metrics = assemble(prep, budget, rec, "simpy")
    intervals = sorted(e.intervals, key=lambda i: (i.start, i.resource, i.step)) \
        if record_trace else []
    # the pool calls back into the engine: without that cycle the run's memory is freed now,
    # not at a full collection (planning and evaluating pause the collector)
    e.pool.on_pending = None
    return SimResult(metrics, Trace(intervals, list(e.pool.timeline), "sim"))
