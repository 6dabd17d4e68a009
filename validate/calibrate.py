"""Fit a HardwareProfile to one device: microbenchmarks first, then (optionally) the stage
durations measured while replaying a calibration set of schedules; write a calibrated YAML
whose every measured field says what was measured, on which device, when, and the residual."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from hwprofiles import check_file, load_profile
from hwprofiles.schema import FIELDS, HardwareProfile, StorageSpec, get_path
from hwprofiles.storage import read_time
from sim.schedule import Compute, Load, Schedule
from sim.trace import Interval, Trace
from validate.errors import ValidateError
from validate.fit import _rms_rel, fit_bandwidth, fit_latency_bandwidth, fit_storage
from validate.microbench import Microbench


def _fmt(kind: str, v: Any) -> Any:
    """A value written with its unit, as profile files want it."""
    if kind == "bandwidth":
        return f"{v / 1e9:.6g} GB/s"
    if kind == "time":
        return f"{v * 1e6:.6g} us"
    if kind == "rate":
        return f"{v / 1e12:.6g} TFLOPS"
    if kind == "bytes":
        return f"{int(v)} B"
    if kind in ("fraction", "number", "factor"):
        return round(float(v), 6)
    return v


@dataclass
class Calibration:
    """Field path -> (value in SI units, source note) of everything that was measured."""

    device: dict[str, Any]
    date: str
    values: dict[str, tuple[Any, str]] = field(default_factory=dict)

    def set(self, path: str, value: Any, what: str) -> None:
        d = self.device
        self.values[path] = (value, f"measured on {d.get('name')} ({d.get('platform')}, driver "
                                    f"{d.get('driver')}) {self.date}: {what}")


def fit_microbench(mb: Microbench) -> Calibration:
    """Fit every profile field the microbenchmarks determine."""
    cal = Calibration(mb.device, mb.date)
    st = mb.settings
    if mb.storage:
        sf = fit_storage(mb.storage)
        how = f"reads of a file ({mb.storage_mode}) at queue depth 1 and {st['queue_depth']}"
        cal.set("storage.kind", f"local file read by the replay ({mb.storage_mode})", "")
        cal.set("storage.read_bandwidth", sf.read_bandwidth, f"{how}; {sf.note()}")
        cal.set("storage.request_latency", sf.request_latency, f"{how}; {sf.note()}")
        cal.set("storage.queue_depth", int(st["queue_depth"]), "replay reader threads (requests "
                "kept in flight)")
        cal.set("storage.max_request_size", int(st["request_size"]), "replay request size")
        cal.set("storage.max_iops", 0.0, "no IOPS cap: the request latency fit covers small reads")
    if mb.write_buffer:
        f = fit_latency_bandwidth([p["bytes"] for p in mb.write_buffer],
                                  [p["seconds"] for p in mb.write_buffer])
        what = f"clEnqueueWriteBuffer (profiling events) vs size; {f.note()}"
        cal.set("transfer.host_to_gpu_bandwidth", f.bandwidth, what)
        cal.set("transfer.host_to_gpu_latency", f.latency, what)
    cal.set("transfer.zero_copy", False, "replay copies every load (no host-pointer mapping)")
    if mb.transform:
        f = fit_bandwidth([p["bytes"] for p in mb.transform], [p["seconds"] for p in mb.transform])
        cal.set("transfer.transform_bandwidth", f.bandwidth,
                f"buffer->image2d_array kernel vs size; {f.note()}")
    pts = mb.compute.get("fp32", [])
    intercept = 0.0
    if pts:
        f = fit_latency_bandwidth([p["flops"] for p in pts], [p["seconds"] for p in pts])
        intercept = f.latency
        peak32 = max(mb.peak.get("fp32", 0.0), f.bandwidth)
        eff = min(1.0, f.bandwidth / peak32)
        cal.set("gpu.peak_flops.fp32", peak32, "best FP32 multiply-add kernel (8 chains)")
        cal.set("gpu.compute_efficiency", eff, f"FP32 proxy kernel rate / peak; {f.note()}")
        p16 = mb.compute.get("fp16")
        if p16:
            f16 = fit_latency_bandwidth([p["flops"] for p in p16], [p["seconds"] for p in p16])
            cal.set("gpu.peak_flops.fp16", max(mb.peak.get("fp16", 0.0), f16.bandwidth / eff),
                    f"FP16 (cl_khr_fp16) proxy kernel rate / efficiency; {f16.note()}")
        else:
            cal.set("gpu.peak_flops.fp16", peak32, "no cl_khr_fp16: fp16 ops run as FP32 proxy "
                    "kernels, so the FP32 rate applies")
        cal.set("gpu.peak_flops.int8", cal.values["gpu.peak_flops.fp16"][0],
                "int8 ops run as fp16/fp32 proxy kernels")
    reads = {k: getattr(mb, k) for k in ("read_buffer", "read_image2d", "read_image2d_array",
                                         "device_copy")}
    fits = {k: fit_latency_bandwidth([p["bytes"] for p in v], [p["seconds"] for p in v])
            for k, v in reads.items() if v}
    if "read_buffer" in fits:
        mem = max(f.bandwidth for f in fits.values())
        cal.set("gpu.memory_bandwidth", mem, "largest of kernel buffer/image reads and device "
                "copies (bytes read + written) vs size")
        cal.set("gpu.buffer_read_efficiency", min(1.0, fits["read_buffer"].bandwidth / mem),
                f"proxy kernel streaming a buffer / memory bandwidth; {fits['read_buffer'].note()}")
        img = [f for k, f in fits.items() if k.startswith("read_image")]
        if img:
            bw = float(np.mean([f.bandwidth for f in img]))
            cal.set("gpu.texture_read_efficiency", min(1.0, bw / mem),
                    f"proxy kernel reading image2d/image2d_array / memory bandwidth; "
                    f"{img[0].note()}")
    if mb.launch:
        lo = mb.launch["period_s"] + max(0.0, intercept - mb.launch["kernel_s"])
        cal.set("gpu.kernel_launch_overhead", lo,
                f"period of {int(mb.launch['count'])} back-to-back empty kernels "
                f"({mb.launch['period_s'] * 1e6:.1f} us) + proxy kernel fixed cost")
    d = mb.device
    cal.set("gpu.max_alloc", int(d["max_alloc"]), "CL_DEVICE_MAX_MEM_ALLOC_SIZE")
    cal.set("dram.capacity", int(d["global_mem"]), "CL_DEVICE_GLOBAL_MEM_SIZE (the memory "
            "the replayed weights live in)")
    cal.set("dram.app_memory", int(d["global_mem"]), "CL_DEVICE_GLOBAL_MEM_SIZE: one replay "
            "process may use all of it")
    if d.get("image_support"):
        cal.set("gpu.image2d_max_width", int(d["image2d_max_width"]), "CL_DEVICE_IMAGE2D_MAX_WIDTH")
        cal.set("gpu.image2d_max_height", int(d["image2d_max_height"]),
                "CL_DEVICE_IMAGE2D_MAX_HEIGHT")
        if d.get("image_max_array_size"):
            cal.set("gpu.image2d_array_max_layers", int(d["image_max_array_size"]),
                    "CL_DEVICE_IMAGE_MAX_ARRAY_SIZE")
    return cal


@dataclass(frozen=True)
class StageTime:
    """One measured interval with the idle gap before it: from the moment it could have started
    (its inputs done and its unit free) to its start. `dependent` says the gap followed the end
    of work on another unit (a host round trip / cross-queue event wait), not the unit's own
    previous item."""

    interval: Interval
    duration: float
    gap: float
    dependent: bool


def stage_times(s: Schedule, tr: Trace) -> list[StageTime]:
    """Every interval of a replay trace with its dispatch gap (see `StageTime`)."""
    steps = s.steps
    by_step: dict[int, dict[str, Interval]] = {}
    for iv in tr.intervals:
        by_step.setdefault(iv.step, {})[iv.resource] = iv
    done: dict[int, float] = {}
    for st in steps:
        ivs = by_step.get(st.id, {})
        if ivs:
            done[st.id] = max(i.end for i in ivs.values())
        else:
            done[st.id] = max([0.0] + [done.get(a, 0.0) for a in st.after])
    out: list[StageTime] = []
    last: dict[str, float] = {}
    for iv in sorted(tr.intervals, key=lambda i: (i.start, i.step)):
        st = steps[iv.step]
        if iv.resource == "storage":
            ready = max([0.0] + [done[a] for a in st.after])
        elif iv.resource == "copy":
            ready = by_step[iv.step]["storage"].end
        elif iv.resource == "transform":
            ready = by_step[iv.step]["copy"].end
        else:
            deps = [d for d in (*st.after, *getattr(st, "inputs", ()))
                    if not isinstance(steps[d], Compute)]
            ready = max([0.0] + [done[d] for d in deps])
        own = last.get(iv.resource, 0.0)
        last[iv.resource] = iv.end
        out.append(StageTime(iv, iv.end - iv.start, max(0.0, iv.start - max(ready, own)),
                             ready > own and ready > 0.0))
    return out


def sync_estimate(times: Sequence[StageTime]) -> float:
    """`gpu.sync_latency` as the median gap of the stages that waited for another unit."""
    gaps = [t.gap for t in times if t.dependent]
    return float(np.median(gaps)) if gaps else 0.0


def effective_times(times: Sequence[StageTime], sync: float = 0.0) -> list[tuple[Interval, float]]:
    """Each interval of one replay (`stage_times`) with its effective service time: its duration
    plus the dispatch gap the model does not hold elsewhere (a dependent stage's gap less
    `sync`). Gaps longer than the resource's median are taken as memory waits and capped."""
    own = [(t, max(0.0, t.gap - sync) if t.dependent else t.gap) for t in times]
    med = {r: float(np.median([g for t, g in own if t.interval.resource == r] or [0.0]))
           for r in ("storage", "copy", "transform", "gpu")}
    return [(t.interval, t.duration + min(g, med[t.interval.resource])) for t, g in own]


