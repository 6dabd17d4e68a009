"""What every schedule step does, prepared once and followed by both executors.

The timing model has one description and two executors: the exact one-pass evaluator
(`sim.evaluate`) and the SimPy engine (`sim.engine`). Both read a `Prepared` schedule:

- a load is a chain of segments: an optional memory request, then an optional stage on a unit
  (storage read, host parse, copy, transform), then the releases that follow that stage (the
  buffer it emptied, a relabel from staging to weights, a host file copy);
- a compute asks for its activations, workspace and KV state, runs on the GPU's in-order queue
  for its nominal duration, and at its end returns what its liveness rule says is dead;
- a free returns its tensors' bytes.

Same-instant rule (both executors): at one simulated instant, releases happen first, then the
memory requests of that instant are granted in order of (priority, time asked, step, segment)
while they fit, then each unit takes the stages that arrived at that instant in order of
(step, segment); a unit serves stages first come, first served. Memory statistics are sampled at
the end of each instant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from hwprofiles.runtime import RuntimeProfile
from hwprofiles.schema import HardwareProfile
from sim.hardware import HardwareModel
from sim.lowering import kind_class
from sim.memory import Activations, buffer_parts
from sim.schedule import Compute, Free, Load, Schedule
from workloads.formats import compute_dtype, runtime_keys

LOAD, COMPUTE, FREE = 0, 1, 2
# post-stage actions: ("free", category, bytes) | ("move", bytes) staging -> weights |
# ("file", bytes) a host file buffer (kept until init with runtime host_copy until_init)
Action = tuple


@dataclass(frozen=True, slots=True)
class Segment:
    """One step of a load: ask for `request` (category, bytes) pairs together, then run `stage`
    for `seconds` on `unit` ('' = no stage), then apply `post`. The stage starts no earlier than
    `lag` after the stage before it ended (the sync hop into a copy, a transform, a parse) and
    never before `floor` (a read is dispatched by the host thread: one read hop from t=0)."""

    request: tuple[tuple[str, int], ...]
    unit: str
    resource: str  # the trace/utilisation row: storage | copy | transform | host
    stage: str  # read | parse | copy | transform
    seconds: float
    lag: float
    floor: float
    nbytes: int
    post: tuple[Action, ...] = ()
    wait: tuple[int, ...] = ()  # steps that must have finished before it asks (copy_after)


@dataclass(frozen=True, slots=True)
class LoadFlow:
    segments: tuple[Segment, ...]
    flash_bytes: int
    dram_bytes: int
    location: str  # where kernels read the tensors: texture | buffer


def stage_units(hw: HardwareModel) -> dict[str, str]:
    """The unit each load stage runs on: copies and transforms take the GPU's queue on a shared
    device; a runtime's parsing and CPU-side transforms take the host's."""
    unit = {"read": "storage", "parse": "host", "copy": "copy", "transform": "transform"}
    if hw.profile.gpu.shared_with_transfers:
        unit.update(copy="gpu", transform="gpu")
    if hw.transform_on_host:
        unit["transform"] = "host"
    return unit


def load_flow(st: Load, hw: HardwareModel, mapped: bool, units: Mapping[str, str]) -> LoadFlow:
    """The segments of load `st` (mapped: the runtime maps its model file, kernels read the
    page cache). A load into preallocated buffers asks for and returns nothing; `copy_after`
    holds the stages after the read (and the parse) until those steps have finished."""
    b = st.bytes
    stages = hw.load_stages(b, st.path, st.dst, len(st.tensors), read_bytes=st.read_bytes,
                            request_size=st.request_bytes)
    zero_copy = hw.profile.transfer.zero_copy
    rb = b if st.read_bytes is None else st.read_bytes
    pre = st.preallocated

    g = hw.profile.gpu

    def seg(request: tuple, stage: str, nbytes: int = b, post: tuple = (),
            wait: tuple[int, ...] = ()) -> Segment:
        unit = units[stage]
        name = "storage" if stage == "read" else stage
        lag = 0.0 if stage == "read" else g.sync_latency if stage == "parse" else g.hop(stage)
        if pre:
            request, post = (), ()
        return Segment(request, unit, "host" if unit == "host" else name, stage, stages[stage],
                       lag, g.hop("read") if stage == "read" else 0.0, nbytes, post, wait)

    if mapped and not pre:
        # pages are read into the page cache and kernels read them there
        return LoadFlow((seg((("weights", b),), "read"),), b, 0, "buffer")
    if st.path == "direct" and zero_copy:
        # pre-laid-out data is read straight into its mapped final allocation
        return LoadFlow((seg((("weights", b),), "read", rb),), rb, 0, st.dst)
    if st.path == "direct":
        # read into a host staging buffer, then one copy into the final image/buffer
        return LoadFlow((seg((("staging", b),), "read", rb),
                         seg((("weights", b),), "copy", post=(("free", "staging", b),),
                             wait=st.copy_after)),
                        rb, 2 * b, st.dst)
    fb = hw.file_bytes(b, st.path) if st.read_bytes is None else st.read_bytes
    segs = [seg((("staging", fb),), "read", fb)]
    dram = 0
    held: Action = ("file", fb)  # how to release the buffer that holds the data now
    if st.path == "via_buffer" and (fb != b or stages["parse"] > 0):
        # the runtime parses (and converts) the file
        if fb != b:
            segs.append(seg((("staging", b),), "parse", fb, (held,)))
            held = ("free", "staging", b)
        else:
            segs.append(seg((), "parse", fb))
    wait = st.copy_after  # the first stage after the read and the parse waits
    if not zero_copy or st.path == "staged":  # host staging -> GPU buffer
        segs.append(seg((("staging", b),), "copy", post=(held,), wait=wait))
        held, wait = ("free", "staging", b), ()
        dram += 2 * b
    if st.dst == "texture":
        segs.append(seg((("weights", b),), "transform", post=(held,), wait=wait))
        dram += 2 * b
    else:
        segs.append(Segment((), "", "", "", 0.0, 0.0, 0.0, 0,
                            () if pre else (("move", b),), wait))
    return LoadFlow(tuple(segs), fb, dram, st.dst)


@dataclass
class Prepared:
    """A schedule made ready to execute on one profile with one runtime: per step its kind, its
    dependencies (with the sync latency each adds) and what it does. Per-compute figures are
    arrays in compute order (`cindex` maps a step to its position there)."""

    schedule: Schedule
    profile: HardwareProfile
    runtime: RuntimeProfile
    hw: HardwareModel
    kinds: list[int]
    deps: list[tuple[int, ...]]  # steps that must finish first (a compute: also the one before it)
    lags: list[tuple[float, ...]]  # seconds after each dep's end this step can start
    synchronised: bool  # some hop has a sync latency (else every lag is 0 and `lags` is empty)
    loads_after_init: bool  # runtime init.order before_load: no read before the builds end
    loads: dict[int, LoadFlow]
    compute_ids: list[int]
    cindex: dict[int, int]
    compute_s: list[float]  # nominal kernel seconds, per compute
    outputs: np.ndarray  # per compute: activation, workspace and KV bytes it asks for
    workspace: np.ndarray
    state: np.ndarray
    freed_act: np.ndarray  # per compute: activation and workspace bytes its end releases
    freed_ws: np.ndarray
    dram: np.ndarray  # per compute: bytes its kernel moves through DRAM
    data_ready: list[tuple[int, ...]]  # per compute: its inputs and the compute before it
    free_bytes: dict[int, int]
    first_compute: int | None
    init_s: float
    programs: int
    units: dict[str, str]
    mapped: bool
    # lock-step barriers (Compute.after_read): compute -> loads whose read it waits for, and
    # load -> the computes waiting for its read
    after_read: dict[int, tuple[int, ...]]
    read_waiters: dict[int, list[int]]
    hidden_read: float  # a read's latency that may overlap the read ahead (reads in flight)
    buffers: dict[str, int]  # preallocated buffers: bytes per category, held from the start

    @property
    def n(self) -> int:
        return len(self.kinds)

    def request(self, c: int) -> tuple[tuple[str, int], ...]:
        """What compute step `c` asks for before it runs."""
        k = self.cindex[c]
        return tuple((cat, v) for cat, v in (("activations", int(self.outputs[k])),
                                              ("workspace", int(self.workspace[k])),
                                              ("kv", int(self.state[k]))) if v > 0)

    def release(self, c: int) -> tuple[tuple[str, int], ...]:
        """What compute step `c` returns when it ends."""
        k = self.cindex[c]
        return tuple((cat, v) for cat, v in (("workspace", int(self.freed_ws[k])),
                                              ("activations", int(self.freed_act[k]))) if v > 0)


def issue_time(prev: float, interval: float, deps: Sequence[int], lags: Sequence[float],
               kinds: Sequence[int], end: Sequence[float]) -> float:
    """When the host issues a kernel (`gpu.kernel_issue_interval` > 0): `interval` after it
    issued the kernel before (`prev`), and not before the host steps it waits for (its loads
    and frees, plus their sync hop `lags`, empty when no hop has a latency) have ended. The
    kernels it waits for it waits on the GPU's queue: they do not hold its issue back."""
    t = prev + interval
    if lags:
        for j, lag in zip(deps, lags, strict=True):
            if kinds[j] != COMPUTE and end[j] + lag > t:
                t = end[j] + lag
    else:
        for j in deps:
            if kinds[j] != COMPUTE and end[j] > t:
                t = end[j]
    return t


