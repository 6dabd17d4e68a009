"""Replay a saved Schedule on a real OpenCL device and measure its timeline.

Weights live in one file on disk (each load's tensors contiguous, 4 KiB aligned). A single
storage thread serves reads in issue order (like the simulator's storage FIFO), each read split
into at most `queue_depth` contiguous parts read at once (`BlobReader.read_parts`), into
page-aligned host staging buffers; with `reads_in_flight` > 1 that many storage threads submit
successive reads, so requests stay in flight across reads (an io_uring-style reader, as the
engine models). Copies run on a copy queue, buffer->image transforms on a transform queue, and one
FLOP-matched proxy kernel per compute on an in-order compute queue (list order), which waits
on its loads' events. Loads, frees and every allocation wait as the simulator's engine does:
`after` steps done, memory granted within the budget by a host-side pool. One host thread
drives it all: it advances only the steps that an event concerns (a dependency finished, memory
was granted, a read or a device command completed), so its cost per step does not grow with the
schedule, and it records how long it was busy (`ReplayResult.driver_busy_s`).
"""

from __future__ import annotations

import gc
import json
import math
import queue as _queue
import sys
import tempfile
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from sim.memory import (
    PREALLOCATED,
    PRIO_COMPUTE,
    PRIO_LOAD,
    Activations,
    BudgetPool,
    buffer_parts,
)
from sim.schedule import Compute, Free, Load, Schedule
from sim.trace import Interval, Trace
from validate.device import Device, host_now
from validate.errors import ValidateError
from validate.kernels import (
    FLOPS_PER_ITER,
    ImageLayout,
    build,
    clock_offset,
    create_image,
    global_size,
    image_layout,
    is_cpu,
    max_global_for,
    proxy_kernel,
    transform_src,
)
from validate.microbench import enqueue_transform
from validate.reader import BlobReader, align_up, aligned_array, write_blob_file

LOCAL = 64
# a gathered load's rows lie this far apart in the replay's file (past the kernel's default
# 128 KiB readahead, so no row arrives with another's request), all of them within GATHER_SPAN
GATHER_STRIDE = 256 << 10
GATHER_SPAN = 64 << 20
SWITCH_INTERVAL = 10e-6  # s: how long a thread back from a system call may wait for the GIL


def switch_interval_for(info: Any) -> float | None:
    """Python's thread switch interval for a timed run on a device: SWITCH_INTERVAL where the
    device computes apart from the host; None (the interpreter's own, 5 ms) on a CPU device,
    whose kernels keep the host's cores busy: a forced switch waits there until the OS runs
    the thread taking over (on one PoCL start with it the zoo held-out set came out 32-39% off
    end to end, against 13-17% on earlier starts without: docs/calibration.md)."""
    return None if is_cpu(info) else SWITCH_INTERVAL


@dataclass
class ReplayOptions:
    """How to replay: size scale, where weight files go, the reader's queue depth."""

    scale: float = 1.0
    weights_dir: Path | None = None
    queue_depth: int = 4
    max_global: int | None = None  # None: `max_global_for` the device
    reads_in_flight: int = 1  # reads submitted at once (1: one after the other)


@dataclass
class ReplayResult:
    """What one replay measured."""

    schedule: str
    device: dict[str, Any]
    trace: Trace
    latency_s: float
    wall_s: float
    peak_memory_bytes: int
    budget_bytes: int | None
    storage_mode: str
    scale: float
    driver_busy_s: float = 0.0  # host time the driver thread spent advancing steps
    wakes: int = 0  # times the driver woke for a completion
    # [step, resource, memory requested, granted, issued to its unit] in host seconds from the
    # start (None where there was no such moment; for a free, issued = when it was done)
    marks: list[list[Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"format": "weightstream-replay", "schedule": self.schedule,
                "device": self.device, "latency_s": self.latency_s, "wall_s": self.wall_s,
                "peak_memory_bytes": self.peak_memory_bytes, "budget_bytes": self.budget_bytes,
                "storage_mode": self.storage_mode, "scale": self.scale,
                "driver_busy_s": self.driver_busy_s, "wakes": self.wakes, "marks": self.marks,
                "source": self.trace.source,
                "intervals": [asdict(i) for i in self.trace.intervals],
                "memory": [list(r) for r in self.trace.memory]}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path) -> ReplayResult:
        """Read a replay saved by `save`."""
        d = json.loads(Path(path).read_text())
        return cls(d["schedule"], d["device"], load_trace(path), d["latency_s"], d["wall_s"],
                   d["peak_memory_bytes"], d["budget_bytes"], d["storage_mode"], d["scale"],
                   d.get("driver_busy_s", 0.0), d.get("wakes", 0), d.get("marks", []))


