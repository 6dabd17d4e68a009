"""The discrete-event engine: executes a Schedule on a hardware model built from a profile.

Resources: storage (one request stream; a read's time comes from the request-size model),
a copy unit and a transform unit (FIFO single servers), and the GPU (one in-order queue: computes run in list order).
With `gpu.shared_with_transfers` (a CPU OpenCL device) copies, transforms and computes are served
by one FIFO unit: each waits until the unit is free, in order of arrival.
A step that waits for work on another unit (a copy for its read, a kernel for its load, a
load for the kernel that freed its memory) starts `gpu.sync_latency` after that work ends; kernels
on the in-order GPU queue follow each other without it. Where the profile gives a hop its own
latency (`gpu.sync_read`, `sync_copy`, `sync_transform`, `sync_kernel`, `sync_free`) that hop
takes it instead; a given `sync_read` also applies to reads that waited for a free.
With `storage.compute_contention` k > 1, a read progresses k times slower while a kernel runs
(cores or DRAM bandwidth shared between I/O and compute, as on a CPU OpenCL device): reads are
then served one at a time by a storage process that re-plans at every kernel start and end.
Every allocation waits on the memory pool's budget. A schedule that can make no progress
(an allocation that can never fit, or a cycle of waits) is reported infeasible, not hung.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import simpy

from hwprofiles.runtime import RuntimeProfile
from hwprofiles.schema import HardwareProfile
from hwprofiles.units import format_bytes, format_time
from sim.hardware import IDEAL, HardwareModel, unstated_formats
from sim.memory import (
    PREALLOCATED,
    PRIO_COMPUTE,
    PRIO_LOAD,
    Activations,
    MemoryPool,
    PreallocatedPool,
    buffer_parts,
)
from sim.metrics import Metrics
from sim.pagecache import PageCache
from sim.schedule import Compute, Free, Load, Schedule
from sim.trace import Interval, Trace

# (step, stage, nominal seconds) -> actual seconds: lets tests and the planner perturb durations
DurationHook = Callable[[object, str, float], float]


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


class _Run:
    """State of one simulation (kept out of the public API)."""

    def __init__(self, schedule: Schedule, profile: HardwareProfile, budget: int | None,
                 hook: DurationHook | None, record_trace: bool, runtime: RuntimeProfile):
        self.s = schedule
        self.hw = HardwareModel(profile, runtime)
        self.rt = runtime
        self.env = _CountingEnvironment()
        self.pool = MemoryPool(self.env, budget, profile.memory_limit(), schedule.budget_scope)
        self.cache = (PageCache(self.pool, profile.os.page_size, profile.os.readahead)
                      if runtime.holding == "mmap" else None)
        self.hook = hook
        self.record = record_trace
        self.intervals: list[Interval] = []
        # storage, copy and transform are FIFO single servers whose service time is known on
        # arrival, so a reservation (the time each becomes free) gives the same start times
        # as a queue, with one timeout per use instead of request/release events
        self.free_at = {"storage": 0.0, "copy": 0.0, "transform": 0.0, "gpu": 0.0, "host": 0.0}
        # which reservation each stage uses: copies and transforms take the GPU's when shared;
        # a runtime's parsing, program builds and CPU-side transforms take the host's
        self.shared = profile.gpu.shared_with_transfers
        self.unit = {"storage": "storage", "copy": "copy", "transform": "transform",
                     "parse": "host", "build": "host"}
        if self.shared:
            self.unit.update(copy="gpu", transform="gpu")
        if self.hw.transform_on_host:
            self.unit["transform"] = "host"
        self.done = [self.env.event() for _ in schedule.steps]
        self.hidden_latency = self.hw.hidden_read_latency
        self.sync = profile.gpu.sync_latency
        g = profile.gpu
        self.hop = {h: g.hop(h) for h in ("read", "copy", "transform", "kernel", "free")}
        # a read after a free: at once, unless the read hop is measured apart
        self.hop["read_free"] = 0.0 if g.sync_read is None else g.sync_read
        self.hop["parse"] = self.sync
        self.synchronised = any(v > 0 for v in self.hop.values())
        self.contention = profile.storage.compute_contention
        if self.contention > 1.0:
            self.storage_unit = simpy.Resource(self.env, 1)
            self.kernel_running = False
            self.kernel_change = self.env.event()  # succeeds at the next kernel start or end
        self.end_time_read: dict[int, float] = {}
        # loads whose read end a lock-step pipeline's kernels wait for (Compute.after_read), and
        # the tensors of loads into preallocated buffers
        self.read_done: dict[int, simpy.Event] = {}
        self.buffered: set[str] = set()
        self.is_compute, self.is_free = [], []
        for st in schedule.steps:
            compute = isinstance(st, Compute)
            self.is_compute.append(compute)
            self.is_free.append(isinstance(st, Free))
            if compute:
                for i in st.after_read:
                    self.read_done[i] = self.env.event()
            elif isinstance(st, Load) and st.preallocated:
                self.buffered.update(st.tensors)
        self.end_time = [0.0] * len(schedule.steps)
        self.location: dict[str, str] = {}
        self.busy = dict.fromkeys(("storage", "copy", "transform", "gpu"), 0.0)
        self.stall = 0.0
        self.compute_s = 0.0
        self.dram_bytes = 0
        self.flash_bytes = 0
        self.error: str | None = None
        self.labels = [inv.label for inv in schedule.invocations]
        self.activations = Activations(schedule.steps)
        self.init_end: float | None = None  # when the first kernel started
        self.held_files = 0  # host copies kept until init ends (runtime host_copy)
        self.init_ready = 0.0  # programs built, session set up
        self.stages: list[tuple[str, float, float]] = []  # (stage, start, end) of loads, builds

    def dur(self, step: object, stage: str, t: float) -> float:
        return self.hook(step, stage, t) if self.hook and t > 0 else t

    def interval(self, resource: str, name: str, step: int, start: float, nbytes: int = 0,
                 inv: str = "") -> None:
        end = self.env.now
        self.busy[resource] = self.busy.get(resource, 0.0) + end - start
        if self.record:
            self.intervals.append(Interval(resource, name, step, start, end, nbytes, inv))

    def wait(self, ids: Iterable[int]):
        """Wait until every step in `ids` has finished: one by one, skipping finished ones
        (cheaper than a SimPy AllOf condition, same resume time)."""
        for i in ids:
            ev = self.done[i]
            if not ev.processed:
                yield ev

    def synced(self, ids: Iterable[int], hop: str, compute: bool = False):
        """Wait until every step in `ids` has finished and its end has reached this step's unit:
        the `hop`'s sync latency after a load or a kernel (a host-side free is seen at once unless
        the read hop is measured apart; a kernel waiting for an earlier kernel follows it on the
        in-order queue)."""
        yield from self.wait(ids)
        h, hf = self.hop[hop], self.hop["read_free"] if hop == "read" else 0.0
        ready = max([0.0] + [self.end_time[i] + (hf if self.is_free[i] else 0.0 if (
            compute and self.is_compute[i]) else h) for i in ids])
        if ready > self.env.now:
            yield self.env.timeout(ready - self.env.now)

    def use(self, name: str, step: Load, stage: str, t: float, after_stage: bool = True,
            nbytes: int | None = None):
        """Run one stage of a load on its unit (FIFO); a stage that follows another stage of the
        load starts no earlier than `sync_latency` after that stage's end (now); a read, no earlier
        than `sync_latency` after the start (the runtime's first dispatch)."""
        unit = self.unit[name]
        nbytes = step.bytes if nbytes is None else nbytes
        # a read is dispatched by the runtime's host thread: never before one sync latency
        start = max(self.env.now + self.hop[stage] if after_stage
                    else max(self.env.now, self.hop["read"]), self.free_at[unit])
        label = f"{stage} {','.join(step.tensors)[:80]}"
        if unit == "storage" and self.contention > 1.0:
            began = yield from self.contended_read(step.id, label, self.dur(step, stage, t),
                                                   start - self.env.now, nbytes)
            self.stages.append((stage, began, self.env.now))
            return
        t = self.dur(step, stage, t)
        hidden = self.hidden_latency if unit == "storage" else 0.0
        if hidden > 0.0:
            # the reader submitted this read while the device was still busy: its first
            # request's latency ran during the transfer of the read ahead of it
            dispatch = max(self.env.now, self.sync)
            lat = min(hidden, t)
            end = max(self.free_at[unit], dispatch + lat) + t - lat
        else:
            end = start + t
        self.free_at[unit] = end
        yield self.env.timeout(end - self.env.now)
        self.interval("host" if unit == "host" else name, label, step.id, start, nbytes)
        self.stages.append((stage, start, end))

    def contended_read(self, sid: int, label: str, t: float, delay: float, nbytes: int):
        """A read that needs `t` seconds alone, dispatched after `delay`, served in arrival
        order and progressing `storage.compute_contention` times slower while a kernel runs;
        returns when it started."""
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
        self.interval("storage", label, sid, start, nbytes)
        return start

    def kernel_state(self, running: bool) -> None:
        """Record a kernel starting or ending and wake the reads that progress at its pace."""
        self.kernel_running = running
        change, self.kernel_change = self.kernel_change, self.env.event()
        change.succeed()

    def release_file(self, nbytes: int) -> None:
        """Free a load's file buffer, or keep it until the first kernel (runtime host_copy)."""
        if self.rt.host_copy == "until_init" and self.init_end is None:
            self.held_files += nbytes
        else:
            self.pool.free(nbytes, "staging")

    # --- step processes ----------------------------------------------------------------------
    def build(self, seconds: float, programs: int):
        """Session set-up and program builds on the host before the first kernel can run."""
        end = self.free_at["host"] = seconds
        yield self.env.timeout(seconds)
        self.interval("host", f"build {programs} program(s)", -1, 0.0)
        self.stages.append(("build", 0.0, end))

    def read_finished(self, st: Load) -> None:
        """Signal the kernels that wait for this load's read (a lock-step barrier)."""
        ev = self.read_done.get(st.id)
        if ev is not None:
            self.end_time_read[st.id] = self.env.now
            ev.succeed()

    def load(self, st: Load):
        yield from (self.synced(st.after, "read") if self.synchronised else self.wait(st.after))
        if self.rt.init_order == "before_load" and self.init_ready > self.env.now:
            yield self.env.timeout(self.init_ready - self.env.now)
        b = st.bytes
        # a load into the schedule's preallocated buffers takes nothing from the pool
        pre = st.preallocated
        pool = self.pool if not pre else PREALLOCATED
        what = f"load step {st.id} ({b} bytes)"
        stages = self.hw.load_stages(b, st.path, st.dst, len(st.tensors), st.read_bytes)
        zero_copy = self.hw.profile.transfer.zero_copy
        rb = b if st.read_bytes is None else st.read_bytes
        if self.cache is not None and not pre:
            # a mapped file: pages are read into the page cache and kernels read them there
            yield pool.alloc(b, "weights", PRIO_LOAD, what)
            self.cache.pin(st.tensors)
            yield from self.use("storage", st, "read", stages["read"], False)
            for t in st.tensors:
                self.cache.insert(t, self.s.tensor_bytes[t])
            self.cache.unpin(st.tensors)
            self.flash_bytes += b
            for t in st.tensors:
                self.location[t] = "buffer"
            self.finish(st.id)
            return
        if st.path == "direct" and zero_copy:
            # pre-laid-out data is read straight into its mapped final allocation
            if not pre:
                yield pool.alloc(b, "weights", PRIO_LOAD, what)
            yield from self.use("storage", st, "read", stages["read"], False, rb)
            if self.read_done:
                self.read_finished(st)
            self.flash_bytes += rb
        elif st.path == "direct":
            # read into a host staging buffer, then one copy into the final image/buffer
            if not pre:
                yield pool.alloc(b, "staging", PRIO_LOAD, what)
            yield from self.use("storage", st, "read", stages["read"], False, rb)
            if self.read_done:
                self.read_finished(st)
            self.flash_bytes += rb
            if st.copy_after:
                yield from self.wait(st.copy_after)
            if not pre:
                yield pool.alloc(b, "weights", PRIO_LOAD, what)
            yield from self.use("copy", st, "copy", stages["copy"])
            pool.free(b, "staging")
            self.dram_bytes += 2 * b
        else:
            fb = self.hw.file_bytes(b, st.path) if st.read_bytes is None else st.read_bytes
            if not pre:
                yield pool.alloc(fb, "staging", PRIO_LOAD, what)
            yield from self.use("storage", st, "read", stages["read"], False, fb)
            if self.read_done:
                self.read_finished(st)
            self.flash_bytes += fb
            held, is_file = fb, True  # the buffer that holds the data now
            if st.path == "via_buffer" and (fb != b or stages["parse"] > 0):
                # the runtime parses (and converts) the file
                if fb != b:
                    if not pre:
                        yield pool.alloc(b, "staging", PRIO_LOAD, what)
                yield from self.use("parse", st, "parse", stages["parse"], nbytes=fb)
                if fb != b:
                    self.release(fb, True, pool)
                    held, is_file = b, False
            if st.copy_after:
                yield from self.wait(st.copy_after)
            if not zero_copy or st.path == "staged":  # host staging -> GPU buffer
                if not pre:
                    yield pool.alloc(b, "staging", PRIO_LOAD, what)
                yield from self.use("copy", st, "copy", stages["copy"])
                self.release(held, is_file, pool)
                held, is_file = b, False
                self.dram_bytes += 2 * b
            if st.dst == "texture":
                if not pre:
                    yield pool.alloc(b, "weights", PRIO_LOAD, what)
                yield from self.use("transform", st, "transform",
                                    stages["transform"])
                self.release(held, is_file, pool)
                self.dram_bytes += 2 * b
            else:
                pool.move(b, "staging", "weights")
        for t in st.tensors:
            self.location[t] = st.dst
        self.finish(st.id)

    def release(self, nbytes: int, is_file: bool,
                pool: MemoryPool | PreallocatedPool | None = None) -> None:
        if pool is PREALLOCATED:
            return
        if is_file:
            self.release_file(nbytes)
        else:
            self.pool.free(nbytes, "staging")

    def fault(self, st: Compute):
        """Fault the evicted pages of a kernel's mapped weights back before it runs."""
        cache = self.cache
        missing = [(w, cache.missing(w)) for w in st.weights if cache.missing(w) > 0]
        if not missing:
            return
        t = self.dur(st, "fault", sum(self.hw.fault_time(n) for _, n in missing))
        nbytes = sum(n for _, n in missing)
        label = f"fault {','.join(w for w, _ in missing)[:80]}"
        if self.contention > 1.0:
            yield from self.contended_read(st.id, label, t, 0.0, nbytes)
        else:
            start = max(self.env.now, self.free_at["storage"])
            end = self.free_at["storage"] = start + t
            yield self.env.timeout(end - self.env.now)
            self.interval("storage", label, st.id, start, nbytes)
        for w, _ in missing:
            self.flash_bytes += cache.restore(w)

    def compute(self, st: Compute, prev: int | None):
        env, pool = self.env, self.pool
        # inputs are earlier computes, so finished once the previous compute (in-order GPU) is
        deps = st.after if prev is None else (prev, *st.after)
        yield from (self.synced(deps, "kernel", compute=True) if self.synchronised
                    else self.wait(deps))
        for i in st.after_read:  # a lock-step pipeline's barrier: the next layer's read
            if not self.read_done[i].processed:
                yield self.read_done[i]
            if self.end_time_read[i] + self.sync > env.now:
                yield env.timeout(self.end_time_read[i] + self.sync - env.now)
        if prev is None and self.init_ready > env.now:
            yield env.timeout(self.init_ready - env.now)
        data_ready = max([0.0] + [self.end_time[i] for i in st.inputs]
                         + ([self.end_time[prev]] if prev is not None else []))
        what = f"compute step {st.id} ({st.op})"
        if self.cache is not None:
            self.cache.pin(st.weights)
        # the GPU was free and this op's inputs ready at data_ready; waiting past it is a stall
        yield pool.alloc_parts({"activations": st.output_bytes, "workspace": st.workspace_bytes,
                                "kv": st.state_bytes}, PRIO_COMPUTE, what)
        if self.cache is not None:
            yield from self.fault(st)
        t = self.dur(st, "compute", self.hw.compute_time(st, self.s.tensor_bytes, self.location))
        # on a shared unit, wait for the copies/transforms that reached it first
        start = max(env.now, self.free_at["gpu"]) if self.shared else env.now
        if self.shared:
            self.free_at["gpu"] = start + t
        if self.init_end is None:
            self.init_end = start
            if self.held_files:
                yield env.timeout(start - env.now)
                pool.free(self.held_files, "staging")
                self.held_files = 0
        self.stall += start - data_ready
        if self.contention > 1.0:  # reads slow down while it runs: mark its start and end
            yield env.timeout(start - env.now)
            self.kernel_state(True)
            yield env.timeout(t)
            self.kernel_state(False)
        else:
            yield env.timeout(start + t - env.now)
        self.compute_s += t
        self.dram_bytes += st.input_bytes + st.output_bytes + sum(
            self.s.tensor_bytes[w] for w in st.weights)
        self.interval("gpu", st.op, st.id, start, 0, self.labels[st.invocation])
        if self.cache is not None:
            self.cache.unpin(st.weights)
        self.activations.release(pool, st)
        self.finish(st.id)

    def free(self, st: Free):
        yield from (self.synced(st.after, "free") if self.synchronised else self.wait(st.after))
        if self.cache is not None:
            for t in st.tensors:
                self.cache.drop(t)
        self.pool.free(sum(self.s.tensor_bytes[t] for t in st.tensors
                           if t not in self.buffered), "weights")
        self.finish(st.id)

    def finish(self, sid: int) -> None:
        self.end_time[sid] = self.env.now
        self.done[sid].succeed()

    # --- driver --------------------------------------------------------------------------------
    def run(self) -> None:
        budget = self.pool.budget
        if self.s.buffers:  # preallocated buffers: taken at the start, held to the end
            parts = buffer_parts(self.s.buffers)
            if budget is not None and self.pool.gated_bytes(parts) > budget:
                self.error = (f"the schedule's preallocated buffers need "
                              f"{sum(parts.values())} bytes, more than the budget of {budget} "
                              "bytes")
                return
            self.pool.request(parts, PRIO_COMPUTE, "preallocated buffers")
        seconds, programs = init_cost(self.s, self.rt)
        if seconds > 0:
            self.init_ready = seconds
            self.env.process(self.build(seconds, programs))
        prev: int | None = None
        for st in self.s.steps:
            if isinstance(st, Load):
                if budget is not None and st.bytes > budget and not st.preallocated:
                    self.error = (f"load step {st.id} needs {st.bytes} bytes at once, more than the "
                                  f"budget of {budget} bytes")
                    return
                self.env.process(self.load(st))
            elif isinstance(st, Compute):
                self.env.process(self.compute(st, prev))
                prev = st.id
            elif isinstance(st, Free):
                self.env.process(self.free(st))
        self.env.run()
        pending = [i for i, ev in enumerate(self.done) if not ev.triggered]
        if pending:
            blocked = self.pool.blocked
            head = (f"; waiting for memory: {blocked[0][0]} needs {blocked[0][1]} bytes with "
                    f"{self.pool.used} of {budget} bytes in use") if blocked else ""
            self.error = (f"schedule cannot complete within the budget: {len(pending)} step(s) "
                          f"never ran, first step {pending[0]}{head}")


def init_cost(schedule: Schedule, runtime: RuntimeProfile) -> tuple[float, int]:
    """Seconds of session set-up and program builds before the first kernel, and how many
    distinct programs the runtime builds (per op kind and dtype, or per op shape)."""
    if not runtime.program_cost and not runtime.init_fixed:
        return runtime.init_fixed, 0
    if runtime.programs_per == "runtime":
        return runtime.init_fixed + runtime.program_cost * runtime.program_count, \
            runtime.program_count
    if runtime.programs_per == "shape":
        keys = {(c.kind, c.dtype, c.flops, c.weights and tuple(schedule.tensor_bytes[w]
                for w in c.weights), c.input_bytes, c.output_bytes) for c in schedule.computes}
    else:
        keys = {(c.kind, c.dtype) for c in schedule.computes}
    return runtime.init_fixed + runtime.program_cost * len(keys), len(keys)


def simulate(schedule: Schedule, profile: HardwareProfile, *, budget: int | None = None,
             hook: DurationHook | None = None, record_trace: bool = True,
             runtime: RuntimeProfile | None = None) -> SimResult:
    """Run `schedule` on `profile` under `budget` (default: the schedule's own budget) with the
    costs `runtime` adds (default: none, the `ideal` runtime)."""
    if budget is None:
        budget = schedule.budget_bytes
    runtime = runtime or IDEAL
    r = _Run(schedule, profile, budget, hook, record_trace, runtime)
    r.run()
    # the end of the last load or kernel: a trailing free is host bookkeeping, not latency
    latency = max([0.0] + [r.end_time[st.id] for st in schedule.steps
                           if not isinstance(st, Free)])
    inv_end = [0.0] * len(schedule.invocations)
    for st in schedule.steps:
        if isinstance(st, Compute):
            inv_end[st.invocation] = max(inv_end[st.invocation], r.end_time[st.id])
    inv_lat = [b - a for a, b in zip([0.0, *inv_end[:-1]], inv_end, strict=True)]
    avg = r.pool.time_average(latency)
    flash = r.flash_bytes if r.error is None else max(r.flash_bytes, schedule.streamed_bytes)
    energy = None
    e = profile.energy
    if e is not None:
        energy = (flash * e.storage_read_per_byte
                  + r.dram_bytes * e.dram_per_byte + schedule.total_flops * e.gpu_per_flop)
    weight_bytes = sum(schedule.tensor_bytes.values())
    init = r.init_end if r.init_end is not None else latency
    limit = profile.memory_limit()
    outcome, error = memory_outcome(r, profile, runtime, limit)
    if r.error is not None:
        error = r.error
    cache = r.cache
    metrics = Metrics(
        policy=schedule.policy, workload=schedule.workload, profile=profile.name,
        budget_bytes=budget, feasible=error is None, error=error,
        latency_s=latency, cold_latency_s=inv_lat[0] if inv_lat else 0.0,
        warm_latency_s=float(np.mean(inv_lat[1:])) if len(inv_lat) > 1 else None,
        invocation_latencies_s=inv_lat,
        peak_memory_bytes=r.pool.peak, peak_memory_by_category=dict(r.pool.peak_by_cat),
        avg_memory_bytes=avg["total"],
        avg_memory_by_category={k: v for k, v in avg.items() if k != "total"},
        weight_bytes=weight_bytes, flash_bytes_read=flash,
        compute_s=r.compute_s, gpu_stall_s=r.stall,
        utilisation={k: (v / latency if latency > 0 else 0.0) for k, v in r.busy.items()},
        energy_j=energy, sim_events=r.env.scheduled, steps=len(schedule.steps),
        meta=_meta(schedule, runtime),
        runtime=runtime.name, init_s=init,
        exec_s=(inv_end[0] - init) if inv_end else 0.0,
        init_breakdown_s=init_breakdown(r.stages, init),
        peak_weight_bytes=r.pool.peak_weights_staging,
        memory_at_peak_by_category=dict(r.pool.at_peak),
        memory_limit_bytes=limit, memory_outcome=outcome,
        page_faults=cache.faults if cache else 0,
        refault_bytes=cache.fault_bytes if cache else 0,
        evicted_bytes=cache.evicted_total if cache else 0,
        budget_scope=schedule.budget_scope,
    )
    trace = Trace(sorted(r.intervals, key=lambda i: (i.start, i.resource, i.step)),
                  list(r.pool.timeline), "sim")
    return SimResult(metrics, trace)


def _meta(schedule: Schedule, runtime: RuntimeProfile) -> dict[str, object]:
    """The schedule's metadata, plus the quantized formats the runtime states no kernel
    efficiency for (they ran at its op-class efficiency alone)."""
    meta = dict(schedule.meta)
    if not runtime.is_neutral:
        unstated = unstated_formats(runtime, (s for s in schedule.steps if isinstance(s, Compute)))
        if unstated:
            meta["runtime_unstated_formats"] = ", ".join(unstated)
    return meta


def init_breakdown(stages: list[tuple[str, float, float]], init: float) -> dict[str, float]:
    """Seconds each load stage (and program builds) worked before the first kernel started."""
    out: dict[str, float] = {}
    for stage, start, end in stages:
        if start < init:
            out[stage] = out.get(stage, 0.0) + min(end, init) - start
    return out


def memory_outcome(r: _Run, profile: HardwareProfile, runtime: RuntimeProfile,
                   limit: int) -> tuple[str, str | None]:
    """What the OS did with the app's memory: fits | evicted | thrashed | killed (with why)."""
    if r.pool.oom is not None:
        when, held = r.pool.oom
        what = ("its anonymous memory (activations, staging, KV cache) alone" if r.cache
                else f"runtime {runtime.name} holds its weights in anonymous memory, which")
        reserve = (f" less os.reserved_memory {format_bytes(profile.os.reserved_memory)}"
                   if profile.os.reserved_memory else "")
        return "killed", (
            f"killed by the low-memory killer at {format_time(when)}: {format_bytes(held)} in use, "
            f"above the {format_bytes(limit)} one app may hold on {profile.name} "
            f"(dram.app_memory{reserve}); {what} cannot be paged out")
    if r.cache is not None and r.cache.faults:
        return "thrashed", None
    if r.cache is not None and r.cache.evicted_total:
        return "evicted", None
    return "fits", None