def kernel_times(hw: HardwareModel, flops: Sequence[int], dtypes: Sequence[str],
                 act_bytes: Sequence[int], classes: Sequence[str],
                 weight_bytes: Sequence[Sequence[int]],
                 locations: Sequence[Sequence[str]],
                 records: Sequence[bool] | None = None) -> list[float]:
    """`hw.compute_time` of many kernels at once, bit for bit (the same operations in the same
    order, vectorised): per kernel its FLOPs, dtype, activation bytes read + written, kernel
    class, the bytes and location (texture | buffer) of each of its weights in order; plus the
    runtime's `record_per_kernel` where `records` says its invocation records command buffers
    first (None: none does)."""
    n = len(flops)
    if n == 0:
        return []
    g, rt = hw.profile.gpu, hw.runtime
    # a weight format runs at its compute dtype's peak and its runtime keys' efficiency
    peak = {d: g.flops_for(compute_dtype(d)) * g.compute_efficiency for d in set(dtypes)}
    t_flops = np.array(flops, dtype=np.float64) / np.array([peak[d] for d in dtypes])
    t_mem = np.array(act_bytes, dtype=np.float64) / g.memory_bandwidth
    bw = {"texture": hw.weight_read_bandwidth("texture"),
          "buffer": hw.weight_read_bandwidth("buffer")}
    width = max(len(w) for w in weight_bytes)
    for j in range(width):  # weights in order; a kernel without a j-th weight adds 0.0
        nb = [w[j] if len(w) > j else 0 for w in weight_bytes]
        rate = [bw[loc[j]] if len(loc) > j else 1.0 for loc in locations]
        t_mem = t_mem + np.array(nb, dtype=np.float64) / np.array(rate)
    effs = {(c, d): rt.efficiency_for(c, *runtime_keys(d))
            for c, d in set(zip(classes, dtypes, strict=True))}
    eff = np.array([effs[k] for k in zip(classes, dtypes, strict=True)])
    hi, lo = np.maximum(t_flops, t_mem), np.minimum(t_flops, t_mem)
    t = g.kernel_launch_overhead + hi / eff + (1.0 - g.compute_memory_overlap) * lo / eff
    if rt.dispatch:
        t = t + rt.dispatch
    if rt.record_per_kernel and records is not None and any(records):
        t = t + rt.record_per_kernel * np.array(records, dtype=np.float64)
    return t.tolist()


