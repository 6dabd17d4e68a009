"""Fit a HardwareProfile to one device: microbenchmarks first, then (optionally) the stage
durations measured while replaying a calibration set of schedules; write a calibrated YAML
whose every measured field says what was measured, on which device, when, and the residual."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from hwprofiles import check_file, load_profile
from hwprofiles.schema import FIELDS, HardwareProfile, StorageSpec, get_path
from hwprofiles.storage import read_time
from sim.schedule import Load, Schedule
from sim.trace import Interval, Trace
from validate.errors import ValidateError
from validate.fit import fit_bandwidth, fit_latency_bandwidth, fit_storage
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
    if kind in ("fraction", "number"):
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


def effective_times(s: Schedule, tr: Trace) -> list[tuple[Interval, float]]:
    """Each interval with its effective service time: its duration plus the dispatch gap since
    it could have started (its stage inputs done and its resource free). Gaps longer than the
    resource's median gap are taken as memory waits and capped at the median."""
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
    raw: list[tuple[Interval, float, float]] = []
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
            deps = (*st.after, *getattr(st, "inputs", ()))
            ready = max([0.0] + [done[d] for d in deps])
        ready = max(ready, last.get(iv.resource, 0.0))
        last[iv.resource] = iv.end
        raw.append((iv, iv.end - iv.start, max(0.0, iv.start - ready)))
    med = {r: float(np.median([g for i, _, g in raw if i.resource == r] or [0.0]))
           for r in ("storage", "copy", "transform", "gpu")}
    return [(iv, d + min(g, med[iv.resource])) for iv, d, g in raw]


def refine(cal: Calibration, profile: HardwareProfile,
           runs: Sequence[tuple[Schedule, Trace]]) -> Calibration:
    """Refit stage models from the effective stage times measured while replaying calibration
    schedules (so dispatch gaps of the runtime land in the latency terms)."""
    reads, copies, transforms, gpu = [], [], [], []
    for s, tr in runs:
        steps = s.steps
        loc = {t: st.dst for st in steps if isinstance(st, Load) for t in st.tensors}
        for iv, d in effective_times(s, tr):
            if d <= 0:
                continue
            if iv.resource == "storage":
                reads.append({"size": profile.storage.max_request_size,
                              "qd": profile.storage.queue_depth, "total": iv.bytes, "seconds": d})
            elif iv.resource == "copy":
                copies.append((iv.bytes, d))
            elif iv.resource == "transform":
                transforms.append((iv.bytes, d))
            elif iv.resource == "gpu":
                gpu.append((steps[iv.step], d, s.tensor_bytes, loc))
    tag = f"refined on {len(runs)} calibration schedule replay(s), effective stage times"
    if len(reads) >= 3:
        step = max(1, len(reads) // 80)
        sf = fit_storage(reads[::step])
        cal.set("storage.read_bandwidth", sf.read_bandwidth, f"{tag}, weight-file reads; {sf.note()}")
        cal.set("storage.request_latency", sf.request_latency,
                f"{tag}, weight-file reads; {sf.note()}")
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


def _refine_gpu(cal: Calibration, p: HardwareProfile, gpu: list, tag: str) -> None:
    """Refit launch overhead, compute rate and weight-read efficiencies from kernel times."""
    g = p.gpu
    launch = g.kernel_launch_overhead
    rate = g.flops_for("fp16") * g.compute_efficiency
    tex_bw = g.memory_bandwidth * g.texture_read_efficiency
    buf_bw = g.memory_bandwidth * g.buffer_read_efficiency
    mem_bw = g.memory_bandwidth
    rows = []
    for st, d, tb, loc in gpu:
        wt = sum(tb[t] for t in st.weights if loc.get(t) == "texture")
        wb = sum(tb[t] for t in st.weights if loc.get(t) != "texture")
        rows.append((st.flops, wt, wb, st.input_bytes + st.output_bytes, d))

    meas = np.array([r[4] for r in rows])

    def loss(x: list[float]) -> float:
        la, ra, tb, bb = x
        pred = np.array([la + max(f / ra, wt / tb + wb / bb + act / mem_bw)
                         for f, wt, wb, act, _ in rows])
        return float(np.mean(((pred - meas) / meas) ** 2))

    # least squares on the roofline form itself: coordinate search in log space
    x = [launch, rate, tex_bw, buf_bw]
    best = loss(x)
    for _ in range(60):
        improved = False
        for k in range(4):
            for m in (0.25, 0.5, 0.7, 0.85, 0.95, 1.05, 1.2, 1.4, 2.0, 4.0):
                y = list(x)
                y[k] = y[k] * m if y[k] > 0 else 1e-6
                e = loss(y)
                if e < best:
                    best, x, improved = e, y, True
        if not improved:
            break
    launch, rate, tex_bw, buf_bw = x
    res = float(np.sqrt(best))
    note = f"{tag}, {len(rows)} proxy kernels; fit residual {res:.1%} RMS"
    peak16 = g.flops_for("fp16")
    eff = rate / peak16
    if eff > 1:
        peak16, eff = rate, 1.0
        cal.set("gpu.peak_flops.fp16", peak16, f"{tag}: proxy kernels beat the microbenchmark peak")
    cal.set("gpu.compute_efficiency", eff, f"fp16-op proxy kernel rate / peak; {note}")
    cal.set("gpu.kernel_launch_overhead", launch, f"dispatch gap + fixed kernel cost; {note}")
    mem = max(mem_bw, tex_bw, buf_bw)
    cal.set("gpu.memory_bandwidth", mem, "largest of kernel reads and device copies")
    cal.set("gpu.texture_read_efficiency", min(1.0, tex_bw / mem),
            f"image-reading proxy kernels; {note}")
    cal.set("gpu.buffer_read_efficiency", min(1.0, buf_bw / mem),
            f"buffer-reading proxy kernels; {note}")


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
