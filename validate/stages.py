"""Per-stage times of a replay: every read, copy, transform and kernel with the moment the
simulator's model would let it start, so each stage can be fitted and checked on its own.

A stage's *effective* time is what the simulator's interval for it stands for: its measured
duration plus the idle gap before it that the model holds nowhere else. The model lets a stage
start once its unit is free, its memory is granted, and its dependency has ended, plus
`gpu.sync_latency` when that dependency ran on another unit (a copy after its read, a transform
after its copy, a kernel after its load, a free after its kernel). A gap longer than that is
the unit's own dispatch cost (the storage thread's hand-off, a kernel's launch) and belongs to
the stage; a gap shorter than it is the model's error, not the stage's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from hwprofiles.schema import HardwareProfile
from sim.schedule import Compute, Free, Load, Schedule
from sim.trace import RESOURCES, Trace

# the hop each measured wait is, and the profile's hop (`gpu.sync_<hop>`) that models it
HOP_OF = {"read<-start": "read", "read<-free": "read", "read<-kernel": "read",
          "read<-load": "read", "copy<-read": "copy", "transform<-copy": "transform",
          "kernel<-load": "kernel", "free<-kernel": "free"}


def hop_latencies(profile: HardwareProfile) -> dict[str, float]:
    """Seconds the engine waits for each kind of hop under `profile` (a kernel after a kernel:
    none, the in-order queue; a read after a free: none unless `gpu.sync_read` is given)."""
    g = profile.gpu
    out = {k: g.hop(h) for k, h in HOP_OF.items()}
    out["read<-free"] = 0.0 if g.sync_read is None else g.sync_read
    out["kernel<-kernel"] = 0.0
    return out


@dataclass(frozen=True)
class StageOp:
    """One measured stage. `unit_free`: end of the unit's previous stage; `dep_end`: end of the
    dependency it waited for (`hop`: its kind, '' if none); `granted`: when its memory was
    granted after having waited for it (None: no wait); `kind`: op kind (kernels) or load
    path/destination."""

    resource: str
    step: int
    kind: str
    nbytes: int
    start: float
    end: float
    unit_free: float
    dep_end: float
    hop: str
    granted: float | None

    @property
    def duration(self) -> float:
        return self.end - self.start

    def ready(self, hops: Mapping[str, float]) -> float:
        """When the model (hop latencies from `hop_latencies`) lets this stage start."""
        dep = self.dep_end + hops.get(self.hop, 0.0)
        return max(self.unit_free, dep, self.granted or 0.0)

    def effective(self, hops: Mapping[str, float]) -> float:
        """Duration plus the part of the idle gap before it that the model holds nowhere else."""
        return self.end - min(self.start, self.ready(hops))

    @property
    def hop_gap(self) -> float | None:
        """start - dependency end when the dependency (not the unit or memory) held it back."""
        if not self.hop or self.dep_end < self.unit_free or (
                self.granted is not None and self.granted > self.dep_end):
            return None
        return self.start - self.dep_end


def _marks(raw: Sequence[Sequence]) -> dict[tuple[int, str], tuple]:
    """(step, resource) -> (requested, granted, issued) from a replay's marks."""
    out = {}
    for m in raw:
        if len(m) == 5:
            out[(int(m[0]), m[1])] = (m[2], m[3], m[4])
        else:  # older replays: no request time, so no memory wait can be told apart
            out[(int(m[0]), m[1])] = (m[2], None, m[3])
    return out


def stage_ops(s: Schedule, trace: Trace, marks: Sequence[Sequence] = ()) -> list[StageOp]:
    """Every interval of a replay (or simulated) trace as a `StageOp`, plus each free as a
    'free' stage of zero duration (its time from the marks; only a replay has them)."""
    steps = s.steps
    mk = _marks(marks)
    by: dict[int, dict[str, object]] = {}
    for iv in trace.intervals:
        by.setdefault(iv.step, {})[iv.resource] = iv
    done: dict[int, float] = {}
    for st in steps:
        if st.id in by:
            done[st.id] = max(i.end for i in by[st.id].values())  # type: ignore[attr-defined]
        elif (st.id, "free") in mk and mk[(st.id, "free")][2] is not None:
            done[st.id] = mk[(st.id, "free")][2]
    out: list[StageOp] = []
    last: dict[str, float] = {}

    def wait_of(sid: int, res: str) -> float | None:
        m = mk.get((sid, res))
        return None if m is None else m[1]

    for iv in sorted(trace.intervals, key=lambda i: (i.start, i.step)):
        st = steps[iv.step]
        r = iv.resource
        unit = last.get(r, 0.0)
        last[r] = iv.end
        if r == "storage":
            deps = [d for d in st.after if d in done]
            dep_end = max([0.0] + [done[d] for d in deps])
            binding = max(deps, key=lambda d: done[d]) if deps else None
            hop = "read<-start" if binding is None else (
                "read<-free" if isinstance(steps[binding], Free) else
                "read<-kernel" if isinstance(steps[binding], Compute) else "read<-load")
            kind = f"{st.path}/{st.dst}"
        elif r == "copy":
            dep_end, hop, kind = by[st.id]["storage"].end, "copy<-read", f"{st.path}/{st.dst}"
        elif r == "transform":
            dep_end, hop, kind = by[st.id]["copy"].end, "transform<-copy", st.dst
        else:
            deps = [d for d in (*st.after, *st.inputs) if d in done]
            binding = max(deps, key=lambda d: done[d]) if deps else None
            dep_end = done[binding] if binding is not None else 0.0
            hop = "" if binding is None else (
                "kernel<-load" if isinstance(steps[binding], Load) else "kernel<-kernel")
            kind = st.kind
        out.append(StageOp(r, st.id, kind, iv.bytes, iv.start, iv.end, unit, dep_end, hop,
                           wait_of(st.id, r)))
    for st in steps:
        if isinstance(st, Free) and st.id in done:
            dep = [d for d in st.after if d in done]
            dep_end = max([0.0] + [done[d] for d in dep])
            out.append(StageOp("free", st.id, "free", 0, done[st.id], done[st.id], 0.0, dep_end,
                               "free<-kernel", None))
    return out


