"""The exact one-pass evaluator: the SimPy engine's numbers without a discrete-event loop.

It follows the same step descriptions (`sim.flow`) and the same same-instant rule as the
engine, in one pass over the steps in list order: a step starts when the steps it depends on
have ended (plus the sync latency they add), a stage starts when its unit is free, a kernel
when the one before it has ended. That is the engine's outcome exactly when no memory request
ever has to wait, every unit receives its stages in list order, and nothing needs an event
loop. The evaluator checks each of these and, where one fails, hands over to the engine with
the reason (`Handover`) instead of guessing:

- a memory request that would wait for memory (the budget binds), or, with a page cache, the
  OS memory limit reached (pages would be evicted and faulted back);
- a unit that receives a stage earlier than one listed before it, where serving it first (first
  come, first served) would delay what the unit has already been given (a stage that fits in
  the idle time before those is placed there exactly);
- a stage or kernel of zero length that starts at the instant it arrives (what it releases
  would come after that instant's grants);
- storage contention (reads slowed by kernels), duration hooks, lock-step barriers (a kernel
  waiting for a read, `after_read`; a load's copy waiting for other steps, `copy_after`) and a
  reader that hides request latency behind the read ahead (`load.reads_in_flight` > 1): the
  engine follows them.

The pass computes times only. Memory is then rebuilt with numpy from each step's fixed
requests and releases: every change one row, ordered by the engine's rule (the releases of an
instant, then its grants by priority, step and segment), sampled where the engine samples
(after each grant, and at the end of each instant).
"""

from __future__ import annotations

import bisect
import math

import numpy as np

from sim.engine import SimResult
from sim.errors import SimError
from sim.flow import COMPUTE, LOAD, LoadFlow, Prepared, issue_time
from sim.memory import CATEGORIES, Peaks
from sim.outcome import RunRecord, assemble
from sim.trace import Interval, Trace

CAT = {c: k for k, c in enumerate(CATEGORIES)}
W, S, A, WS, KV = (CAT[c] for c in CATEGORIES)
SUB = 64  # order key: ((phase * 3 + priority) * (n + 1) + step) * SUB + segment
RELEASE, GRANT = 0, 1  # phases of an instant
PRIO_COMPUTE, PRIO_LOAD, AFTER_GRANTS = 0, 1, 2


