"""Durations of every hardware activity, computed from a HardwareProfile.

- storage read of B contiguous bytes: `hwprofiles.storage.read_time` (request latency, queue
  depth, bandwidth, IOPS cap);
- host->GPU copy: latency + B / copy bandwidth;
- buffer->texture transform: B / transform bandwidth;
- compute (roofline): launch overhead + max(t_flops, t_mem) + (1 - overlap) x min(t_flops, t_mem)
  with t_flops = FLOPs / (peak[compute dtype of the op's weight format] x efficiency), t_mem = weight bytes / (DRAM bandwidth x
  texture-or-buffer read efficiency) + activation bytes / DRAM bandwidth, and overlap =
  `gpu.compute_memory_overlap` (1, the default: the plain roofline max; near 0: the sum, as on
  a CPU kernel that reads its weights and then computes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hwprofiles.schema import HardwareProfile
from hwprofiles.storage import read_time
from sim.schedule import Compute
from workloads.formats import compute_dtype


@dataclass(frozen=True)
class HardwareModel:
    """Pure duration functions for one profile."""

    profile: HardwareProfile

    def read_time(self, nbytes: int) -> float:
        return read_time(self.profile.storage, nbytes)

    def copy_time(self, nbytes: int) -> float:
        t = self.profile.transfer
        return t.host_to_gpu_latency + nbytes / t.host_to_gpu_bandwidth if nbytes > 0 else 0.0

    def transform_time(self, nbytes: int) -> float:
        return nbytes / self.profile.transfer.transform_bandwidth if nbytes > 0 else 0.0

    def weight_read_bandwidth(self, location: str) -> float:
        g = self.profile.gpu
        eff = g.texture_read_efficiency if location == "texture" else g.buffer_read_efficiency
        return g.memory_bandwidth * eff

    def compute_time(self, step: Compute, tensor_bytes: Mapping[str, int],
                     location: Mapping[str, str]) -> float:
        """Roofline time of one op; `location` maps each weight to 'texture' or 'buffer'."""
        g = self.profile.gpu
        t_flops = step.flops / (g.flops_for(compute_dtype(step.dtype)) * g.compute_efficiency)
        t_mem = (step.input_bytes + step.output_bytes) / g.memory_bandwidth
        for t in step.weights:
            t_mem += tensor_bytes[t] / self.weight_read_bandwidth(location.get(t, "buffer"))
        return (g.kernel_launch_overhead + max(t_flops, t_mem)
                + (1.0 - g.compute_memory_overlap) * min(t_flops, t_mem))

    def load_stages(self, nbytes: int, path: str, dst: str) -> dict[str, float]:
        """Durations of a load's stages (read, copy, transform) for a path and destination."""
        zero_copy = self.profile.transfer.zero_copy
        stages = {"read": self.read_time(nbytes), "copy": 0.0, "transform": 0.0}
        if not zero_copy:
            stages["copy"] = self.copy_time(nbytes)
        if path == "via_buffer" and dst == "texture":
            stages["transform"] = self.transform_time(nbytes)
        return stages