def busy_overlap(read: Interval, busy: Sequence[Interval]) -> float:
    """Seconds of `read` during which the compute unit ran one of `busy` (disjoint kernels)."""
    return sum(max(0.0, min(read.end, b.end) - max(read.start, b.start)) for b in busy)


def contention_estimate(reads: Sequence[tuple[float, float, float]]) -> float:
    """`storage.compute_contention` from reads that overlapped compute: each (measured seconds,
    seconds the storage model predicts alone, seconds of overlap) solved for k in
    `sim.engine.contended`; the median over reads at least 30% overlapped, at least 1."""
    ks = []
    for meas, alone, busy in reads:
        if meas <= 0 or busy < 0.3 * meas:
            continue
        if meas <= alone:
            ks.append(1.0)
        elif busy + alone - meas > 1e-12 and busy < meas:
            ks.append(busy / (busy + alone - meas))
        else:  # slowed over its whole length
            ks.append(meas / alone)
    return float(min(4.0, max(1.0, np.median(ks)))) if ks else 1.0


def refine(cal: Calibration, profile: HardwareProfile,
           runs: Sequence[tuple[Schedule, Trace]]) -> Calibration:
    """Refit stage models from the effective stage times measured while replaying calibration
    schedules (so dispatch gaps of the runtime land in the latency terms). Storage is fitted
    on the reads that ran while no kernel did; the slowdown of the others is
    `storage.compute_contention`."""
    reads, copies, transforms, gpu = [], [], [], []
    times = [stage_times(s, tr) for s, tr in runs]
    sync = sync_estimate([t for ts in times for t in ts])
    for (s, tr), ts in zip(runs, times, strict=True):
        steps = s.steps
        kernels = [i for i in tr.intervals if i.resource == "gpu"]
        loc = {t: st.dst for st in steps if isinstance(st, Load) for t in st.tensors}
        for iv, d in effective_times(ts, sync):
            if d <= 0:
                continue
            if iv.resource == "storage":
                reads.append({"size": profile.storage.max_request_size,
                              "qd": profile.storage.queue_depth, "total": iv.bytes, "seconds": d,
                              "busy": busy_overlap(iv, kernels)})
            elif iv.resource == "copy":
                copies.append((iv.bytes, d))
            elif iv.resource == "transform":
                transforms.append((iv.bytes, d))
            elif iv.resource == "gpu":
                gpu.append((steps[iv.step], d, s.tensor_bytes, loc, iv.end - iv.start))
    tag = f"refined on {len(runs)} calibration schedule replay(s), effective stage times"
    cal.set("gpu.sync_latency", sync, f"median idle gap between a stage's dependency ending on "
            f"another unit and the stage starting ({tag})")
    if len(reads) >= 3:
        quiet = [r for r in reads if r["busy"] < 0.1 * r["seconds"]]
        pts = quiet if len(quiet) >= 3 else reads
        step = max(1, len(pts) // 80)
        sf = fit_storage(pts[::step])
        what = f"{tag}, {len(pts)} weight-file reads made while no kernel ran; {sf.note()}"
        cal.set("storage.read_bandwidth", sf.read_bandwidth, what)
        cal.set("storage.request_latency", sf.request_latency, what)
        spec = replace(profile.storage, read_bandwidth=sf.read_bandwidth,
                       request_latency=sf.request_latency)
        over = [(r["seconds"], read_time(spec, r["total"]), r["busy"]) for r in reads]
        k = contention_estimate(over)
        n = sum(1 for m, _, b in over if b >= 0.3 * m)
        cal.set("storage.compute_contention", k,
                f"{tag}: median slowdown of the {n} weight-file reads at least 30% overlapped "
                f"by kernels, against the storage fit of the others (1: none seen)")
    if len(copies) >= 3:
        f = fit_latency_bandwidth(*zip(*copies, strict=True))
        cal.set("transfer.host_to_gpu_bandwidth", f.bandwidth, f"{tag}, copy events; {f.note()}")
        cal.set("transfer.host_to_gpu_latency", f.latency, f"{tag}, copy events; {f.note()}")
    if len(transforms) >= 3:
        f = fit_bandwidth(*zip(*transforms, strict=True))
        cal.set("transfer.transform_bandwidth", f.bandwidth, f"{tag}, transform kernels; {f.note()}")
    if len(gpu) >= 3:
        _refine_gpu(cal, profile, gpu, tag)
    return cal


# overlaps tried for gpu.compute_memory_overlap ('fraction': (0, 1], so the serial end is 0.001)
OVERLAPS = (0.001, *(round(0.05 * i, 2) for i in range(1, 21)))


def fit_overlap(gpu: list, p: HardwareProfile) -> tuple[float, float, float, float]:
    """`gpu.compute_memory_overlap` from the kernels' profiling-event durations. For each
    overlap on the grid, event ~ c + k x (max(t_flops, t_mem) + (1 - overlap) min(t_flops, t_mem))
    with t_flops, t_mem from the microbenchmarked rates; c (the proxy kernel's fixed cost) and k
    (how much slower kernels ran during the replays than in the microbenchmarks) are fitted by
    least squares on relative error and only the overlap is kept. Returns (overlap, c, k, RMS
    relative residual)."""
    from sim.hardware import HardwareModel

    ev = np.array([e for *_, e in gpu])
    keep = ev > 0
    ev = ev[keep]
    best = None
    for o in OVERLAPS:
        hw = HardwareModel(replace(p, gpu=replace(p.gpu, kernel_launch_overhead=0.0,
                                                  compute_memory_overlap=o)))
        base = np.array([hw.compute_time(st, tb, loc) for st, _, tb, loc, _ in gpu])[keep]
        a = np.stack([np.ones_like(base), base], axis=1) / ev[:, None]
        (c, k), *_ = np.linalg.lstsq(a, np.ones_like(ev), rcond=None)
        if c < 0:
            c, k = 0.0, float(np.sum(base / ev) / np.sum(np.square(base / ev)))
        res = float(np.sqrt(np.mean(np.square((c + k * base) / ev - 1))))
        if best is None or res < best[0] - 1e-12:
            best = (res, o, float(c), float(k))
    assert best is not None
    return best[1], best[2], best[3], best[0]


def _refine_gpu(cal: Calibration, p: HardwareProfile, gpu: list, tag: str) -> HardwareProfile:
    """Fit `gpu.compute_memory_overlap` from the kernels' event durations (`fit_overlap`), then
    the launch overhead (dispatch gap + fixed kernel cost) from effective kernel times; the
    rates and read efficiencies stay as the microbenchmarks measured them (the calibration
    kernels do not span enough of the roofline to refit them without extrapolating)."""
    from sim.hardware import HardwareModel

    overlap, fixed, scale, ores = fit_overlap(gpu, p)
    cal.set("gpu.compute_memory_overlap", overlap,
            f"profiling-event durations of {len(gpu)} proxy kernels ({tag}) against "
            f"max + (1 - overlap) x min of their microbenchmarked FLOP and weight-read times "
            f"(x {scale:.3g} replay slowdown + {fixed * 1e6:.1f} us fixed cost, both fitted "
            f"by linear least squares per grid point), overlap grid "
            f"{OVERLAPS[0]}..1 step 0.05; fit residual {ores:.1%} RMS")
    p = replace(p, gpu=replace(p.gpu, compute_memory_overlap=overlap))
    hw = HardwareModel(replace(p, gpu=replace(p.gpu, kernel_launch_overhead=0.0)))
    extra = [d - hw.compute_time(st, tb, loc) for st, d, tb, loc, _ in gpu]
    launch = max(0.0, float(np.median(extra)))
    pred = np.array([launch + g[1] - e for g, e in zip(gpu, extra, strict=True)])
    meas = np.array([g[1] for g in gpu])
    res = _rms_rel(pred, meas)
    cal.set("gpu.kernel_launch_overhead", launch,
            f"dispatch gap + fixed kernel cost: median of effective kernel time - roofline; "
            f"{tag}, {len(gpu)} proxy kernels; fit residual {res:.1%} RMS")
    return p


# per-step costs fitted end to end, and the multipliers the coordinate search tries
PER_STEP = ("storage.request_latency", "transfer.host_to_gpu_latency", "gpu.kernel_launch_overhead",
            "gpu.sync_latency", "gpu.compute_efficiency", "storage.compute_contention")
_FRACTIONS = {"gpu.compute_efficiency": 0.01, "gpu.compute_memory_overlap": OVERLAPS[0]}
# weight of the prior (squared log ratio to the measured value, per parameter) against the mean
# squared log error of the calibration latencies; time parameters are compared with 10 us added
PRIOR = 0.001
_TAU = {k: 1e-5 for k in PER_STEP[:4]}
_FLOORS = {"storage.compute_contention": 1.0}
_STEPS = (0.0, 0.25, 0.5, 0.7, 0.85, 0.95, 1.05, 1.2, 1.4, 2.0, 4.0)


def _with(profile: HardwareProfile, values: dict[str, Any]) -> HardwareProfile:
    """`profile` with some dotted fields replaced."""
    secs: dict[str, dict[str, Any]] = {}
    for path, v in values.items():
        sec, name = path.split(".", 1)
        secs.setdefault(sec, {})[name] = v
    return replace(profile, **{sec: replace(getattr(profile, sec), **kw)
                               for sec, kw in secs.items()})


def end_to_end_error(profile: HardwareProfile, runs: Sequence[tuple[Schedule, float]]) -> list[float]:
    """log(simulated / measured) end-to-end latency of each (schedule, measured seconds)."""
    from sim.engine import simulate

    return [math.log(simulate(s, profile, record_trace=False).metrics.latency_s / m)
            for s, m in runs]


def fit_per_step(cal: Calibration, profile: HardwareProfile,
                 runs: Sequence[tuple[Schedule, float]], shared: Sequence[bool] = (False, True),
                 prior: float = PRIOR) -> tuple[HardwareProfile, float]:
    """Fit the per-step costs (storage request latency, copy latency, kernel launch overhead)
    and whether copies/transforms share the compute unit, so the simulator reproduces the
    measured end-to-end latency of the calibration replays (least squares on log latency,
    coordinate search). Bandwidths and rates stay as measured. Returns the fitted profile and
    the RMS relative error left on the calibration set."""
    x0 = {k: float(get_path(profile, k)) for k in PER_STEP}

    def data_loss(p: HardwareProfile) -> float:
        return float(np.mean(np.square(end_to_end_error(p, runs))))

    def loss(p: HardwareProfile, x: dict[str, float]) -> float:
        # a log-normal prior around the directly measured values: per-step costs that trade
        # off against each other on the calibration set stay near what was measured
        pen = sum(math.log((x[k] + _TAU.get(k, 0.0)) / (x0[k] + _TAU.get(k, 0.0))) ** 2
                  for k in PER_STEP if x0[k] + _TAU.get(k, 0.0) > 0)
        return data_loss(p) + prior * pen

    best: tuple[float, HardwareProfile] | None = None
    for sh in shared:
        p = _with(profile, {"gpu.shared_with_transfers": sh})
        x = dict(x0)
        cur = loss(p, x)
        for _ in range(25):
            improved = False
            for k in PER_STEP:
                for m in _STEPS:
                    y = dict(x)
                    y[k] = x[k] * m if x[k] > 0 else (1e-5 * m)
                    if k in _FRACTIONS:  # a fraction of the measured peak / of the overlap
                        y[k] = min(1.0, max(_FRACTIONS[k], y[k]))
                    if k in _FLOORS:
                        y[k] = max(_FLOORS[k], y[k])
                    if y[k] == x[k]:
                        continue
                    e = loss(_with(p, y), y)
                    if e < cur - 1e-12:
                        cur, x, improved = e, y, True
            if not improved:
                break
        p = _with(p, x)
        if best is None or cur < best[0]:
            best = (cur, p)
    assert best is not None
    _, fitted = best
    res = math.sqrt(data_loss(fitted))
    note = (f"fitted so the simulator reproduces the end-to-end latency of {len(runs)} "
            f"calibration replays (medians; coordinate search on log latency); residual "
            f"{res:.1%} RMS")
    for k in PER_STEP:
        prev = cal.values.get(k, (None, ""))[1]
        prev = prev.split(": ", 1)[1] if ": " in prev else prev
        unit = " s" if k in _TAU else ""  # times; efficiency and contention have no unit
        cal.set(k, float(get_path(fitted, k)), f"{note}; started from {get_path(profile, k):.4g}{unit} "
                f"({prev[:120]})")
    sh = fitted.gpu.shared_with_transfers
    cal.set("gpu.shared_with_transfers", sh,
            f"{note}; copies/transforms {'sharing' if sh else 'not sharing'} the compute unit "
            f"fitted the calibration set better")
    return fitted, res


def profile_data(cal: Calibration, base: HardwareProfile, name: str) -> dict[str, Any]:
    """A complete profile mapping: measured fields from `cal`, the rest copied from `base`."""
    data: dict[str, Any] = {
        "name": name,
        "description": f"{cal.device.get('name')} via OpenCL ({cal.device.get('platform')}, "
                       f"driver {cal.device.get('driver')}), calibrated {cal.date} by "
                       f"`weightstream validate calibrate` from base profile {base.name}",
    }
    for path, kind in FIELDS.items():
        if path.startswith("energy."):
            continue  # energy is not measured; leave it out rather than copy a phone's figures
        if path in cal.values:
            value, src = cal.values[path]
        elif path.startswith("os.") and path not in base.sources:
            continue  # an OS figure the base leaves at its default stays so
        else:
            value = get_path(base, path)
            if value is None:
                continue
            s = base.sources.get(path)
            src = f"from base profile {base.name} (not measured): " + (s.label() if s else "")
        if path == "gpu.name":
            value = cal.device.get("name", value)
        node = data
        parts = path.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        k = kind.rstrip("?")
        if k == "text":
            node[parts[-1]] = str(value)
        else:
            node[parts[-1]] = {"value": _fmt(k, value), "source": src}
    data.setdefault("dram", {})
    return data


def write_profile(data: dict[str, Any], path: str | Path) -> None:
    """Write a calibrated profile YAML and check it with `hwprofiles.check_file`."""
    path = Path(path)
    text = yaml.safe_dump(data, sort_keys=False, width=100, allow_unicode=True)
    path.write_text("# written by `weightstream validate calibrate`; every measured field's source\n"
                    "# names the device, driver, date and fit residual\n" + text)
    problems = check_file(str(path))
    if problems:
        raise ValidateError(f"calibrated profile {path} fails its check: " + "; ".join(problems))


def to_profile(data: dict[str, Any]) -> HardwareProfile:
    """Load a profile mapping through the regular loader (so it is checked the same way)."""
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "calibrated.yaml"
        p.write_text(yaml.safe_dump(data, sort_keys=False))
        return load_profile(str(p))


def storage_prediction(profile: HardwareProfile, nbytes: int) -> float:
    """Seconds the profile predicts for one replay read (for reports)."""
    s = profile.storage
    return read_time(StorageSpec(s.kind, s.read_bandwidth, s.request_latency, s.queue_depth,
                                 s.max_request_size, s.max_iops), nbytes)