class Handover(SimError):
    """The evaluator cannot give the engine's exact answer for this run; `reason` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def evaluate(p: Prepared, budget: int | None, record_trace: bool = True) -> SimResult:
    """The engine's result for prepared schedule `p` under `budget`, in one pass; raises
    Handover (with the reason) where only the engine can answer exactly."""
    profile = p.profile
    if profile.storage.compute_contention > 1.0:
        raise Handover("storage.compute_contention > 1: reads slowed by kernels need the "
                       "event loop")
    if profile.gpu.sync_serial and p.synchronised:
        raise Handover("gpu.sync_serial: sync hops queue on one driver thread in order of "
                       "arrival")
    if p.after_read:
        raise Handover("kernels wait for loads' reads (after_read): a lock-step pipeline")
    if p.hidden_read > 0.0 and p.loads:
        raise Handover("the runtime's reader keeps several reads in flight (reads_in_flight "
                       "> 1): request latency hidden behind the read ahead")
    steps = p.schedule.steps
    if budget is not None:
        for i in p.loads:
            st = steps[i]
            if st.bytes > budget and not st.preallocated:  # type: ignore[union-attr]
                raise Handover(f"load step {i} needs more than the budget at once (the engine "
                               "reports it)")
    n = p.n
    synchronised, after_init = p.synchronised, p.loads_after_init
    kinds, deps, lags, loads = p.kinds, p.deps, p.lags, p.loads
    nc = len(p.compute_ids)
    end = [0.0] * n
    free_at = {"storage": 0.0, "copy": 0.0, "transform": 0.0, "gpu": 0.0, "host": p.init_s}
    # per unit, the stages placed so far in arrival order: (time, step, segment), start, end
    ukeys: dict[str, list[tuple[float, int, int]]] = {u: [] for u in free_at}
    ustart: dict[str, list[float]] = {u: [] for u in free_at}
    uend: dict[str, list[float]] = {u: [] for u in free_at}
    last = dict.fromkeys(free_at, 0.0)  # latest arrival at each unit so far

    def backfill(unit: str, t: float, i: int, k: int, earliest: float, d: float) -> float:
        """Place a stage that arrived before stages already placed: where first come, first
        served leaves those unchanged; returns its start."""
        keys = ukeys[unit]
        pos = bisect.bisect(keys, (t, i, k))
        prev = uend[unit][pos - 1] if pos else (p.init_s if unit == "host" else 0.0)
        start = earliest if earliest > prev else prev
        if start + d > ustart[unit][pos]:
            raise Handover(f"step {i} reaches the {unit} unit at {t!r} s, before a step listed "
                           "ahead of it, and serving it first would delay that one: first "
                           "come, first served reorders them")
        keys.insert(pos, (t, i, k))
        ustart[unit].insert(pos, start)
        uend[unit].insert(pos, start + d)
        return start
    cgrant = [0.0] * nc  # when each kernel's memory was granted (asked)
    cstart = [0.0] * nc
    cdata = [0.0] * nc  # when its inputs and the kernel before it had ended
    sreq: list[float] = []  # per load segment (in list order): when it asked / arrived,
    sstart: list[float] = []  # when its stage started, when it ended
    send: list[float] = []
    lids: list[int] = []
    first, init_s = p.first_compute, p.init_s
    shared = profile.gpu.shared_with_transfers
    compute_s, data_ready = p.compute_s, p.data_ready
    issue = profile.gpu.kernel_issue_interval
    host = init_s - issue  # when the host issued the kernel before (see `issue_time`)
    k_c = 0
    for i in range(n):
        ready = 0.0
        if synchronised:
            for j, lag in zip(deps[i], lags[i], strict=True):
                r = end[j] + lag
                if r > ready:
                    ready = r
        else:
            for j in deps[i]:
                if end[j] > ready:
                    ready = end[j]
        kind = kinds[i]
        if kind == COMPUTE:
            if i == first and init_s > ready:
                ready = init_s
            d = compute_s[k_c]
            arrive = ready
            if issue:
                host = issue_time(host, issue, deps[i], lags[i] if synchronised else (), kinds,
                                  end)
                if host > arrive:
                    arrive = host
            if shared:
                if arrive < last["gpu"]:
                    start = backfill("gpu", arrive, i, 0, arrive, d)
                else:
                    last["gpu"] = arrive
                    fa = free_at["gpu"]
                    start = arrive if arrive > fa else fa
                    free_at["gpu"] = start + d
                    ukeys["gpu"].append((arrive, i, 0))
                    ustart["gpu"].append(start)
                    uend["gpu"].append(start + d)
            else:
                start = arrive
            if d == 0.0 and start == ready:
                raise Handover(f"compute step {i}: a zero-length kernel starts at the instant "
                               "its memory is granted")
            r = 0.0
            for j in data_ready[k_c]:
                if end[j] > r:
                    r = end[j]
            cgrant[k_c] = ready
            cstart[k_c] = start
            cdata[k_c] = r
            end[i] = start + d
            k_c += 1
        elif kind == LOAD:
            if after_init and init_s > ready:
                ready = init_s
            t = ready
            lids.append(i)
            for k, seg in enumerate(loads[i].segments):
                if seg.wait:
                    raise Handover(f"load step {i} waits for other steps before its copy "
                                   "(copy_after)")
                sreq.append(t)
                unit = seg.unit
                if unit:
                    earliest = t + seg.lag
                    if seg.floor > earliest:
                        earliest = seg.floor
                    if t < last[unit]:
                        start = backfill(unit, t, i, k, earliest, seg.seconds)
                    else:
                        last[unit] = t
                        fa = free_at[unit]
                        start = earliest if earliest > fa else fa
                        free_at[unit] = start + seg.seconds
                        ukeys[unit].append((t, i, k))
                        ustart[unit].append(start)
                        uend[unit].append(start + seg.seconds)
                    if seg.seconds == 0.0 and start == t:
                        raise Handover(f"load step {i}: a zero-length {seg.stage} starts at "
                                       "the instant it arrives")
                    t = start + seg.seconds
                    sstart.append(start)
                else:
                    sstart.append(t)
                send.append(t)
            end[i] = t
        else:
            end[i] = ready
    return _finish(p, budget, record_trace, end, cgrant, cstart, cdata, sreq, sstart, send, lids)


class _Segments:
    """The load segments of one pass as arrays, with each flow's fixed parts spread over the
    loads that follow it."""

    def __init__(self, p: Prepared, lids: list[int], sreq: list[float], sstart: list[float],
                 send: list[float]):
        self.req = np.asarray(sreq)
        self.start = np.asarray(sstart)
        self.end = np.asarray(send)
        by_flow: dict[int, tuple[LoadFlow, list[int], list[int]]] = {}
        base = 0
        for i in lids:
            flow = p.loads[i]
            entry = by_flow.get(id(flow))
            if entry is None:
                entry = by_flow[id(flow)] = (flow, [], [])
            entry[1].append(i)
            entry[2].append(base)
            base += len(flow.segments)
        self.groups = [(f, np.asarray(ls, dtype=np.int64), np.asarray(bs, dtype=np.int64))
                       for f, ls, bs in by_flow.values()]


def _finish(p: Prepared, budget: int | None, record_trace: bool, end: list[float],
            cgrant: list[float], cstart: list[float], cdata: list[float], sreq: list[float],
            sstart: list[float], send: list[float], lids: list[int]) -> SimResult:
    """Memory, utilisation, the init split and the trace of one pass; then the Metrics."""
    segs = _Segments(p, lids, sreq, sstart, send)
    end_a = np.asarray(end)
    cids = np.asarray(p.compute_ids, dtype=np.int64)
    cstart_a = np.asarray(cstart)
    cend = end_a[cids] if cids.size else np.zeros(0)
    busy: dict[str, list[float]] = {r: [] for r in ("storage", "copy", "transform", "gpu")}
    stages: list[tuple[str, float, float]] = []
    if p.init_s > 0:
        busy["host"] = [p.init_s]
        stages.append(("build", 0.0, p.init_s))
    flash = dram = 0
    for flow, ls, bs in segs.groups:
        flash += flow.flash_bytes * len(ls)
        dram += flow.dram_bytes * len(ls)
        for k, seg in enumerate(flow.segments):
            if not seg.unit:
                continue
            st, en = segs.start[bs + k], segs.end[bs + k]
            busy.setdefault(seg.resource, []).extend((en - st).tolist())
            stages.extend(zip([seg.stage] * len(ls), st.tolist(), en.tolist(), strict=True))
    busy["gpu"].extend((cend - cstart_a).tolist())
    dram += int(p.dram.sum())
    first = p.first_compute
    init_end = cstart[0] if cstart else None
    grant_first = cgrant[0] if cgrant else None
    timeline, peak, oom = _memory(p, budget, segs, end_a, cids, np.asarray(cgrant), cend,
                                  init_end, grant_first, first)
    rec = RunRecord(
        end_time=end, busy={k: math.fsum(v) for k, v in busy.items()},
        stall_s=math.fsum((cstart_a - np.asarray(cdata)).tolist()),
        compute_s=math.fsum(p.compute_s), dram_bytes=dram, flash_bytes=flash, error=None,
        init_end=init_end, stages=stages, timeline=timeline, peak=peak, oom=oom)
    metrics = assemble(p, budget, rec, "evaluator")
    intervals = _intervals(p, segs, cstart, cend) if record_trace else []
    return SimResult(metrics, Trace(intervals, timeline, "sim"))


def _intervals(p: Prepared, segs: _Segments, cstart: list[float], cend: np.ndarray
               ) -> list[Interval]:
    """The trace: every stage and kernel as an interval, ordered as the engine orders them."""
    steps = p.schedule.steps
    out: list[Interval] = []
    if p.init_s > 0:
        out.append(Interval("host", f"build {p.programs} program(s)", -1, 0.0, p.init_s))
    for flow, ls, bs in segs.groups:
        for k, seg in enumerate(flow.segments):
            if not seg.unit:
                continue
            st, en = segs.start[bs + k].tolist(), segs.end[bs + k].tolist()
            for i, a, b in zip(ls.tolist(), st, en, strict=True):
                names = ",".join(steps[i].tensors)[:80]  # type: ignore[union-attr]
                out.append(Interval(seg.resource, f"{seg.stage} {names}", i, a, b, seg.nbytes))
    labels = [inv.label for inv in p.schedule.invocations]
    for c, a, b in zip(p.compute_ids, cstart, cend.tolist(), strict=True):
        st = steps[c]
        out.append(Interval("gpu", st.op, c, a, b, 0, labels[st.invocation]))  # type: ignore[union-attr]
    out.sort(key=lambda iv: (iv.start, iv.resource, iv.step))
    return out


def _memory(p: Prepared, budget: int | None, segs: _Segments, end: np.ndarray,
            cids: np.ndarray, cgrant: np.ndarray, cend: np.ndarray, init_end: float | None,
            grant_first: float | None, first: int | None
            ) -> tuple[list[tuple[float, ...]], Peaks, tuple[float, int] | None]:
    """Every memory change as a row, ordered as the engine makes them; check that no grant
    waits; the end-of-instant timeline, the peaks and the OS kill (time, bytes), if any."""
    span = (p.n + 1) * SUB
    cols: list[tuple[np.ndarray, ...]] = []  # (time, key, category, delta, is-last-of-grant)

    def rows(time: np.ndarray, key: np.ndarray, cat: int | np.ndarray, delta: np.ndarray,
             grant: bool | np.ndarray = False) -> None:
        if len(time):
            m = len(time)
            cols.append((time, key, np.broadcast_to(np.asarray(cat, dtype=np.int64), (m,)),
                         delta, np.broadcast_to(np.asarray(grant), (m,))))

    # preallocated buffers: granted at t=0, before any other request, held to the end
    if p.buffers:
        parts = list(p.buffers.items())
        for j, (c, b) in enumerate(parts):
            rows(np.zeros(1), np.array([GRANT * 3 * span - SUB], dtype=np.int64), CAT[c],
                 np.array([b], dtype=np.int64), j == len(parts) - 1)
    # kernels: activations, workspace, KV state asked (together) when ready; released at end
    out, ws, kv = p.outputs, p.workspace, p.state
    gkey = PRIO_COMPUTE * span + cids * SUB + GRANT * 3 * span
    for cat, v, is_last in ((A, out, (ws == 0) & (kv == 0)), (WS, ws, kv == 0), (KV, kv, None)):
        m = v > 0
        rows(cgrant[m], gkey[m], cat, v[m], m[m] if is_last is None else is_last[m])
    rkey = cids * SUB
    for cat, v in ((WS, p.freed_ws), (A, p.freed_act)):
        m = v > 0
        rows(cend[m], rkey[m], cat, -v[m])
    # frees of weights
    if p.free_bytes:
        fids = np.fromiter(p.free_bytes, dtype=np.int64)
        fb = np.fromiter(p.free_bytes.values(), dtype=np.int64)
        m = fb > 0
        rows(end[fids[m]], fids[m] * SUB, W, -fb[m])
    # loads: each segment's request when it asked, its releases when its stage ended
    files: list[tuple[np.ndarray, np.ndarray, int]] = []  # (time, key, bytes) of host files
    lkey = GRANT * 3 * span + PRIO_LOAD * span
    for flow, ls, bs in segs.groups:
        for k, seg in enumerate(flow.segments):
            if seg.request:
                t, key = segs.req[bs + k], lkey + ls * SUB + k
                for j, (c, b) in enumerate(seg.request):
                    rows(t, key, CAT[c], np.full(len(ls), b, dtype=np.int64),
                         j == len(seg.request) - 1)
            for a in seg.post:
                t, key = segs.end[bs + k], ls * SUB + k
                if a[0] == "free":
                    rows(t, key, CAT[a[1]], np.full(len(ls), -a[2], dtype=np.int64))
                elif a[0] == "move":
                    rows(t, key, S, np.full(len(ls), -a[1], dtype=np.int64))
                    rows(t, key, W, np.full(len(ls), a[1], dtype=np.int64))
                else:
                    files.append((t, key, a[1]))
    # host file copies: kept until the first kernel starts (runtime host_copy until_init) when
    # released no later than the instant its memory was granted
    until = p.runtime.host_copy == "until_init"
    held = 0
    for t, key, b in files:
        keep = (t <= grant_first) if until and grant_first is not None else \
            np.full(len(t), until, dtype=bool)
        held += b * int(keep.sum())
        rows(t[~keep], key[~keep], S, np.full(int((~keep).sum()), -b, dtype=np.int64))
    if held and init_end is not None:
        if init_end > grant_first:  # type: ignore[operator]
            key = first * SUB + 1  # type: ignore[operator]
        elif p.profile.gpu.shared_with_transfers:  # when the unit takes the kernel: after grants
            key = GRANT * 3 * span + AFTER_GRANTS * span
        else:  # right after the kernel's own grant
            key = GRANT * 3 * span + first * SUB + 1  # type: ignore[operator]
        rows(np.array([init_end]), np.array([key], dtype=np.int64), S,
             np.array([-held], dtype=np.int64))
    return _replay(cols, budget, p)


def _replay(cols: list[tuple[np.ndarray, ...]], budget: int | None, p: Prepared
            ) -> tuple[list[tuple[float, ...]], Peaks, tuple[float, int] | None]:
    peaks = Peaks()
    if not cols:
        return [(0.0, 0, 0, 0, 0, 0, 0)], peaks, None
    time = np.concatenate([c[0] for c in cols])
    key = np.concatenate([c[1] for c in cols])
    order = np.lexsort((key, time))
    time = time[order]
    cat = np.concatenate([c[2] for c in cols])[order]
    delta = np.concatenate([c[3] for c in cols])[order]
    grant = np.concatenate([c[4] for c in cols])[order]
    m = len(order)
    d = np.zeros((m, len(CATEGORIES)), dtype=np.int64)
    d[np.arange(m), cat] = delta
    state = np.cumsum(d, axis=0)
    total = state.sum(axis=1)
    gi = np.flatnonzero(grant)
    if budget is not None and gi.size:
        # what the budget caps: every category, or weights + staging (budget_scope weights)
        gated = total if p.schedule.budget_scope == "total" else state[:, W] + state[:, S]
        over = gi[gated[gi] > budget]
        if over.size:
            k = int(over[0])
            raise Handover(f"memory waits bind: a request at {float(time[k])!r} s would bring "
                           f"the memory the budget caps to {int(gated[k])} bytes, above the budget of "
                           f"{budget} bytes")
    oom = None
    over = gi[total[gi] > p.profile.memory_limit()]
    if over.size:
        if p.mapped:
            raise Handover("the OS memory limit is reached with mapped weights: the page "
                           "cache would evict and fault pages back")
        k = int(over[0])
        oom = (float(time[k]), int(total[k]))
    # the end of each instant: the last row of each run of equal times
    last = np.flatnonzero(np.append(time[1:] != time[:-1], True))
    samples = np.union1d(gi, last)
    st, tot = state[samples], total[samples]
    k = int(np.argmax(tot))
    if tot[k] > 0:
        peaks.total = int(tot[k])
        peaks.row = (float(time[samples[k]]), int(tot[k]), *(int(v) for v in st[k]))
    peaks.by_cat = [max(0, int(v)) for v in st.max(axis=0)]
    peaks.weights_staging = max(0, int((st[:, W] + st[:, S]).max()))
    times = time[last].tolist()
    timeline: list[tuple[float, ...]] = [] if times[0] == 0.0 else [(0.0, 0, 0, 0, 0, 0, 0)]
    timeline += [(t, tt, *r) for t, tt, r in zip(times, total[last].tolist(),
                                                  state[last].tolist(), strict=True)]
    return timeline, peaks, oom