def compute_times(hw: HardwareModel, computes: Sequence[Compute],
                  tensor_bytes: Mapping[str, int],
                  locations: Sequence[Sequence[str]],
                  records: Sequence[bool] = ()) -> list[float]:
    """`kernel_times` of schedule computes; `locations[i]` says where each weight of
    `computes[i]` is read from; `records[k]`: invocation k records command buffers first."""
    return kernel_times(hw, [c.flops for c in computes], [c.dtype for c in computes],
                        [c.input_bytes + c.output_bytes for c in computes],
                        [c.op_class or kind_class(c.kind) for c in computes],
                        [[tensor_bytes[w] for w in c.weights] for c in computes], locations,
                        [records[c.invocation] for c in computes] if any(records) else None)


def init_cost(schedule: Schedule, runtime: RuntimeProfile) -> tuple[float, int]:
    """Seconds of session set-up and program builds before the first kernel, and how many
    distinct programs the runtime builds (per op kind and dtype, or per op shape)."""
    if not runtime.program_cost and not runtime.init_fixed:
        return runtime.init_fixed, 0
    if runtime.programs_per == "runtime":
        return runtime.init_fixed + runtime.program_cost * runtime.program_count, \
            runtime.program_count
    computes = schedule.computes
    if runtime.programs_per == "shape":
        keys = {(c.kind, c.dtype, c.flops, c.weights and tuple(schedule.tensor_bytes[w]
                for w in c.weights), c.input_bytes, c.output_bytes) for c in computes}
    else:
        keys = {(c.kind, c.dtype) for c in computes}
    return runtime.init_fixed + runtime.program_cost * len(keys), len(keys)