def load_trace(path: str | Path) -> Trace:
    """Read the trace of a saved replay (or any file with 'intervals' and 'memory')."""
    data = json.loads(Path(path).read_text())
    return Trace([Interval(**i) for i in data["intervals"]],
                 [tuple(r) for r in data.get("memory", [])], data.get("source", "replay"))


def scale_schedule(s: Schedule, f: float) -> Schedule:
    """The same plan with every byte count, FLOP count and the budget multiplied by `f`."""
    if f == 1.0:
        return s
    if not 0 < f <= 1e6:
        raise ValidateError(f"scale must be a positive factor, found {f}")

    surplus = [0.0]  # bytes added by rounding small sizes up

    def sb(b: int) -> int:
        n = max(16, round(b * f)) if b > 0 else 0
        surplus[0] += max(0.0, n - b * f)
        return n

    tb = {t: sb(b) for t, b in s.tensor_bytes.items()}
    steps: list[Any] = []
    for st in s.steps:
        if isinstance(st, Load):
            rb = None if st.read_bytes is None else sb(st.read_bytes)
            steps.append(replace(st, bytes=sum(tb[t] for t in st.tensors), layout=None,
                                 read_bytes=rb))
        elif isinstance(st, Compute):
            steps.append(replace(st, flops=round(st.flops * f), input_bytes=sb(st.input_bytes),
                                 output_bytes=sb(st.output_bytes),
                                 workspace_bytes=sb(st.workspace_bytes),
                                 state_bytes=sb(st.state_bytes)))
        else:
            steps.append(st)
    buffers = {k: {**v, "bytes": sb(int(v["bytes"]))} for k, v in s.buffers.items()}
    # the budget grows by what rounding added, so a plan that fitted still fits
    budget = None if s.budget_bytes is None else math.ceil(s.budget_bytes * f + surplus[0])
    return Schedule(s.policy, s.workload, s.profile, budget, tb, list(s.invocations), steps,
                    {**s.meta, "scale": f}, s.runtime, s.budget_scope, buffers)


@dataclass
class _Obj:
    """A device weight object holding one load's tensors."""

    kind: str  # 'b' buffer, 'i' image2d, 'a' image2d_array
    mem: Any = None
    layout: ImageLayout | None = None
    live: set[str] = field(default_factory=set)
    key: tuple = ()


@dataclass
class _LoadState:
    stage: int = 0
    offset: int = 0
    region: int = 0  # bytes of the host staging region (layout-sized, 4 KiB aligned)
    pieces: tuple[int, ...] = ()  # file offsets of a gathered load's rows (one request each)
    piece: int = 0  # bytes of each of those requests
    kind: str = "b"
    layout: ImageLayout | None = None
    ticket: Any = None
    wticket: Any = None
    host: Any = None
    future: Future | None = None
    read: tuple[float, float] = (0.0, 0.0)
    gpu_buf: Any = None
    copy_ev: Any = None
    tr_ev: Any = None
    host_freed: bool = False
    gpu_freed: bool = False