def sync_estimate(ops: Sequence[StageOp]) -> float:
    """One `gpu.sync_latency` for every hop: the median gap of the hops, where the dependency
    (not the unit or memory) held the stage back."""
    gaps = [g for o in ops if o.hop in HOP_OF and (g := o.hop_gap) is not None]
    return float(np.median(gaps)) if gaps else 0.0


def gaps_by_hop(ops: Sequence[StageOp], alone: bool = False) -> dict[str, list[float]]:
    """Measured gaps (at least 0) per modelled hop (`HOP_OF`'s values: the `gpu.sync_<hop>`
    each stands for), where the dependency held the stage back. `alone` (the ops of one
    replay): only gaps inside which no other stage started (nor a free was done), the hop's
    own cost where the driver thread (`gpu.sync_serial`) had nothing else to do."""
    held = [(o, g) for o in ops if o.hop in HOP_OF and (g := o.hop_gap) is not None]
    keep = np.ones(len(held), bool)
    if alone and held:
        starts = np.sort(np.array([o.start for o in ops]))
        a = np.array([o.dep_end for o, _ in held])
        b = np.array([o.start for o, _ in held])
        inside = np.searchsorted(starts, b, "left") - np.searchsorted(starts, a, "right")
        keep = inside <= 0
    out: dict[str, list[float]] = {}
    for (o, g), k in zip(held, keep, strict=True):
        if k:
            out.setdefault(HOP_OF[o.hop], []).append(max(0.0, g))
    return out


def hop_gaps(ops: Sequence[StageOp]) -> dict[str, list[float]]:
    """Measured gaps by hop kind (for reports): where the dependency held the stage back."""
    out: dict[str, list[float]] = {}
    for o in ops:
        g = o.hop_gap
        if o.hop and g is not None:
            out.setdefault(o.hop, []).append(g)
    return out


# resources whose intervals the simulator times as the whole unit occupancy, launch included:
# compared with the measured effective time (the gap behind the previous kernel is the launch)
EFFECTIVE = ("gpu",)


def compared_times(ops: Sequence[StageOp], hops: Mapping[str, float]
                   ) -> dict[tuple[str, int], float]:
    """(resource, step) -> the time each stage is compared by: a kernel's effective time (its
    event plus the launch gap the model holds in its interval), every other stage's
    duration."""
    return {(o.resource, o.step): o.effective(hops) if o.resource in EFFECTIVE else o.duration
            for o in ops if o.resource in RESOURCES}


def op_errors(measured: Sequence[StageOp], simulated: Trace, hops: Mapping[str, float],
              by: str = "resource", sim_ops: Sequence[StageOp] = ()) -> dict[str, list[float]]:
    """Relative error (simulated / measured - 1) of every stage (`compared_times`), grouped
    by resource (or by `resource:kind` with by='kind'). A simulated stage is its interval or,
    with `sim_ops` (the simulated trace's stages, where the host issue interval keeps a kernel
    waiting outside its interval), compared as the measured one is."""
    sim = {(i.resource, i.step): i.end - i.start for i in simulated.intervals}
    sim.update(compared_times(sim_ops, hops))
    times = compared_times(measured, hops)
    out: dict[str, list[float]] = {}
    for o in measured:
        if (o.resource, o.step) not in sim or (o.resource, o.step) not in times:
            continue
        m = times[(o.resource, o.step)]
        if m <= 0:
            continue
        key = o.resource if by == "resource" else f"{o.resource}:{o.kind}"
        out.setdefault(key, []).append(sim[(o.resource, o.step)] / m - 1)
    return out


def mape_of(errors: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """Mean absolute relative error per group."""
    return {k: float(np.mean(np.abs(v))) for k, v in errors.items() if len(v)}