def prepare(schedule: Schedule, profile: HardwareProfile, runtime: RuntimeProfile) -> Prepared:
    """Everything both executors need, computed once (durations are nominal: the engine's
    duration hook perturbs them as it runs)."""
    hw = HardwareModel(profile, runtime)
    mapped = runtime.holding == "mmap"
    units = stage_units(hw)
    steps = schedule.steps
    g = profile.gpu
    # sync hops into a read (after a kernel or load; after a free: at once unless measured
    # apart), into a kernel (after its loads) and into a free (after its kernels)
    hop_read, hop_kernel, hop_free = g.hop("read"), g.hop("kernel"), g.hop("free")
    hop_read_free = 0.0 if g.sync_read is None else g.sync_read
    synchronised = any(v > 0 for v in (g.sync_latency, hop_read, hop_kernel, hop_free,
                                       hop_read_free, g.hop("copy"), g.hop("transform")))
    n = len(steps)
    kinds = [0] * n
    deps: list[tuple[int, ...]] = [()] * n
    lags: list[tuple[float, ...]] = [()] * n
    loads: dict[int, LoadFlow] = {}
    flows: dict[tuple, LoadFlow] = {}  # loads of the same size, path and destination
    computes: list[Compute] = []
    where: list[tuple[str, ...]] = []  # per compute: where each of its weights is read
    free_bytes: dict[int, int] = {}
    location: dict[str, str] = {}
    prev: int | None = None
    tb = schedule.tensor_bytes
    after_read: dict[int, tuple[int, ...]] = {}
    read_waiters: dict[int, list[int]] = {}
    # tensors of loads into preallocated buffers: their frees give nothing back
    buffered = {t for st in steps if type(st) is Load and st.preallocated for t in st.tensors}
    for st in steps:
        i = st.id
        cls = type(st)
        if cls is Compute:
            kinds[i] = COMPUTE
            computes.append(st)
            where.append(tuple([location.get(t, "buffer") for t in st.weights]))
            d = st.after if prev is None else (prev, *st.after)
            prev = i
            if st.after_read:
                after_read[i] = st.after_read
                for j in st.after_read:
                    read_waiters.setdefault(j, []).append(i)
        elif cls is Load:
            key = (st.bytes, st.path, st.dst, len(st.tensors), st.request_bytes, st.read_bytes,
                   st.preallocated, st.copy_after)
            flow = flows.get(key)
            if flow is None:
                flow = flows[key] = load_flow(st, hw, mapped, units)
            loads[i] = flow
            for t in st.tensors:
                location[t] = flow.location
            d = st.after
        elif cls is Free:
            kinds[i] = FREE
            free_bytes[i] = sum([tb[t] for t in st.tensors if t not in buffered])
            d = st.after
        else:  # validate_schedule refuses these; a hand-made list may still hold one
            raise TypeError(f"step {i}: unknown step type {cls.__name__}")
        deps[i] = d
        if synchronised and d:
            # a hand-off from another unit is seen a sync hop later; a kernel follows the kernel
            # before it on the in-order queue
            mine = kinds[i]
            if mine == LOAD:
                lags[i] = tuple([hop_read_free if kinds[j] == FREE else hop_read for j in d])
            elif mine == COMPUTE:
                lags[i] = tuple([hop_kernel if kinds[j] == LOAD else 0.0 for j in d])
            else:
                lags[i] = tuple([0.0 if kinds[j] == FREE else hop_free for j in d])
    # kernels read each weight where the load they wait for put it
    durations = compute_times(hw, computes, tb, where,
                              [i.records for i in schedule.invocations])
    freed = Activations(steps).freed
    ids = [c.id for c in computes]
    data_ready: list[tuple[int, ...]] = []
    prev = None
    for c in computes:
        data_ready.append(c.inputs if prev is None else (*c.inputs, prev))
        prev = c.id
    wbytes = [sum([tb[w] for w in c.weights]) for c in computes]
    i64 = np.int64
    init_s, programs = init_cost(schedule, runtime)
    return Prepared(
        schedule, profile, runtime, hw, kinds, deps, lags, synchronised,
        runtime.init_order == "before_load", loads, ids,
        {c: k for k, c in enumerate(ids)}, durations,
        np.array([c.output_bytes for c in computes], dtype=i64),
        np.array([c.workspace_bytes for c in computes], dtype=i64),
        np.array([c.state_bytes for c in computes], dtype=i64),
        np.array([freed[c][0] for c in ids], dtype=i64),
        np.array([freed[c][1] for c in ids], dtype=i64),
        np.array([c.input_bytes + c.output_bytes + w for c, w in zip(computes, wbytes,
                                                                      strict=True)], dtype=i64),
        data_ready, free_bytes, ids[0] if ids else None, init_s, programs, units, mapped,
        after_read, read_waiters, hw.hidden_read_latency, buffer_parts(schedule.buffers))