class _Replay:
    """One replay run (state kept out of the public API)."""

    def __init__(self, dev: Device, s: Schedule, opts: ReplayOptions, workdir: Path):
        self.dev, self.s, self.opts, self.workdir = dev, s, opts, workdir
        self.cl = dev.cl
        info = dev.info
        self.half_images = info.half_images
        self.texel_bytes = 8 if self.half_images else 16
        self.n = len(s.steps)
        self.done = [False] * self.n
        self.ev: list[Any] = [None] * self.n
        self.loads: dict[int, _LoadState] = {}
        self.objs: dict[str, _Obj] = {}  # tensor -> object
        self.notify: _queue.SimpleQueue = _queue.SimpleQueue()
        self.t0 = 0.0
        self.pool = BudgetPool(s.budget_bytes, lambda: host_now() - self.t0,
                               scope=s.budget_scope)
        self.activations = Activations(s.steps)
        self.cticket: dict[int, Any] = {}
        self.outstanding = 0
        self.last_copy = -1  # the load whose copy was enqueued last on the copy queue
        self.waiters: dict[int, tuple[_queue.SimpleQueue, threading.Thread]] = {}
        self.kernels: dict[tuple[str, bool], Any] = {}
        self.tr_kernels: dict[str, Any] = {}
        self.next_compute = 0
        self.cache: dict[tuple, list[Any]] = {}  # freed objects kept for reuse, by size/layout
        self.compute_ids = [st.id for st in s.steps if isinstance(st, Compute)]
        self.ready: deque[int] = deque()  # steps an event concerns, to advance next
        self.dependents: list[list[int]] = [[] for _ in s.steps]
        for st in s.steps:
            for d in dict.fromkeys((*st.after, *getattr(st, "inputs", ()))):
                self.dependents[d].append(st.id)
        self.busy_s = 0.0
        self.wakes = 0
        # (step, resource) -> [memory requested, granted, issued to the unit] (host s from t0)
        self.marks: dict[tuple[int, str], list[float | None]] = {}
        self.tickets: dict[tuple[int, str], Any] = {}  # (step, resource) -> its memory request
        self.buffered = {t for st in s.steps if isinstance(st, Load) and st.preallocated
                         for t in st.tensors}

    # --- preparation (not timed) ---------------------------------------------------------
    def prepare(self) -> None:
        info = self.dev.info
        off = 0
        for st in self.s.steps:
            if not isinstance(st, Load):
                continue
            if st.bytes > (info.max_alloc or 1 << 62):
                raise ValidateError(f"load step {st.id} needs one allocation of {st.bytes} bytes, "
                                    f"more than the device's max allocation {info.max_alloc}; "
                                    "shrink the schedule with --scale")
            ls = _LoadState(offset=off)
            if st.dst == "texture" and info.image_support:
                try:
                    ls.layout = image_layout(st.bytes, self.texel_bytes, info.image2d_max_width,
                                             info.image2d_max_height,
                                             max(1, info.image_max_array_size))
                except ValueError as exc:
                    raise ValidateError(f"load step {st.id}: {exc}; shrink with --scale") from None
                ls.kind = "i" if ls.layout.kind == "image2d" else "a"
                ls.region = align_up(ls.layout.nbytes)
            else:
                ls.region = align_up(max(16, st.bytes))
            if st.read_bytes is not None:  # whole sectors (the replay reads whole pages)
                ls.region = max(ls.region, align_up(st.read_bytes))
            extent = ls.region
            if st.request_bytes:  # gathered rows: one request per row, rows apart on flash
                n = -(-st.bytes // st.request_bytes)
                ls.piece = align_up(st.request_bytes)
                stride = max(ls.piece, min(GATHER_STRIDE, align_up(GATHER_SPAN // n)))
                ls.pieces = tuple(off + i * stride for i in range(n))
                ls.region = max(ls.region, n * ls.piece)
                extent = n * stride
            self.loads[st.id] = ls
            off += extent
        self.path = self.workdir / "weights.bin"
        size = align_up(max(off, 4096))
        if not self.path.exists() or self.path.stat().st_size != size:  # else an earlier run's
            write_blob_file(self.path, size)
        self.reader = BlobReader(self.path, self.opts.queue_depth)
        self.reader.drop_cache()
        self.storage = ThreadPoolExecutor(max(1, self.opts.reads_in_flight),
                                          thread_name_prefix="ws-storage")
        # kernels: transform program, one proxy program per weight-kind signature
        self.tr_prg = build(self.dev, transform_src()) if info.image_support else None
        computes = [st for st in self.s.steps if isinstance(st, Compute)]
        where = {t: self.loads[st.id].kind for st in self.s.steps if isinstance(st, Load)
                 for t in st.tensors}
        for c in computes:
            self._kernel(self._sig(c, where), self._half(c))
        act = max([16] + [align_up(max(c.input_bytes, c.output_bytes), 16) for c in computes])
        mf = self.cl.mem_flags
        self.act_in = self.cl.Buffer(self.dev.context, mf.READ_WRITE, act)
        self.act_out = self.cl.Buffer(self.dev.context, mf.READ_WRITE, act)
        self.cl.enqueue_fill_buffer(self.dev.compute_queue, self.act_in, np.float32(1.0), 0,
                                    act).wait()
        self._warm_up(where)
        self._preallocate()
        self.offset = clock_offset(self.dev)

    def _preallocate(self) -> None:
        """Create (and touch once) the host staging arrays and device objects the loads will
        take, like a runtime's caching allocator after its first run, so first-use allocation
        and page faults stay off the timed path. Per size/layout key at most as many as the
        budget lets be live at once (+1). Also start the storage, reader and waiter threads."""
        need: dict[tuple, list[int]] = {}  # key -> [count, bytes]
        for st in self.s.steps:
            if not isinstance(st, Load):
                continue
            ls = self.loads[st.id]
            keys = [(("host", ls.region), ls.region)]
            if ls.layout is not None and ls.kind in "ia":
                keys.append(((ls.kind, ls.layout), ls.layout.nbytes))
                if st.path != "direct":
                    keys.append((("b", ls.layout.nbytes), ls.layout.nbytes))
            else:
                n = align_up(max(16, st.bytes), 16)
                keys.append((("b", n), n))
            for k, n in keys:
                need.setdefault(k, [0, n])[0] += 1
        budget = self.s.budget_bytes
        cl, q = self.cl, self.dev.copy_queue
        biggest = max([4096] + [n for k, (_, n) in need.items() if k[0] != "host"])
        scratch = aligned_array(biggest)
        for key, (count, n) in need.items():
            if budget is not None:
                count = min(count, budget // max(1, n) + 1)
            for _ in range(count):
                if key[0] == "host":
                    obj = self.dev.host_array(n)
                elif key[0] == "b":
                    obj = cl.Buffer(self.dev.context, cl.mem_flags.READ_WRITE, n)
                    cl.enqueue_copy(q, obj, scratch[:n], is_blocking=False)
                else:
                    obj = self._image(key[1])
                    self._copy(_Obj(key[0], obj, key[1]), scratch[:n], q)
                self._give(key, obj)
        q.finish()
        self.storage.submit(lambda: None).result()
        for q in (self.dev.copy_queue, self.dev.transform_queue, self.dev.compute_queue):
            self._waiter(q.int_ptr)
        if self.loads:
            first = next(iter(self.loads.values()))
            host = self._take(("host", first.region))
            host = host if host is not None else self.dev.host_array(first.region)
            self.reader.read_parts(first.offset, first.region, host)
            self._give(("host", first.region), host)
            self.reader.drop_cache()

    def _sig(self, c: Compute, where: dict[str, str]) -> str:
        return "".join(where.get(t, "b") for t in c.weights)

    def _half(self, c: Compute) -> bool:
        return self.dev.info.fp16 and c.dtype != "fp32"

    def _kernel(self, sig: str, half: bool) -> Any:
        key = (sig, half)
        if key not in self.kernels:
            self.kernels[key] = proxy_kernel(self.dev, sig, half)
        return self.kernels[key]

    def _warm_up(self, where: dict[str, str]) -> None:
        """Run each kernel once on small objects so JIT compilation stays out of the timing."""
        cl, q = self.cl, self.dev.compute_queue
        small: dict[str, _Obj] = {}
        info = self.dev.info
        for kind in "bia":
            if kind == "b":
                small[kind] = _Obj("b", cl.Buffer(self.dev.context, cl.mem_flags.READ_WRITE, 4096))
            elif info.image_support:
                lay = image_layout(4096, self.texel_bytes, info.image2d_max_width,
                                   info.image2d_max_height, max(1, info.image_max_array_size),
                                   prefer_array=kind == "a")
                small[kind] = _Obj(kind, self._image(lay), lay)
        for (sig, _half), knl in self.kernels.items():
            args = [self.act_in, np.int32(1), self.act_out, np.int32(1), np.int32(1),
                    np.float32(0.999), np.float32(1e-3)]
            for k in sig:
                args += self._obj_args(small[k], 4096)
            knl.set_args(*args)
            cl.enqueue_nd_range_kernel(q, knl, (LOCAL,), (LOCAL,)).wait()
        if self.tr_prg is not None:
            for kind in "ia":
                o = small[kind]
                src = cl.Buffer(self.dev.context, cl.mem_flags.READ_WRITE, o.layout.nbytes)
                enqueue_transform(cl, self.dev.transform_queue, self.tr_prg, src, o.mem,
                                  o.layout, self.half_images, local=LOCAL,
                                  kernels=self.tr_kernels).wait()
                host = aligned_array(o.layout.nbytes)[:o.layout.nbytes]
                self._copy(o, host, self.dev.copy_queue).wait()

    def _image(self, lay: ImageLayout) -> Any:
        return create_image(self.dev, lay, self.half_images)

    def _obj_args(self, o: _Obj, nbytes: int) -> list[Any]:
        if o.kind == "b":
            return [o.mem, np.int32(max(1, nbytes // 16))]
        assert o.layout is not None
        n = [o.mem, np.int32(max(1, min(o.layout.texels, math.ceil(nbytes / self.texel_bytes)))),
             np.int32(o.layout.width)]
        if o.kind == "a":
            n.append(np.int32(o.layout.height))
        return n

    def _copy(self, o: _Obj, host: Any, q: Any) -> Any:
        cl = self.cl
        if o.kind == "b":
            return cl.enqueue_copy(q, o.mem, host, is_blocking=False)
        lay = o.layout
        assert lay is not None
        if o.kind == "i":
            return cl.enqueue_copy(q, o.mem, host, origin=(0, 0), region=(lay.width, lay.height),
                                   is_blocking=False)
        return cl.enqueue_copy(q, o.mem, host, origin=(0, 0, 0),
                               region=(lay.width, lay.height, lay.layers), is_blocking=False)

    # --- completion tracking ---------------------------------------------------------------
    def _watch(self, ev: Any, sid: int) -> Any:
        """Count `ev` as outstanding and have its queue's waiter thread signal step `sid` when it
        completes. Each queue is in order, so one thread per queue waiting on its events in
        enqueue order sees every completion as it happens (event callbacks can arrive late on
        some drivers)."""
        self.outstanding += 1
        self._waiter(ev.command_queue.int_ptr).put((ev, sid))
        return ev

    def _waiter(self, q: int) -> _queue.SimpleQueue:
        """The inbox of queue `q`'s waiter thread (started on first use)."""
        if q not in self.waiters:
            inbox: _queue.SimpleQueue = _queue.SimpleQueue()
            t = threading.Thread(target=self._wait_loop, args=(inbox,), daemon=True,
                                 name="ws-wait")
            t.start()
            self.waiters[q] = (inbox, t)
        return self.waiters[q][0]

    def _wait_loop(self, inbox: _queue.SimpleQueue) -> None:
        while True:
            item = inbox.get()
            if item is None:
                return
            ev, sid = item
            try:
                ev.wait()  # releases the GIL while the driver waits
            except Exception:  # noqa: BLE001 - a failed command is reported by _complete
                pass
            self.notify.put(sid)

    def _complete(self, ev: Any) -> bool:
        st = ev.command_execution_status
        if st < 0:
            raise ValidateError(f"an OpenCL command failed on {self.dev.info.name} (status {st})")
        return st == self.cl.command_execution_status.COMPLETE

    # --- step advancement ------------------------------------------------------------------
    def _deps_done(self, ids: tuple[int, ...]) -> bool:
        return all(self.done[i] for i in ids)

    def advance_load(self, st: Load) -> bool:
        ls = self.loads[st.id]
        # a load into preallocated buffers takes nothing from the budget (taken at the start)
        pool, b = (self.pool if not st.preallocated else PREALLOCATED), st.bytes
        if ls.stage == 0:
            if not self._deps_done(st.after):
                return False
            ls.ticket = self._request(st.id, "storage", {"staging": b}, PRIO_LOAD)
            ls.stage = 1
            return True
        if ls.stage == 1:
            if not ls.ticket.granted:
                return False
            host = self._take(("host", ls.region))
            ls.host = host if host is not None else self.dev.host_array(ls.region)
            self._issued(st.id, "storage")
            if ls.pieces:
                ls.future = self.storage.submit(self.reader.read_scattered, ls.pieces, ls.piece,
                                                ls.host)
            else:
                ls.future = self.storage.submit(self.reader.read_parts, ls.offset, ls.region,
                                                ls.host)
            ls.future.add_done_callback(lambda f, sid=st.id: self.notify.put(sid))
            self.outstanding += 1
            ls.stage = 2
            return True
        if ls.stage == 2:
            assert ls.future is not None
            if not ls.future.done():
                return False
            self.outstanding -= 1
            ls.read = ls.future.result()
            cat = "weights" if st.path == "direct" else "staging"
            ls.ticket = self._request(st.id, "copy", {cat: b}, PRIO_LOAD)
            ls.stage = 3
            return True
        if ls.stage == 3:
            if not ls.ticket.granted or not self._deps_done(st.copy_after):
                return False
            final = st.path == "direct" or st.dst == "buffer" or ls.layout is None
            if final:
                obj = self._new_obj(st, ls)
                n = ls.layout.nbytes if ls.layout is not None else align_up(b, 16)
                self._issued(st.id, "copy")
                ls.copy_ev = self._watch(self._copy(obj, ls.host[:n], self.dev.copy_queue), st.id)
                self.dev.copy_queue.flush()
                self.last_copy = st.id
                self._enqueued(st.id, ls.copy_ev)
                ls.stage = 6
                return True
            assert ls.layout is not None
            ls.gpu_buf = self._take(("b", ls.layout.nbytes)) or self.cl.Buffer(
                self.dev.context, self.cl.mem_flags.READ_WRITE, ls.layout.nbytes)
            self._issued(st.id, "copy")
            ls.copy_ev = self._watch(self.cl.enqueue_copy(
                self.dev.copy_queue, ls.gpu_buf, ls.host[:ls.layout.nbytes], is_blocking=False),
                st.id)
            self.dev.copy_queue.flush()
            self.last_copy = st.id
            ls.wticket = self._request(st.id, "transform", {"weights": b}, PRIO_LOAD)
            ls.stage = 4
            return True
        if ls.stage == 4:  # via_buffer -> texture: copy in flight, transform waits for memory
            moved = self._free_host_if_copied(ls, b, pool)
            if not ls.wticket.granted:
                return moved
            obj = self._new_obj(st, ls)
            assert ls.layout is not None
            # right behind its own copy, the transform goes on the copy queue (in order, so no
            # cross-queue event wait, which costs 0.2-0.4 ms on some drivers); behind other
            # loads' copies it goes on the transform queue, waiting on its copy's event
            same = self.last_copy == st.id
            self._issued(st.id, "transform")
            q = self.dev.copy_queue if same else self.dev.transform_queue
            ls.tr_ev = self._watch(enqueue_transform(
                self.cl, q, self.tr_prg, ls.gpu_buf, obj.mem, ls.layout,
                self.half_images, wait_for=None if same else [ls.copy_ev], local=LOCAL,
                kernels=self.tr_kernels), st.id)
            q.flush()
            self._enqueued(st.id, ls.tr_ev)
            ls.stage = 5
            return True
        if ls.stage == 5:
            moved = self._free_host_if_copied(ls, b, pool)
            if not ls.host_freed or not self._complete(ls.tr_ev):
                return moved
            self.outstanding -= 1
            pool.free(b, "staging")  # the GPU staging buffer
            self._give(("b", ls.layout.nbytes), ls.gpu_buf)
            ls.gpu_buf = None
            self._finish(st.id)
            return True
        if ls.stage == 6:  # final copy in flight
            if not self._complete(ls.copy_ev):
                return False
            self.outstanding -= 1
            if st.path == "direct":
                pool.free(b, "staging")
            else:
                pool.free(b, "staging")  # host staging
                pool.move(b, "staging", "weights")
            self._give(("host", ls.region), ls.host)
            ls.host = None
            self._finish(st.id)
            return True
        return False

    def _take(self, key: tuple) -> Any:
        objs = self.cache.get(key)
        return objs.pop() if objs else None

    def _give(self, key: tuple, obj: Any) -> None:
        self.cache.setdefault(key, []).append(obj)

    def _free_host_if_copied(self, ls: _LoadState, b: int, pool: Any) -> bool:
        if ls.host_freed or not self._complete(ls.copy_ev):
            return False
        self.outstanding -= 1
        ls.host_freed = True
        self._give(("host", ls.region), ls.host)
        ls.host = None
        pool.free(b, "staging")
        return True

    def _new_obj(self, st: Load, ls: _LoadState) -> _Obj:
        cl = self.cl
        if ls.layout is not None and ls.kind in "ia":
            key: tuple = (ls.kind, ls.layout)
            obj = _Obj(ls.kind, self._take(key) or self._image(ls.layout), ls.layout)
        else:
            n = align_up(max(16, st.bytes), 16)
            key = ("b", n)
            obj = _Obj("b", self._take(key) or cl.Buffer(self.dev.context,
                                                         cl.mem_flags.READ_WRITE, n))
        obj.key = key
        obj.live = set(st.tensors)
        for t in st.tensors:
            self.objs[t] = obj
        return obj

    def advance_compute(self, st: Compute) -> bool:
        if st.id in self.cticket:
            t = self.cticket[st.id]
            if self.ev[st.id] is None:
                if not t.granted:
                    return False
                self._enqueue_compute(st)
                return True
            if not self._complete(self.ev[st.id]):
                return False
            self.outstanding -= 1
            del self.cticket[st.id]
            self.activations.release(self.pool, st)
            self._finish(st.id)
            return True
        if self.compute_ids[self.next_compute] != st.id:
            return False  # computes are issued in list order (the previous one wakes this one)
        if any(self.loads[d].stage < 3 for d in st.after_read):
            return False  # a lock-step barrier: those reads have not finished
        for d in (*st.after, *st.inputs):
            if self.done[d]:
                continue
            if isinstance(self.s.steps[d], Free) or self.ev[d] is None:
                return False  # device work can wait on an event; a host step must be done
        self.cticket[st.id] = self._request(
            st.id, "gpu", {"activations": st.output_bytes, "workspace": st.workspace_bytes,
                           "kv": st.state_bytes}, PRIO_COMPUTE)
        self.next_compute += 1
        if self.next_compute < len(self.compute_ids):
            self.ready.append(self.compute_ids[self.next_compute])
        return True

    def _enqueue_compute(self, st: Compute) -> None:
        cl = self.cl
        half = self._half(st)
        sig = "".join(self.objs[t].kind for t in st.weights)
        knl = self._kernel(sig, half)
        wbytes = sum(self.s.tensor_bytes[t] for t in st.weights)
        g, iters = global_size(st.flops, wbytes + st.input_bytes + st.output_bytes,
                               self.opts.max_global or max_global_for(self.dev.info))
        args = [self.act_in, np.int32(st.input_bytes // 16), self.act_out,
                np.int32(st.output_bytes // 16), np.int32(iters), np.float32(0.999),
                np.float32(1e-3)]
        for t in st.weights:
            args += self._obj_args(self.objs[t], self.s.tensor_bytes[t])
        knl.set_args(*args)
        self._issued(st.id, "gpu")
        waits = [self.ev[d] for d in (*st.after, *st.inputs)
                 if self.ev[d] is not None and not self.done[d]]
        ev = cl.enqueue_nd_range_kernel(self.dev.compute_queue, knl, (g,), (LOCAL,),
                                        wait_for=waits or None)
        self.dev.compute_queue.flush()
        self.ev[st.id] = self._watch(ev, st.id)
        self.proxy_flops[st.id] = g * iters * FLOPS_PER_ITER

    def advance_free(self, st: Free) -> bool:
        if not self._deps_done(st.after):
            return False
        for t in st.tensors:
            obj = self.objs.pop(t)
            obj.live.discard(t)
            if not obj.live and obj.mem is not None:
                self._give(obj.key, obj.mem)
                obj.mem = None
        self.pool.free(sum(self.s.tensor_bytes[t] for t in st.tensors
                           if t not in self.buffered), "weights")
        self._issued(st.id, "free")
        self._finish(st.id)
        return True

    def _finish(self, sid: int) -> None:
        self.done[sid] = True
        self.left -= 1
        self.ready.extend(self.dependents[sid])

    def _enqueued(self, sid: int, ev: Any) -> None:
        """Load `sid`'s last device command is enqueued: computes may now wait on `ev`."""
        self.ev[sid] = ev
        self.ready.extend(d for d in self.dependents[sid] if self.is_compute[d])

    def _request(self, sid: int, resource: str, parts: dict[str, int], prio: int) -> Any:
        """Ask the pool for the memory of `sid`'s stage on `resource`; the driver advances the
        step once it is granted. Records the request time, and the grant time if it had to wait
        (None if granted at once)."""
        mark = self.marks.setdefault((sid, resource), [None, None, None])
        mark[0] = host_now() - self.t0
        asking = [True]

        def granted() -> None:
            mark[1] = None if asking[0] else host_now() - self.t0
            self.ready.append(sid)
        ticket = self.pool.request(parts, prio, on_grant=granted)
        asking[0] = False
        self.tickets[(sid, resource)] = ticket
        return ticket

    def _issued(self, sid: int, resource: str) -> None:
        """Record when the driver handed `sid`'s stage on `resource` to its unit (a read to the
        storage thread, a command to its queue; a free: when it was done)."""
        self.marks.setdefault((sid, resource), [None, None, None])[2] = host_now() - self.t0

    # --- driver ----------------------------------------------------------------------------
    def run(self) -> tuple[float, float]:
        budget = self.s.budget_bytes
        for st in self.s.steps:
            if isinstance(st, Load) and budget is not None and st.bytes > budget \
                    and not st.preallocated:
                raise ValidateError(f"load step {st.id} needs {st.bytes} bytes at once, more than "
                                    f"the budget of {budget} bytes")
        # a native runtime has no garbage collector: keep its pauses out of the timed run
        collecting = gc.isenabled()
        gc.disable()
        # a storage or waiter thread back from its system call waits for the GIL up to the
        # switch interval (5 ms) to stamp a read's end or signal a completion: the trace would
        # time the interpreter, not the device
        interval = sys.getswitchinterval()
        short = switch_interval_for(self.dev.info)
        if short is not None:
            sys.setswitchinterval(short)
        try:
            return self._run()
        finally:
            sys.setswitchinterval(interval)
            if collecting:
                gc.enable()

    def _run(self) -> tuple[float, float]:
        budget = self.s.budget_bytes
        held = buffer_parts(self.s.buffers)
        if budget is not None and self.pool.gated_bytes(held) > budget:
            raise ValidateError(f"the schedule's preallocated buffers need "
                                f"{sum(held.values())} bytes, more than the budget of {budget} "
                                "bytes")
        self.proxy_flops: dict[int, int] = {}
        steps, done, ready = self.s.steps, self.done, self.ready
        self.left = len(steps)
        self.is_compute = [isinstance(st, Compute) for st in steps]
        self.t0 = host_now()
        self.pool.timeline = [(0.0, 0, 0, 0, 0, 0, 0)]
        if held:  # taken at the start, held to the end
            self.pool.request(held, PRIO_COMPUTE, "preallocated buffers")
        ready.extend(st.id for st in steps)  # each step once; later only when an event concerns it
        while True:
            t = host_now()
            while ready:
                sid = ready.popleft()
                st = steps[sid]
                while not done[sid] and self._advance_one(st):
                    pass
            self.busy_s += host_now() - t
            if self.left == 0:
                break
            if self.outstanding == 0:
                # nothing in flight: give every unfinished step one more look before giving up
                if self._advance(s for s in steps if not done[s.id]) or ready:
                    continue
                raise ValidateError(self._stall_report(budget))
            try:  # every completion is signalled (waiter threads, read completions)
                ready.append(self.notify.get(timeout=0.05))
                self.wakes += 1
                while True:
                    ready.append(self.notify.get_nowait())
            except _queue.Empty:
                pass
        self.dev.finish()
        return self.t0, host_now()

    def _stall_report(self, budget: int | None) -> str:
        """Why nothing can move: what waits for memory, what is held (by category) and by
        which unfinished steps, so a replay that the engine completes can be told apart."""
        done = self.done
        first = next(s.id for s in self.s.steps if not done[s.id])
        out = (f"schedule cannot complete within the budget: {self.left} step(s) never ran, "
               f"first step {first}")
        blocked = sorted(self.pool.waiting)
        if blocked:
            name = {id(t): f"step {sid} {res}" for (sid, res), t in self.tickets.items()}
            waits = ", ".join(f"{name.get(id(t), t.what)} ({t.nbytes} bytes)" for t in blocked[:4])
            held = ", ".join(f"{c} {n}" for c, n in self.pool.by_cat.items() if n)
            holders = [f"{sid} {res}" for (sid, res), t in self.tickets.items()
                       if t.granted and not done[sid]]
            out += (f"; waiting for memory: {waits}{' ...' if len(blocked) > 4 else ''}; "
                    f"{self.pool.used} of {budget} bytes in use ({held}); held by unfinished "
                    f"steps: {', '.join(holders[:12]) or 'none'}"
                    f"{' ...' if len(holders) > 12 else ''}")
        return out

    def _advance_one(self, st: Any) -> bool:
        if isinstance(st, Load):
            return self.advance_load(st)
        if isinstance(st, Compute):
            return self.advance_compute(st)
        return self.advance_free(st)

    def _advance(self, candidates) -> bool:
        """Try to move each candidate step forward; True if any did."""
        moved = False
        for st in candidates:
            moved |= self._advance_one(st)
        return moved

    def trace(self) -> Trace:
        """Intervals from host clocks (reads) and profiling events (copies, transforms, kernels)."""
        t0, off = self.t0, self.offset
        out: list[Interval] = []

        def dev(ev: Any) -> tuple[float, float]:
            return (ev.profile.start * 1e-9 + off - t0, ev.profile.end * 1e-9 + off - t0)

        labels = [inv.label for inv in self.s.invocations]
        for st in self.s.steps:
            if isinstance(st, Load):
                ls = self.loads[st.id]
                name = ",".join(st.tensors)[:80]
                out.append(Interval("storage", f"read {name}", st.id, ls.read[0] - t0,
                                    ls.read[1] - t0, st.bytes))
                s, e = dev(ls.copy_ev)
                out.append(Interval("copy", f"copy {name}", st.id, s, e, st.bytes))
                if ls.tr_ev is not None:
                    s, e = dev(ls.tr_ev)
                    out.append(Interval("transform", f"transform {name}", st.id, s, e, st.bytes))
            elif isinstance(st, Compute):
                s, e = dev(self.ev[st.id])
                out.append(Interval("gpu", st.op, st.id, s, e, 0, labels[st.invocation]))
        out.sort(key=lambda i: (i.start, i.resource, i.step))
        return Trace(out, list(self.pool.timeline), f"replay:{self.dev.info.name}")

    def close(self) -> None:
        for inbox, t in self.waiters.values():
            inbox.put(None)
            t.join()
        self.waiters.clear()
        for key, objs in self.cache.items():
            if key[0] == "host":
                for a in objs:
                    self.dev.give_host(a)
        self.cache.clear()
        if hasattr(self, "storage"):
            self.storage.shutdown(wait=True)
        if hasattr(self, "reader"):
            self.reader.close()


def replay(dev: Device, schedule: Schedule, opts: ReplayOptions | None = None) -> ReplayResult:
    """Execute `schedule` (scaled by `opts.scale`) on `dev`; returns the measured trace."""
    return replay_runs(dev, schedule, 1, opts)[0]


def replay_runs(dev: Device, schedule: Schedule, runs: int,
                opts: ReplayOptions | None = None) -> list[ReplayResult]:
    """Execute `schedule` `runs` times in a row; the weight file is written once and its cache
    dropped before each run (O_DIRECT reads bypass it anyway)."""
    opts = opts or ReplayOptions()
    s = scale_schedule(schedule, opts.scale)
    out = []
    with tempfile.TemporaryDirectory(prefix="ws-replay-", dir=opts.weights_dir) as tmp:
        for _ in range(max(1, runs)):
            r = _Replay(dev, s, opts, Path(tmp))
            try:
                r.prepare()
                t0, t1 = r.run()
                trace = r.trace()
            finally:
                r.close()
            latency = max([0.0] + [i.end for i in trace.intervals])
            out.append(ReplayResult(schedule=f"{s.workload}/{s.policy}", device=dev.info.to_dict(),
                                    trace=trace, latency_s=latency, wall_s=t1 - t0,
                                    peak_memory_bytes=r.pool.peak, budget_bytes=s.budget_bytes,
                                    storage_mode=r.reader.mode, scale=opts.scale,
                                    driver_busy_s=r.busy_s, wakes=r.wakes,
                                    marks=[[k[0], k[1], *v] for k, v in sorted(r.marks.items())]))
    return out
