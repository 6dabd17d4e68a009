"""Fit each stage of the timing model on its own, from the per-op times of calibration replays
(`validate.stages`), and check it on ops it was not fitted on.

Every stage's measured ops are split before fitting: every `CHECK_EVERY`-th op (in replay and
step order) goes to the check set, the rest to the fit set; the check set never sets a number.
- hops (sync / dispatch gaps), per hop kind: the mean gap where the dependency held the stage
  back (the slowest 5% left out: a stray scheduler delay is not the hop's cost); with
  `gpu.sync_serial` (one driver thread does every hop), only the gaps inside which no other
  stage started (the driver's own cost, not its queue);
- storage: request latency + bytes / bandwidth on the reads made while no kernel ran, together
  with the microbenchmark's replay-style reads; `storage.compute_contention` from the reads at
  least 30% overlapped by kernels (their total time);
- copy and transform: latency + bytes / bandwidth on their durations (profiling events); copies
  into buffers and copies straight into images (direct loads to textures) on separate lines;
- kernels: launch overhead, compute efficiency, compute/memory overlap and the kernel hop, by a
  grid search on the effective kernel times (event + the launch gap before it), with the
  microbenchmarked peak rates and read bandwidths; the efficiency only where it is pinned down
  (where the microbenchmark's fits within `EFFICIENCY_TOL` of the best, as with launch-bound
  kernels, it stays); and the host issue interval, 0 or `ISSUE_GRID` x the spacing of
  back-to-back short kernels (`issue_candidate`), whichever fits better.
The end-to-end latency of the calibration replays is then a check of the whole, never a fit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from hwprofiles.schema import HOPS, HardwareProfile
from hwprofiles.storage import read_time
from sim.hardware import HardwareModel
from sim.schedule import Load, Schedule
from validate.fit import Fit
from validate.stages import StageOp, gaps_by_hop, hop_latencies

CHECK_EVERY = 4  # every 4th op of each stage is held out of its fit
TRIM = 0.95  # hop gaps: the slowest 5% are left out of the mean
TEXTURE_COPY = "direct/texture"  # the stage kind of a copy written straight into an image
OVERLAP_GRID = (0.001, 0.25, 0.5, 0.75, 1.0)
EFFICIENCY_GRID = tuple(float(x) for x in np.geomspace(0.02, 1.0, 30))
FLAT_BANDWIDTH = 1e15  # bytes/s: "no measurable size dependence"
KERNEL_HOP_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)  # x the measured kernel hop
# per-op kernel MAPE (absolute) within which another compute efficiency fits as well
EFFICIENCY_TOL = 0.01
# a kernel that started this much past its readiness waited for the host to issue it
ISSUE_EPS = 1e-7
ISSUE_GRID = (0.5, 0.625, 0.75, 0.875, 1.0)  # x the issue interval the kernels suggest


@dataclass
class StageResult:
    """One stage's fit: the profile fields it set, and its error on the fit and check ops."""

    stage: str
    values: dict[str, float]
    how: str
    fit_n: int = 0
    fit_mape: float = math.nan
    check_n: int = 0
    check_mape: float = math.nan
    extra: dict[str, Any] = field(default_factory=dict)

    def note(self) -> str:
        return (f"{self.how}; fit MAPE {self.fit_mape:.1%} over {self.fit_n} ops, check MAPE "
                f"{self.check_mape:.1%} over {self.check_n} held-out ops")


