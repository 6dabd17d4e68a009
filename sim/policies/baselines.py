"""Baseline policies: preload (what MNN/TFLite/TVM do), sequential, and the Demand Layering
style pipeline.

- preload: read, copy and transform every weight (one after another, as a framework's
  session creation does), then run every op. Memory = all weights + activations.
- sequential: per layer: load its weights, run it, free them. Nothing overlaps.
- pipeline (Demand Layering, RTSS'22): the load of layer k may start once layer k - depth has
  finished and freed its weights, so storage reads, copies/transforms and compute of
  consecutive layers overlap. depth 1 = sequential; larger depth = more memory, less delay.
  depth='auto' takes the deepest window whose estimated peak fits the budget.
"""

from __future__ import annotations

from hwprofiles.schema import HardwareProfile
from sim.errors import SimError
from sim.policies.builder import Builder, Unit, next_uses, units
from workloads.workload import Workload

MAX_AUTO_DEPTH = 8


def preload(workload: Workload, profile: HardwareProfile, budget: int | None = None,
            path: str = "via_buffer") -> Builder:
    b = Builder("preload", workload, profile, budget)
    loaded: dict[str, int] = {}
    prev: tuple[int, ...] = ()
    for name in workload.tensors:
        lid = b.load([name], after=prev, path=path)
        loaded[name] = lid
        prev = (lid,)
    first = True
    for u in units(workload):
        after = [loaded[t.name] for t in u.op.weights]
        if first:
            after = list(loaded.values())  # nothing runs before every weight is in place
            first = False
        b.compute(u, after)
    return b


def activation_peak(workload: Workload) -> int:
    """Peak bytes of live activations + workspace + KV state over the run (no weights)."""
    return max(workload.activation_profile(), default=0)


def _weighted_bytes(seq: list[Unit], b: Builder) -> list[int]:
    return [b.nbytes(dict.fromkeys(t.name for t in u.op.weights)) for u in seq if u.op.weights]


def estimate_window_peak(layer_bytes: list[int], depth: int, direct: bool,
                         act_peak: int) -> int:
    """Peak memory of a depth-`depth` window over layers (+ one staging copy + activations)."""
    if not layer_bytes:
        return act_peak
    window = sum(layer_bytes[:depth])
    best = window
    for i in range(depth, len(layer_bytes)):
        window += layer_bytes[i] - layer_bytes[i - depth]
        best = max(best, window)
    return best + (0 if direct else max(layer_bytes)) + act_peak


def auto_depth(workload: Workload, profile: HardwareProfile, budget: int | None,
               path: str = "via_buffer", seq: list[Unit] | None = None,
               b: Builder | None = None) -> int:
    """The pipeline depth `depth='auto'` picks: the deepest window (up to MAX_AUTO_DEPTH)
    whose estimated peak fits the budget; 2 without a budget."""
    if budget is None:
        return 2
    seq = seq if seq is not None else units(workload)
    b = b or Builder("pipeline", workload, profile, budget)
    layer_bytes = _weighted_bytes(seq, b)
    act = activation_peak(workload)
    for d in range(MAX_AUTO_DEPTH, 0, -1):
        if estimate_window_peak(layer_bytes, d, path == "direct", act) <= budget:
            return d
    return 1


def stream(workload: Workload, profile: HardwareProfile, budget: int | None = None,
           depth: int | str = 2, path: str = "via_buffer", policy: str = "pipeline") -> Builder:
    """Layer-by-layer streaming with a window of `depth` layers in flight."""
    b = Builder(policy, workload, profile, budget)
    seq = units(workload)
    if depth == "auto":
        depth = auto_depth(workload, profile, budget, path, seq, b)
    if not isinstance(depth, int) or depth < 1:
        raise SimError(f"pipeline depth must be a whole number >= 1 or 'auto', found {depth!r}")
    b.schedule.meta["depth"] = depth
    uses = list(next_uses(seq))
    widx: dict[int, int] = {}
    for u in seq:
        if u.op.weights:
            widx[u.pos] = len(widx)
    resident: dict[str, int] = {}
    users: dict[str, list[int]] = {}
    marker: list[int] = []  # per weighted unit: the step whose end frees its window slot
    last_compute: int | None = None
    for u in seq:
        names = list(dict.fromkeys(t.name for t in u.op.weights))
        need = [t for t in names if t not in resident]
        if need:
            w = widx[u.pos]
            after = [marker[w - depth]] if w >= depth else []
            if depth == 1 and last_compute is not None:
                after.append(last_compute)  # strictly no overlap: wait for the previous op too
            lid = b.load(need, after=after, path=path)
            for t in need:
                resident[t] = lid
                users[t] = []
        cid = b.compute(u, after=[resident[t] for t in names])
        last_compute = cid
        for t in names:
            users[t].append(cid)
        to_free = [t for t in names
                   if uses[u.pos][t] is None or widx[uses[u.pos][t]] - widx[u.pos] >= depth]
        if names:
            if to_free:
                fid = b.free(to_free, after=[c for t in to_free for c in users[t]])
                for t in to_free:
                    del resident[t]
                    del users[t]
                marker.append(fid)
            else:
                marker.append(cid)
    return b


def sequential(workload: Workload, profile: HardwareProfile, budget: int | None = None,
               path: str = "via_buffer") -> Builder:
    return stream(workload, profile, budget, depth=1, path=path, policy="sequential")


def pipeline(workload: Workload, profile: HardwareProfile, budget: int | None = None,
             depth: int | str = "auto", path: str = "via_buffer") -> Builder:
    return stream(workload, profile, budget, depth=depth, path=path, policy="pipeline")
