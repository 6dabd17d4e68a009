"""The planning problem: what the FlashMem planner decides over, extracted from a workload.

Positions are the ops of all invocations in GPU order. A *unit* is a position whose op has
weights; its tensors form one load (split into a texture part and a buffer part when a tensor
does not fit the image limits). A *group* is a set of tensors that units share (the same layer
in repeated invocations, the UNet across diffusion steps, a tied embedding): the planner
decides per group whether it stays resident, and per streamed unit at which position its load
is issued.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from hwprofiles.runtime import RuntimeProfile
from hwprofiles.schema import HardwareProfile
from sim.flow import kernel_times
from sim.hardware import IDEAL, HardwareModel
from sim.lowering import op_class
from sim.planner.layout import TextureLayout, texture_layout
from sim.policies.builder import Unit, units
from workloads.workload import Workload, recording


@dataclass
class Group:
    """Tensors loaded together; `uses` are the unit indices that need them."""

    gid: int
    tensors: tuple[str, ...]
    bytes: int
    read_s: float
    copy_s: float
    uses: list[int] = field(default_factory=list)
    # its texture load, then its buffer load: (dst, bytes, piece size: gathered rows are read
    # a row at a time; None = contiguous)
    parts: tuple[tuple[str, int, int | None], ...] = ()


@dataclass
class StreamUnit:
    """A weighted op: where it runs and which group it needs."""

    index: int
    pos: int
    group: int


@dataclass
class Problem:
    """Everything the planners need, in plain numbers (seconds, bytes)."""

    workload: Workload
    profile: HardwareProfile
    budget: int | None
    seq: list[Unit]
    compute_s: list[float]  # per position
    best_compute_s: list[float]  # per position, weights read at the GPU's best efficiency
    act_bytes: list[int]  # per position: activation + workspace + KV bytes while it runs
    units: list[StreamUnit]
    groups: list[Group]
    layouts: dict[str, TextureLayout]
    zero_copy: bool
    # sync hops of the flashmem path (sim.flow): earliest read (the host dispatches it), read
    # after the kernel it was issued behind, copy after its read, kernel after its load
    hops: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    @property
    def n(self) -> int:
        return len(self.seq)

    def staging_reserve(self) -> int:
        """Memory kept free for one host staging buffer when the GPU cannot map host memory."""
        if self.zero_copy or not self.groups:
            return 0
        return max(g.bytes for g in self.groups)

    def load_s(self, nbytes: int, pieces: int | None = None) -> tuple[float, float]:
        """(read, copy) seconds of one direct load of `nbytes` (read `pieces` bytes at a time:
        gathered rows), the executors' stage times."""
        cache = self.__dict__.setdefault("_load_s", {})
        key = (nbytes, pieces)
        if key not in cache:
            stages = HardwareModel(self.profile).load_stages(nbytes, "direct", "texture",
                                                             request_size=pieces)
            cache[key] = (stages["read"], stages["copy"])
        return cache[key]

    @cached_property
    def arrays(self) -> ProblemArrays:
        """The problem as numpy arrays (per position, per unit, per group)."""
        c = np.asarray(self.compute_s, dtype=np.float64)
        per_group = [[self.load_s(b, r) for _, b, r in g.parts] for g in self.groups]
        unit_pos = [u.pos for u in self.units]
        unit_group = [u.group for u in self.units]
        return ProblemArrays(
            np.concatenate(([0.0], np.cumsum(c))).tolist(),
            np.asarray(self.act_bytes, dtype=np.int64),
            np.array(unit_pos, dtype=np.int64), np.array(unit_group, dtype=np.int64),
            np.array([g.bytes for g in self.groups], dtype=np.int64),
            [g.read_s for g in self.groups], [g.copy_s for g in self.groups],
            unit_pos, unit_group,
            [per_group[g] for g in unit_group])


@dataclass
class ProblemArrays:
    prefix: list[float]  # prefix[k] = compute seconds of positions 0..k-1
    act: np.ndarray  # per position
    unit_pos: np.ndarray  # per unit
    unit_group: np.ndarray
    group_bytes: np.ndarray  # per group
    read_s: list[float]
    copy_s: list[float]
    unit_pos_list: list[int]  # per unit, as Python ints
    unit_group_list: list[int]
    unit_loads: list[list[tuple[float, float]]]  # per unit: (read, copy) s of each load


