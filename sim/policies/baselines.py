"""Baseline policies: preload (what MNN/TFLite/TVM do), sequential, and the Demand Layering
style pipeline.

- preload: read, copy and transform every weight (one after another, as a framework's
  session creation does), then run every op. Memory = all weights + activations.
- sequential: per layer: load its weights, run it, free them. Nothing overlaps.
- pipeline (layer-by-layer streaming in the manner of Demand Layering, RTSS'22; the paper's
  own pipelines are the `demand-layering` policy): the load of layer k may start once layer
  k - depth has finished and freed its weights, so storage reads, copies/transforms and compute
  of consecutive layers overlap; memory is taken per load from the budget. depth 1 =
  sequential; larger depth = more memory, less delay. depth='auto' simulates the candidate
  depths (`search.fastest_depth`: every one up to 64 weighted layers, else a geometric grid
  until it stops improving) and takes the fastest that completes within the budget, the least
  memory among equals, among those whose window fits the budget at any timing
  (`search.fits_at_any_timing`): a depth that fits only at the profile's nominal timing is
  passed over, as on a device that reads faster its loads could wait forever for memory.
"""

from __future__ import annotations

from hwprofiles.runtime import RuntimeProfile
from hwprofiles.schema import HardwareProfile
from sim.errors import SimError
from sim.policies.builder import Builder, next_uses, units
from sim.policies.search import fastest_robust_depth, fits_at_any_timing, simulated
from workloads.workload import Workload


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


def stream(workload: Workload, profile: HardwareProfile, budget: int | None = None,
           depth: int | str = 2, path: str = "via_buffer", policy: str = "pipeline",
           runtime: RuntimeProfile | None = None, budget_scope: str = "total") -> Builder:
    """Layer-by-layer streaming with a window of `depth` layers in flight."""
    if depth == "auto":
        n = max(1, sum(1 for u in units(workload) if u.op.weights))

        def score(d: int) -> tuple[float, int]:
            return simulated(stream(workload, profile, budget, d, path, policy, runtime,
                                    budget_scope), profile, budget, runtime)

        act = workload.activation_profile() if budget_scope == "total" else None
        # the schedule checked last is kept: the search returns it, which then need not be
        # built again (only it: two schedules of a 7B decode at once cost 40 MB of peak)
        kept: dict[int, Builder] = {}

        def robust(d: int) -> bool:
            kept.clear()
            kept[d] = stream(workload, profile, budget, d, path, policy, runtime, budget_scope)
            return fits_at_any_timing(kept[d].schedule, profile, budget, runtime, act)

        d, tried, rejected = fastest_robust_depth(n, score, robust)
        b = kept.pop(d, None) or stream(workload, profile, budget, d, path, policy, runtime,
                                        budget_scope)
        b.schedule.meta["auto_candidates"] = tried
        b.schedule.meta["auto_rejected_fragile"] = rejected
        return b
    b = Builder(policy, workload, profile, budget)
    b.schedule.budget_scope = budget_scope
    seq = units(workload)
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
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
             depth: int | str = "auto", path: str = "via_buffer",
             runtime: RuntimeProfile | None = None, budget_scope: str = "total") -> Builder:
    return stream(workload, profile, budget, depth=depth, path=path, policy="pipeline",
                  runtime=runtime, budget_scope=budget_scope)
