"""Fit a HardwareProfile to one device: microbenchmarks first, then (optionally) every stage on
its own from the per-op times measured while replaying a calibration set of schedules
(`validate.stagefit`); write a calibrated YAML whose every measured field says what was
measured, on which device, when, and its fit and check errors."""

from __future__ import annotations

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
from sim.schedule import Schedule
from validate.errors import ValidateError
from validate.fit import fit_latency_bandwidth, fit_storage
from validate.microbench import Microbench
from validate.replay import ReplayResult
from validate.stagefit import StageResult, fit_all
from validate.stages import stage_ops

# what the replays are run by: the hops it makes are its host thread's work, one at a time
SERIAL_NOTE = ("the replay driver (validate/replay.py) is one host thread that dispatches every "
               "read, copy, transform, kernel and free: hops that fall due together wait their turn")
# the calibrated profiles' request size: a replay read is one round of at most queue_depth parts
REPLAY_REQUEST = 1 << 30


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
    if mb.reads or mb.storage:
        cal.set("storage.kind", f"local file read by the replay ({mb.storage_mode})", "")
        cal.set("storage.queue_depth", int(st["queue_depth"]), "replay reader threads (parts of "
                "a load read at once)")
        cal.set("storage.max_request_size", REPLAY_REQUEST, "the replay reads a load in at most "
                "queue_depth parts at once (one round of requests: latency + bytes / bandwidth)")
        cal.set("storage.max_iops", 0.0, "no IOPS cap: the request latency fit covers small reads")
    if mb.reads:
        f = fit_latency_bandwidth([p["bytes"] for p in mb.reads], [p["seconds"] for p in mb.reads])
        how = f"whole reads of a file ({mb.storage_mode}) as the replay makes them, vs size"
        cal.set("storage.read_bandwidth", f.bandwidth, f"{how}; {f.note()}")
        cal.set("storage.request_latency", f.latency, f"{how}; {f.note()}")
    elif mb.storage:  # older microbenchmark files: requests by size and queue depth only
        sf = fit_storage(mb.storage)
        how = f"reads of a file ({mb.storage_mode}) at queue depth 1 and {st['queue_depth']}"
        cal.set("storage.read_bandwidth", sf.read_bandwidth, f"{how}; {sf.note()}")
        cal.set("storage.request_latency", sf.request_latency, f"{how}; {sf.note()}")
    if mb.write_buffer:
        f = fit_latency_bandwidth([p["bytes"] for p in mb.write_buffer],
                                  [p["seconds"] for p in mb.write_buffer])
        what = f"clEnqueueWriteBuffer (profiling events) vs size; {f.note()}"
        cal.set("transfer.host_to_gpu_bandwidth", f.bandwidth, what)
        cal.set("transfer.host_to_gpu_latency", f.latency, what)
    cal.set("transfer.zero_copy", False, "replay copies every load (no host-pointer mapping)")
    if mb.transform:
        f = fit_latency_bandwidth([p["bytes"] for p in mb.transform],
                                  [p["seconds"] for p in mb.transform])
        cal.set("transfer.transform_bandwidth", f.bandwidth,
                f"buffer->image2d_array kernel vs size; {f.note()}")
        cal.set("transfer.transform_latency", f.latency,
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


def refine_stages(cal: Calibration, profile: HardwareProfile,
                  runs: Sequence[tuple[Schedule, ReplayResult]], mb: Microbench | None = None
                  ) -> list[StageResult]:
    """Fit every stage on its own from the per-op times of calibration replays (see
    `validate.stagefit`); each fitted field's source gives its fit and check errors."""
    ops = [(s, stage_ops(s, r.trace, r.marks)) for s, r in runs]
    reads = [(p["bytes"], p["seconds"]) for p in (mb.reads if mb else [])]
    cal.set("gpu.sync_serial", True, SERIAL_NOTE)
    results = fit_all(ops, replace(profile, gpu=replace(profile.gpu, sync_serial=True)), reads)
    tag = f"per-op fit on {len(runs)} calibration replay(s)"
    for r in results:
        for path, value in r.values.items():
            cal.set(path, value, f"{tag}, {r.stage}: {r.note()}")
    hops = [r for r in results if r.stage.startswith("hop ")]
    if hops:
        gaps = [float(np.mean([r.values[k] for k in r.values])) for r in hops]
        cal.set("gpu.sync_latency", float(np.mean(gaps)),
                f"{tag}: mean of the per-hop latencies (gpu.sync_<hop>), for tools that use one")
    return results


def end_to_end(profile: HardwareProfile, runs: Sequence[tuple[Schedule, float]]
               ) -> list[tuple[str, float, float]]:
    """(case, simulated s, measured s) of each (schedule, measured median) under `profile`."""
    from sim.engine import simulate

    return [(s.meta.get("case", s.workload), simulate(s, profile, record_trace=False)
             .metrics.latency_s, m) for s, m in runs]


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
    path.parent.mkdir(parents=True, exist_ok=True)
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
