"""Durations of every hardware activity, computed from a HardwareProfile.

- storage read of B contiguous bytes: `hwprofiles.storage.read_time` (request latency, queue
  depth, bandwidth, IOPS cap); with a runtime whose reader keeps more than one read in
  flight, `hidden_read_latency` of it overlaps the transfer of the read ahead (the engine);
- host->GPU copy: latency + B / copy bandwidth;
- buffer->texture transform: transform latency + B / transform bandwidth;
- compute (roofline): launch overhead + max(t_flops, t_mem) + (1 - overlap) x min(t_flops, t_mem)
  with t_flops = FLOPs / (peak[compute dtype of the op's weight format] x efficiency), t_mem = weight bytes / (DRAM bandwidth x
  texture-or-buffer read efficiency) + activation bytes / DRAM bandwidth, and overlap =
  `gpu.compute_memory_overlap` (1, the default: the plain roofline max; near 0: the sum, as on
  a CPU kernel that reads its weights and then computes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from hwprofiles.runtime import RuntimeProfile
from hwprofiles.schema import HardwareProfile
from hwprofiles.storage import read_time
from sim.lowering import kind_class
from sim.schedule import Compute
from workloads.formats import compute_dtype, runtime_keys

IDEAL = RuntimeProfile("ideal")


@dataclass(frozen=True)
class HardwareModel:
    """Pure duration functions for one profile run by one runtime (default: none on top)."""

    profile: HardwareProfile
    runtime: RuntimeProfile = IDEAL

    def read_time(self, nbytes: int, request_size: int | None = None) -> float:
        """A read of `nbytes` (in pieces of `request_size`: scattered rows; None = contiguous,
        split at the storage's largest request)."""
        return read_time(self.profile.storage, nbytes, request_size=request_size)

    @property
    def hidden_read_latency(self) -> float:
        """Seconds of a read's time that may overlap the transfer of the read before it: the
        first request's latency, when the runtime's reader keeps more than one read submitted
        (the device queue then never drains between reads); 0 for a one-at-a-time reader."""
        if self.runtime.reads_in_flight <= 1:
            return 0.0
        return self.profile.storage.request_latency

    def fault_time(self, nbytes: int) -> float:
        """Faulting `nbytes` of evicted mmap'd pages back: readahead-sized requests, as many in
        flight as the runtime's faulting threads."""
        return read_time(self.profile.storage, nbytes, self.runtime.fault_queue_depth,
                         self.profile.os.readahead)

    def file_bytes(self, nbytes: int, path: str) -> int:
        """Bytes read from flash for `nbytes` in memory: the runtime's file format may differ
        (e.g. fp32 files run in fp16); pre-laid-out `direct` data is stored as it runs."""
        scale = self.runtime.file_scale
        return nbytes if path == "direct" or scale == 1.0 else int(round(nbytes * scale))

    def parse_time(self, file_bytes: int, ntensors: int) -> float:
        """Host-side deserialisation of a `via_buffer` load (0 for the ideal runtime)."""
        rt = self.runtime
        t = rt.per_tensor * ntensors
        if rt.parse_bandwidth:
            t += file_bytes / rt.parse_bandwidth
        return t

    @property
    def transform_on_host(self) -> bool:
        return self.runtime.transform == "cpu"

    def copy_time(self, nbytes: int, dst: str = "buffer") -> float:
        """A host->GPU copy of `nbytes` into a buffer, or straight into an image (`dst`
        'texture': the profile's texture-copy line where it states one)."""
        t = self.profile.transfer
        if nbytes <= 0:
            return 0.0
        if dst == "texture" and t.host_to_texture_bandwidth is not None:
            lat = t.host_to_gpu_latency if t.host_to_texture_latency is None \
                else t.host_to_texture_latency
            return lat + nbytes / t.host_to_texture_bandwidth
        return t.host_to_gpu_latency + nbytes / t.host_to_gpu_bandwidth

    def transform_time(self, nbytes: int) -> float:
        """Buffer->texture conversion: a kernel's fixed cost + bytes / bandwidth on the GPU (the
        profile's transform unit, or the runtime's own kernel); bytes / bandwidth on the host."""
        if nbytes <= 0:
            return 0.0
        where = self.runtime.transform
        bw = self.runtime.transform_bandwidth if where != "hardware" else None
        fixed = self.profile.transfer.transform_latency if where != "cpu" else 0.0
        return fixed + nbytes / (bw or self.profile.transfer.transform_bandwidth)

    def weight_read_bandwidth(self, location: str) -> float:
        g = self.profile.gpu
        eff = g.texture_read_efficiency if location == "texture" else g.buffer_read_efficiency
        return g.memory_bandwidth * eff

    def compute_time(self, step: Compute, tensor_bytes: Mapping[str, int],
                     location: Mapping[str, str]) -> float:
        """Roofline time of one op; `location` maps each weight to 'texture' or 'buffer'.
        The runtime scales the roofline by its efficiency for the op's class and dtype (a weight
        format's family first, then its bit-width dtype: `Format.runtime_keys`) and adds its
        dispatch cost."""
        g = self.profile.gpu
        t_flops = step.flops / (g.flops_for(compute_dtype(step.dtype)) * g.compute_efficiency)
        t_mem = (step.input_bytes + step.output_bytes) / g.memory_bandwidth
        for t in step.weights:
            t_mem += tensor_bytes[t] / self.weight_read_bandwidth(location.get(t, "buffer"))
        rt = self.runtime
        eff = rt.efficiency_for(step.op_class or kind_class(step.kind), *runtime_keys(step.dtype))
        t = (g.kernel_launch_overhead + max(t_flops, t_mem) / eff
             + (1.0 - g.compute_memory_overlap) * min(t_flops, t_mem) / eff)
        return t + rt.dispatch if rt.dispatch else t

    def load_stages(self, nbytes: int, path: str, dst: str, ntensors: int = 1,
                    read_bytes: int | None = None, request_size: int | None = None
                    ) -> dict[str, float]:
        """Durations of a load's stages (read, parse, copy, transform) for a path and
        destination; `via_buffer` loads read the runtime's file format and parse it on the host,
        `staged` loads copy to the GPU even where it could map host memory; `read_bytes`, where
        given, is what the read takes from flash (whole O_DIRECT sectors); a load of scattered
        pieces (gathered rows) reads them `request_size` bytes at a time."""
        zero_copy = self.profile.transfer.zero_copy
        file_bytes = self.file_bytes(nbytes, path) if read_bytes is None else read_bytes
        stages = {"read": self.read_time(file_bytes, request_size), "parse": 0.0, "copy": 0.0,
                  "transform": 0.0}
        if path == "via_buffer":
            stages["parse"] = self.parse_time(file_bytes, ntensors)
        if not zero_copy or path == "staged":
            # a direct load is copied into its final object; via_buffer / staged into a buffer
            stages["copy"] = self.copy_time(nbytes, dst if path == "direct" else "buffer")
        if path == "via_buffer" and dst == "texture":
            stages["transform"] = self.transform_time(nbytes)
        return stages


def unstated_formats(runtime: RuntimeProfile, steps: Iterable[Compute]) -> list[str]:
    """Quantized weight formats whose kernels `runtime` gives per-dtype figures for other
    dtypes of the same op class but none for the format (its family or bit-width dtype): they
    run at the class efficiency alone, which the run's metadata then says."""
    out: dict[str, None] = {}
    for step in steps:
        cls = step.op_class or kind_class(step.kind)
        keys = runtime_keys(step.dtype)
        if keys[0] in ("fp32", "fp16", "int8", "int4"):
            continue  # float and integer formats: the runtime's own dtype rules
        states_others = bool(runtime.dtype_efficiency) or any(
            k.startswith(f"{cls}.") for k in runtime.kernel_efficiency)
        if states_others and not runtime.states_dtype(cls, *keys):
            out[f"{step.dtype} ({cls})"] = None
    return list(out)
