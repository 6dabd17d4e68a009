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

from hwprofiles.runtime import RuntimeProfile
from hwprofiles.schema import HardwareProfile
from sim.hardware import IDEAL, HardwareModel
from sim.lowering import op_class
from sim.planner.layout import TextureLayout, texture_layout
from sim.policies.builder import Unit, units
from sim.schedule import Compute
from workloads.workload import Workload


@dataclass
class Group:
    """Tensors loaded together; `uses` are the unit indices that need them."""

    gid: int
    tensors: tuple[str, ...]
    bytes: int
    read_s: float
    copy_s: float
    uses: list[int] = field(default_factory=list)


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

    @property
    def n(self) -> int:
        return len(self.seq)

    def staging_reserve(self) -> int:
        """Memory kept free for one host staging buffer when the GPU cannot map host memory."""
        if self.zero_copy or not self.groups:
            return 0
        return max(g.bytes for g in self.groups)


def build_problem(workload: Workload, profile: HardwareProfile, budget: int | None,
                  runtime: RuntimeProfile | None = None, budget_scope: str = "total") -> Problem:
    """Extract positions, units, groups, durations and layouts for the planners (durations as
    `runtime` runs the ops: the engine's timing model, shared). With `budget_scope` 'weights'
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
    best_location = dict.fromkeys(tensors, best_loc)
    compute_s, best_compute_s = [], []
    for u in seq:
        op = u.op
        step = Compute(id=0, op=op.name, invocation=u.inv, kind=op.kind, dtype=op.dtype,
                       flops=op.flops, weights=tuple(dict.fromkeys(t.name for t in op.weights)),
                       input_bytes=op.input_bytes, output_bytes=op.output_bytes,
                       op_class=op_class(op))
        compute_s.append(hw.compute_time(step, tbytes, location))
        best_compute_s.append(hw.compute_time(step, tbytes, best_location))
    groups: list[Group] = []
    by_key: dict[tuple[str, ...], int] = {}
    owner: dict[str, int] = {}
    stream_units: list[StreamUnit] = []
    for u in seq:
        names = tuple(dict.fromkeys(t.name for t in u.op.weights))
        if not names:
            continue
        gid = by_key.get(names)
        if gid is None:
            clash = [t for t in names if t in owner]
            if clash:
                # a tensor shared by ops with different weight sets: merge into its group
                gid = owner[clash[0]]
                g = groups[gid]
                extra = tuple(t for t in names if t not in g.tensors)
                g.tensors += extra
                g.bytes = sum(tbytes[t] for t in g.tensors)
            else:
                gid = len(groups)
                groups.append(Group(gid, names, sum(tbytes[t] for t in names), 0.0, 0.0))
            by_key[names] = gid
            for t in groups[gid].tensors:
                owner[t] = gid
        groups[gid].uses.append(len(stream_units))
        stream_units.append(StreamUnit(len(stream_units), u.pos, gid))
    for g in groups:
        stages = hw.load_stages(g.bytes, "direct", "texture")
        g.read_s, g.copy_s = stages["read"], stages["copy"]
    acts = workload.activation_profile()
    if budget_scope == "weights":
        acts = [0] * len(acts)
    return Problem(workload, profile, budget, seq, compute_s, best_compute_s, acts,
                   stream_units, groups, layouts, profile.transfer.zero_copy)