def split(items: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    """(fit, check): every CHECK_EVERY-th item (from the second) to the check set."""
    fit = [x for i, x in enumerate(items) if i % CHECK_EVERY != 1]
    check = [x for i, x in enumerate(items) if i % CHECK_EVERY == 1]
    return fit, check


def _mape(pred: np.ndarray, meas: np.ndarray) -> float:
    ok = meas > 0
    return float(np.mean(np.abs(pred[ok] / meas[ok] - 1))) if ok.any() else math.nan


def trimmed_mean(values: Sequence[float], keep: float = TRIM) -> float:
    """Mean of the smallest `keep` fraction of `values` (at least one)."""
    v = np.sort(np.asarray(values, float))
    return float(np.mean(v[:max(1, int(len(v) * keep))])) if len(v) else 0.0


def fit_hops(runs: Sequence[Sequence[StageOp]], serial: bool = False) -> list[StageResult]:
    """Per hop kind (`gpu.sync_<hop>`): the trimmed mean of the fit gaps of every replay in
    `runs` (`serial`: only the gaps inside which no other stage started, the driver thread's
    own cost per hop; queueing behind others is the model's); checked as the mean absolute
    error against the held-out gaps, relative to their mean (gaps scatter widely, so a per-gap
    relative error would be dominated by the shortest ones)."""
    gaps: dict[str, list[float]] = {}
    for ops in runs:
        for k, v in gaps_by_hop(ops, alone=serial).items():
            gaps.setdefault(k, []).extend(v)
    which = "measured" if not serial else "measured (no other stage started inside)"
    out = []
    for hop in HOPS:
        v = gaps.get(hop, [])
        if len(v) < 3:
            continue
        fit, check = split(v)
        h = trimmed_mean(fit)
        r = StageResult(f"hop {hop}", {f"gpu.sync_{hop}": h},
                        f"mean of the {which} {hop} hop gaps (slowest 5% left out)")
        for name, pts in (("fit", fit), ("check", check)):
            a = np.asarray(pts)
            err = float(np.mean(np.abs(a - h)) / max(np.mean(a), 1e-12)) if len(a) else math.nan
            setattr(r, f"{name}_n", len(a))
            setattr(r, f"{name}_mape", err)
        r.extra = {"median_s": float(np.median(v)), "p90_s": float(np.percentile(v, 90))}
        out.append(r)
    return out


def size_classes(pts: Sequence[tuple[float, float]], stat: str = "mean"
                 ) -> list[tuple[float, float, int]]:
    """(mean bytes, mean or median seconds, count) of the points in each power-of-two size
    class."""
    groups: dict[int, list[tuple[float, float]]] = {}
    for b, t in pts:
        groups.setdefault(int(math.log2(max(b, 1.0))), []).append((b, t))
    agg = np.mean if stat == "mean" else np.median
    return [(float(np.mean([b for b, _ in g])), float(agg([t for _, t in g])), len(g))
            for _, g in sorted(groups.items())]


def fit_line(pts: Sequence[tuple[float, float]], stat: str = "mean") -> tuple[float, float]:
    """(latency, bandwidth) of latency + bytes / bandwidth through the size classes' means
    (or medians): relative least squares, each class weighted by the root of its count,
    latency >= 0."""
    bins = size_classes(pts, stat)
    x = np.array([b[0] for b in bins])
    y = np.array([b[1] for b in bins])
    w = np.sqrt(np.array([b[2] for b in bins], float))
    if len(bins) >= 2:
        a_mat = np.stack([w / y, w * x / y], axis=1)
        (a, k), *_ = np.linalg.lstsq(a_mat, w, rcond=None)
        if a >= 0 and k > 0:
            return float(a), float(1 / k)
        if a > 0:  # no growth with size to be seen: a fixed cost (bandwidth beyond measuring)
            return float(np.sum(w * w) / np.sum(w * w / y)), FLAT_BANDWIDTH
    r = x / y  # through the origin
    k = float(np.sum(w * w * r) / np.sum(w * w * r * r))
    return 0.0, 1 / k


def _line(stage: str, fields: tuple[str, str], pts: Sequence[tuple[float, float]],
          how: str, extra_fit: Sequence[tuple[float, float]] = (), stat: str = "median"
          ) -> StageResult | None:
    """latency + bytes / bandwidth on (bytes, seconds) points, fitted on the fit split."""
    if len(pts) < 3:
        return None
    fit, check = split(pts)
    lat, bw = fit_line(list(fit) + list(extra_fit), stat)
    f = Fit(lat, bw, 0.0, len(fit))
    r = StageResult(stage, {fields[0]: f.latency, fields[1]: f.bandwidth}, how)
    for name, sel in (("fit", fit), ("check", check)):
        x, y = np.array([p[0] for p in sel]), np.array([p[1] for p in sel])
        setattr(r, f"{name}_n", len(sel))
        setattr(r, f"{name}_mape", _mape(f.latency + x / f.bandwidth, y) if len(sel) else math.nan)
    return r


def busy_overlap(op: StageOp, kernels: Sequence[StageOp]) -> float:
    """Seconds of `op` during which the compute unit ran one of `kernels`."""
    return sum(max(0.0, min(op.end, k.end) - max(op.start, k.start)) for k in kernels)


def contention_estimate(reads: Sequence[tuple[float, float, float]]) -> float:
    """`storage.compute_contention` from reads that overlapped compute: each (measured seconds,
    seconds the storage model predicts alone, seconds of overlap). The model makes a read
    `alone + overlap x (1 - 1/k)` long (`sim.engine`'s contended reads); k is solved so that
    the reads at least 30% overlapped take their measured time in total (as the storage line
    goes through each size class's mean: a read's slowdown adds up in a schedule), in [1, 4];
    1 where there are none."""
    sel = [(m, a, b) for m, a, b in reads if m > 0 and b >= 0.3 * m]
    if not sel:
        return 1.0
    meas, alone, busy = (sum(x[i] for x in sel) for i in range(3))
    left = busy + alone - meas  # = busy / k
    k = busy / left if left > 1e-12 else meas / alone  # else slowed beyond its overlap
    return float(min(4.0, max(1.0, k)))


def fit_storage(runs: Sequence[tuple[Schedule, list[StageOp]]], profile: HardwareProfile,
                microbench_reads: Sequence[tuple[float, float]]) -> list[StageResult]:
    """Storage request latency and bandwidth, then the contention factor (see module doc)."""
    quiet, overlapped = [], []
    for _, ops in runs:
        kernels = [o for o in ops if o.resource == "gpu"]
        for o in ops:
            if o.resource == "storage" and o.duration > 0:
                busy = busy_overlap(o, kernels)
                (quiet if busy < 0.1 * o.duration else overlapped).append(
                    (o.nbytes, o.duration, busy))
    r = _line("storage", ("storage.request_latency", "storage.read_bandwidth"),
              [(b, d) for b, d, _ in quiet],
              f"reads of the weight file made while no kernel ran, with {len(microbench_reads)} "
              "replay-style microbenchmark reads: latency + bytes / bandwidth through each size "
              "class's mean (a read's tail delays add up in a schedule)", microbench_reads,
              "mean")
    if r is None:
        return []
    spec = replace(profile.storage, request_latency=r.values["storage.request_latency"],
                   read_bandwidth=r.values["storage.read_bandwidth"])
    over = [(d, read_time(spec, int(b)), busy) for b, d, busy in overlapped]
    k = contention_estimate(over)
    n = sum(1 for m, _, busy in over if busy >= 0.3 * m)
    c = StageResult("storage contention", {"storage.compute_contention": k},
                    f"the slowdown that gives the {n} reads at least 30% overlapped by "
                    "kernels their measured time in total, against the storage fit (1: none "
                    "seen)")
    return [r, c]


def issue_candidate(items: Sequence[tuple], chained: np.ndarray) -> float | None:
    """A host issue interval the calibration kernels suggest: the median start-to-start
    spacing of back-to-back kernels held back by the kernel before them alone (`chained`),
    where that kernel's event was short (under half the median gap: the host, not the GPU,
    set the pace); None with fewer than 10 such pairs."""
    pairs = [(prev.duration, cur.start - prev.end, cur.start - prev.start)
             for k in np.flatnonzero(chained) for prev, cur in ((items[k - 1][-1], items[k][-1]),)]
    if len(pairs) < 10:
        return None
    g = float(np.median([gap for _, gap, _ in pairs]))
    short = [sp for ev, _, sp in pairs if ev < g / 2]
    return float(np.median(short)) if len(short) >= 10 else None


def _chained(items: Sequence[tuple]) -> np.ndarray:
    """Per kernel (in start order), whether the kernel before it alone held it back: its hop
    is kernel<-kernel, its dependency ended with the kernel before, and its memory was not
    waited for. Items of several replays follow each other, and no pair spans two."""
    out = np.zeros(len(items), dtype=bool)
    for k in range(1, len(items)):
        prev, cur = items[k - 1][-1], items[k][-1]
        out[k] = cur.hop == "kernel<-kernel" and cur.granted is None and cur.dep_end == prev.end
    return out


def fit_kernels(runs: Sequence[tuple[Schedule, list[StageOp]]], profile: HardwareProfile,
                hops: dict[str, float]) -> StageResult | None:
    """Launch overhead, compute efficiency, compute/memory overlap, the kernel hop and the host
    issue interval (see module doc); returns the result with per-op-kind check errors in
    `extra`."""
    items = []
    firsts = set()  # each replay's first kernel
    for s, ops in runs:
        loc = {t: st.dst for st in s.steps if isinstance(st, Load) for t in st.tensors}
        firsts.add(len(items))
        for o in sorted((o for o in ops if o.resource == "gpu"), key=lambda o: o.start):
            items.append((s.steps[o.step], s.tensor_bytes, loc, o))
    if len(items) < 3:
        return None
    chained = _chained(items)  # the others: held back by a load, or the first
    idx = np.arange(len(items))
    fit_i, check_i = (np.array(x, dtype=int) for x in split(list(idx)))
    base_hop = hops.get("kernel<-load", 0.0)
    mine = profile.gpu.compute_efficiency  # the microbenchmark's (or the base profile's)
    effs = EFFICIENCY_GRID if mine in EFFICIENCY_GRID else (*EFFICIENCY_GRID, mine)
    issue = issue_candidate(items, chained)
    issues = (0.0,) if issue is None else (0.0, *(issue * x for x in ISSUE_GRID))
    # efficiency -> its best (error, overlap, launch, kernel hop factor, issue interval)
    per_eff: dict[float, tuple] = {}
    cache: dict[tuple[float, float], np.ndarray] = {}

    def roofline(o: float, eff: float) -> np.ndarray:
        if (o, eff) not in cache:
            p = replace(profile, gpu=replace(profile.gpu, compute_memory_overlap=o,
                                             compute_efficiency=eff, kernel_launch_overhead=0.0))
            hw = HardwareModel(p)
            cache[(o, eff)] = np.array([hw.compute_time(st, tb, loc) for st, tb, loc, _ in items])
        return cache[(o, eff)]

    def issue_waits(hk: dict[str, float], interval: float) -> np.ndarray:
        """Per kernel, how long the host issue interval keeps it past its measured readiness
        (`sim.flow.issue_time` run over the replay): the host issues a kernel `interval` after
        the one before, not before its load is in; a kernel that started past its readiness
        was waiting for its issue, so the host had issued it at its start."""
        out = np.zeros(len(items))
        if not interval:
            return out
        h = -math.inf
        for k, (*_, o) in enumerate(items):
            ready = o.ready(hk)
            if k in firsts:
                h = -math.inf
            h = h + interval if chained[k] else max(h + interval, ready)
            out[k] = max(0.0, h - ready)
            h = o.start if o.start > ready + ISSUE_EPS else min(h, o.start)
        return out

    waits: dict[tuple[float, float], np.ndarray] = {}

    def predict(base: np.ndarray, c: float, interval: float, f: float) -> np.ndarray:
        return c + base + waits[(f, interval)]

    for f in KERNEL_HOP_GRID:  # the shape with the least mean relative error
        hk = dict(hops, **{"kernel<-load": base_hop * f})
        meas = np.array([o.effective(hk) for *_, o in items])
        for interval in issues:
            waits[(f, interval)] = issue_waits(hk, interval)
        for o in OVERLAP_GRID:
            for eff in effs:
                base = roofline(o, eff)
                for interval in issues:
                    # launch overheads to try: percentiles of what the issue waits leave
                    resid = (meas - base - waits[(f, interval)])[fit_i]
                    for c in np.percentile(resid, (10, 20, 30, 40, 50, 60)):
                        c = max(0.0, float(c))
                        err = _mape(predict(base, c, interval, f)[fit_i], meas[fit_i])
                        if eff not in per_eff or err < per_eff[eff][0]:
                            per_eff[eff] = (err, o, c, f, interval)
    best = min(per_eff, key=lambda e: per_eff[e][0])
    # efficiencies that fit (nearly) as well as the best: where the kernels are launch-bound
    # the replays bound the efficiency from below only, and then they do not set it
    near = sorted(e for e, v in per_eff.items() if v[0] <= per_eff[best][0] + EFFICIENCY_TOL)
    identified = mine not in near
    eff = best if identified else mine
    err, o, c, f, interval = per_eff[eff]
    hop = base_hop * f
    values = {"gpu.compute_memory_overlap": o, "gpu.kernel_launch_overhead": c,
              "gpu.sync_kernel": hop}
    span = (f"efficiencies {near[0]:.3g}-{near[-1]:.3g} fit within {EFFICIENCY_TOL:.0%} "
            "(absolute) of the best per-op MAPE")
    how = ("effective kernel times (profiling event + launch gap): grid search over "
           "compute/memory overlap, compute efficiency, the kernel hop and the host issue "
           "interval (least mean relative error), launch overhead from percentiles of the "
           "residual; ")
    if identified:
        values["gpu.compute_efficiency"] = eff
        how += span
    else:
        why = ("launch-bound kernels: the replays bound it from below only"
               if near[-1] >= max(per_eff) else "the microbenchmark's is among them")
        how += f"{span} ({why}): not set here, so it stays at {mine:.3g}"
    if issue is None:
        how += "; too few back-to-back kernels to suggest a host issue interval"
    elif interval:
        values["gpu.kernel_issue_interval"] = interval
        how += (f"; host issue interval {interval * 1e6:.3g} us ({interval / issue:.3g} x the "
                "median spacing of back-to-back short kernels) fits better than none")
    else:
        how += (f"; no host issue interval: 0.5-1 x {issue * 1e6:.3g} us (the median spacing "
                "of back-to-back short kernels) fits no better")
    r = StageResult("kernels", values, how, len(fit_i), err)
    hk = dict(hops, **{"kernel<-load": hop})
    meas = np.array([x.effective(hk) for *_, x in items])
    pred = predict(roofline(o, eff), c, interval, f)
    r.check_n, r.check_mape = len(check_i), _mape(pred[check_i], meas[check_i])
    kinds: dict[str, list[float]] = {}
    for k in check_i:
        if meas[k] > 0:
            kinds.setdefault(items[k][0].kind, []).append(abs(pred[k] / meas[k] - 1))
    r.extra = {"check_by_kind": {k: (float(np.mean(v)), len(v)) for k, v in kinds.items()}}
    return r


def fit_all(runs: Sequence[tuple[Schedule, list[StageOp]]], profile: HardwareProfile,
            microbench_reads: Sequence[tuple[float, float]] = ()) -> list[StageResult]:
    """Every stage in turn (hops first: the others' readiness depends on them; on the driver
    thread's own cost per hop where `profile.gpu.sync_serial`)."""
    results = fit_hops([ops for _, ops in runs], profile.gpu.sync_serial)
    p = _with(profile, {k: v for r in results for k, v in r.values.items()})
    results += fit_storage(runs, p, microbench_reads)
    # copies into a buffer, and copies written straight into an image (a direct load to a
    # texture), each on its own line: the driver lays the texels out as it writes them
    copies = [(o.nbytes, o.duration) for _, ops in runs for o in ops
              if o.resource == "copy" and o.kind != TEXTURE_COPY]
    r = _line("copy", ("transfer.host_to_gpu_latency", "transfer.host_to_gpu_bandwidth"), copies,
              "copy durations into buffers (profiling events): latency + bytes / bandwidth "
              "through each size class's median")
    if r:
        results.append(r)
    tex = [(o.nbytes, o.duration) for _, ops in runs for o in ops
           if o.resource == "copy" and o.kind == TEXTURE_COPY]
    r = _line("copy to texture", ("transfer.host_to_texture_latency",
                                  "transfer.host_to_texture_bandwidth"), tex,
              "copy durations straight into images (direct loads to textures; profiling "
              "events): latency + bytes / bandwidth through each size class's median")
    if r:
        results.append(r)
    tr = [(o.nbytes, o.duration) for _, ops in runs for o in ops if o.resource == "transform"]
    r = _line("transform", ("transfer.transform_latency", "transfer.transform_bandwidth"), tr,
              "buffer->image transform durations (profiling events): latency + bytes / "
              "bandwidth through each size class's median")
    if r:
        results.append(r)
    p = _with(p, {k: v for r in results for k, v in r.values.items()})
    k = fit_kernels(runs, p, hop_latencies(p))
    if k:
        results.append(k)
    return results


def _with(profile: HardwareProfile, values: dict[str, Any]) -> HardwareProfile:
    """`profile` with some dotted fields replaced."""
    secs: dict[str, dict[str, Any]] = {}
    for path, v in values.items():
        sec, name = path.split(".", 1)
        secs.setdefault(sec, {})[name] = v
    return replace(profile, **{sec: replace(getattr(profile, sec), **kw)
                               for sec, kw in secs.items()})