def build_problem(workload: Workload, profile: HardwareProfile, budget: int | None,
                  runtime: RuntimeProfile | None = None, budget_scope: str = "total") -> Problem:
    """Extract positions, units, groups, durations and layouts for the planners (durations as
    `runtime` runs the ops: the executors' timing model, shared). With `budget_scope` 'weights'
    the budget caps weights and staging only, so activations count as zero."""
    hw = HardwareModel(profile, runtime or IDEAL)
    tensors = workload.tensors
    gpu = profile.gpu
    if gpu.texture_read_efficiency >= gpu.buffer_read_efficiency:
        layouts = {n: texture_layout(t.nbytes, t.dtype, gpu) for n, t in tensors.items()}
    else:  # this GPU reads weights faster from buffers (e.g. CUDA-class GPUs)
        why = "buffers read faster than textures on this GPU"
        layouts = {n: TextureLayout("buffer", reason=why) for n in tensors}
    location = {n: lay.dst for n, lay in layouts.items()}
    tbytes = {n: t.nbytes for n, t in tensors.items()}
    seq = units(workload)
    best_loc = "texture" if gpu.texture_read_efficiency >= gpu.buffer_read_efficiency else "buffer"
    # kernel times per distinct kernel: an op, and whether its invocation records command
    # buffers first (the decode steps of an LLM share most of their ops)
    recs = recording(workload.invocations) if runtime is not None and runtime.record_per_kernel \
        else [False] * len(workload.invocations)
    where: dict[tuple[int, bool], int] = {}
    ops: list = []
    flags: list[bool] = []
    index: list[int] = []
    for u in seq:
        key = (id(u.op), recs[u.inv])
        k = where.get(key)
        if k is None:
            k = where[key] = len(ops)
            ops.append(u.op)
            flags.append(key[1])
        index.append(k)
    names = [tuple(dict.fromkeys(t.name for t in op.weights)) for op in ops]
    cols = ([op.flops for op in ops], [op.dtype for op in ops],
            [op.input_bytes + op.output_bytes for op in ops], [op_class(op) for op in ops],
            [[tbytes[t] for t in nm] for nm in names])
    times = kernel_times(hw, *cols, [[location[t] for t in nm] for nm in names], flags)
    best = kernel_times(hw, *cols, [[best_loc] * len(nm) for nm in names], flags)
    compute_s = [times[k] for k in index]
    best_compute_s = [best[k] for k in index]
    # the group of each distinct op's weights (groups numbered in first-use order)
    groups: list[Group] = []
    by_key: dict[tuple[str, ...], int] = {}
    owner: dict[str, int] = {}
    op_group: list[int] = []
    for names_u in names:
        if not names_u:
            op_group.append(-1)
            continue
        gid = by_key.get(names_u)
        if gid is None:
            clash = [t for t in names_u if t in owner]
            if clash:
                # a tensor shared by ops with different weight sets: merge into its group
                gid = owner[clash[0]]
                g = groups[gid]
                extra = tuple(t for t in names_u if t not in g.tensors)
                g.tensors += extra
                g.bytes = sum(tbytes[t] for t in g.tensors)
            else:
                gid = len(groups)
                groups.append(Group(gid, names_u, sum(tbytes[t] for t in names_u), 0.0, 0.0))
            by_key[names_u] = gid
            for t in groups[gid].tensors:
                owner[t] = gid
        op_group.append(gid)
    stream_units: list[StreamUnit] = []
    for pos, k in enumerate(index):
        gid = op_group[k]
        if gid >= 0:
            groups[gid].uses.append(len(stream_units))
            stream_units.append(StreamUnit(len(stream_units), pos, gid))
    unit_of = {n: t.read_unit for n, t in tensors.items() if t.read_unit}
    for g in groups:
        parts = []
        for dst in ("texture", "buffer"):
            mine = [t for t in g.tensors if location[t] == dst]
            if mine:
                rows = [unit_of[t] for t in mine if t in unit_of]
                parts.append((dst, sum(tbytes[t] for t in mine), min(rows) if rows else None))
        g.parts = tuple(parts)
        # as one load (the bound and the pruning use it): the contiguous reads' time
        stages = hw.load_stages(g.bytes, "direct", "texture",
                                request_size=min((p[2] for p in parts if p[2]), default=None))
        g.read_s, g.copy_s = stages["read"], stages["copy"]
    hops = (gpu.hop("read"), gpu.hop("read"), gpu.hop("copy"), gpu.hop("kernel"))
    acts = workload.activation_profile()
    if budget_scope == "weights":
        acts = [0] * len(acts)
    return Problem(workload, profile, budget, seq, compute_s, best_compute_s, acts,
                   stream_units, groups, layouts, profile.transfer.zero_copy, hops)
