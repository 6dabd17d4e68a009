"""The HardwareProfile data model: every figure the simulator uses, in SI units, with its source.

A profile is plain data. The field table `FIELDS` is the single description of the schema:
the loader parses and checks YAML against it, `profiles show` prints it, `--set` overrides
address it by the same dotted paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DTYPES = ("fp32", "fp16", "int8", "int4", "fp8")


@dataclass(frozen=True)
class Source:
    """Where a number comes from: a citation, a measurement, or an estimate with its reasoning."""

    text: str
    estimate: bool = False

    def label(self) -> str:
        return f"(estimate) {self.text}" if self.estimate else self.text


@dataclass(frozen=True)
class StorageSpec:
    """Flash storage: a request costs `request_latency` + bytes / `read_bandwidth`; up to
    `queue_depth` requests of at most `max_request_size` bytes are kept in flight."""

    kind: str
    read_bandwidth: float  # bytes/s, peak sequential
    request_latency: float  # s, per request at queue depth 1
    queue_depth: int
    max_request_size: int  # bytes, one request's size; larger reads are split
    max_iops: float = 0.0  # requests/s the device can serve at most (0 = no cap)
    # reads progress this many times slower while the compute unit is busy (a CPU device's
    # cores, or DRAM bandwidth, shared between I/O and compute); 1 = independent
    compute_contention: float = 1.0


@dataclass(frozen=True)
class DramSpec:
    """Main memory shared by CPU and GPU."""

    kind: str
    capacity: int  # bytes
    bandwidth: float  # bytes/s peak
    app_memory: int  # bytes one app may use before the low-memory killer acts


@dataclass(frozen=True)
class GpuSpec:
    """GPU throughput, memory behaviour and the OpenCL limits that change schedules."""

    name: str
    peak_flops: dict[str, float]  # dtype -> FLOP/s (int8/int4 as OP/s)
    compute_efficiency: float  # fraction of peak a real kernel reaches
    memory_bandwidth: float  # bytes/s the GPU can read from DRAM
    texture_read_efficiency: float  # fraction of memory_bandwidth reading weights from images
    buffer_read_efficiency: float  # fraction of memory_bandwidth reading weights from buffers
    image2d_max_width: int
    image2d_max_height: int
    image2d_array_max_layers: int
    max_alloc: int  # bytes, largest single allocation
    kernel_launch_overhead: float  # s
    prefers_texture: bool  # frameworks on this GPU keep weights in textures
    # copies and transforms run on the same execution unit as kernels (a CPU OpenCL device):
    # one FIFO server for all three instead of separate copy/transform units
    shared_with_transfers: bool = False
    # how far a kernel's weight/activation streaming overlaps its arithmetic: 1 = perfectly
    # (roofline max), towards 0 = serially (a CPU kernel reads, then computes: the sum)
    compute_memory_overlap: float = 1.0
    # from an operation ending on one unit to a step that waits for it starting on another
    # (event signalling + the runtime's host round trip); 0 = dependent work starts at once
    sync_latency: float = 0.0
    # the same per hop, where measured apart (None: `sync_latency`, and a read that waited for
    # a free starts at once): into a read (after the free, kernel or load it waited for, or the
    # start), a copy (after its read), a transform (after its copy), a kernel (after its load),
    # a free (after its kernels)
    sync_read: float | None = None
    sync_copy: float | None = None
    sync_transform: float | None = None
    sync_kernel: float | None = None
    sync_free: float | None = None
    # the host issues kernels in order, one per this interval, ahead of the GPU (a kernel waits
    # on its inputs' events, not for them to end): a kernel starts no earlier than its issue,
    # so launches hide behind longer work before them; 0 = no host limit (the launch overhead,
    # held in every kernel, is the whole per-kernel cost)
    kernel_issue_interval: float = 0.0
    # the sync hops are host work done by one driver thread: each hop occupies it for its
    # latency, one at a time in order of arrival, so hops that fall due together queue (a
    # runtime whose single thread both dispatches reads and issues kernels); False = every hop
    # is a delay of its own
    sync_serial: bool = False

    def hop(self, name: str) -> float:
        """Sync latency of hop `name` ('read', 'copy', 'transform', 'kernel', 'free')."""
        v = getattr(self, f"sync_{name}")
        return self.sync_latency if v is None else v

    def flops_for(self, dtype: str) -> float:
        """Peak rate for a compute dtype; int4 runs at the int8 rate, else fp16 (so does fp8
        where the GPU has no fp8 rate), if not given."""
        for d in (dtype, "int8" if dtype == "int4" else dtype, "fp16", "fp32"):
            if d in self.peak_flops:
                return self.peak_flops[d]
        raise KeyError(dtype)


@dataclass(frozen=True)
class TransferSpec:
    """Host->GPU copies and buffer->texture layout transforms."""

    host_to_gpu_bandwidth: float  # bytes/s
    host_to_gpu_latency: float  # s per copy
    transform_bandwidth: float  # bytes/s of buffer->texture conversion
    zero_copy: bool  # a host buffer can be mapped by the GPU without a copy
    transform_latency: float = 0.0  # s per transform (a conversion kernel's fixed cost)
    # a copy written straight into an image (host -> texture: the driver lays the texels out as
    # it writes) where it costs more than one into a buffer; None = as a buffer copy
    host_to_texture_latency: float | None = None  # s per copy
    host_to_texture_bandwidth: float | None = None  # bytes/s


@dataclass(frozen=True)
class OsSpec:
    """What the operating system does with an app's memory (optional; defaults are Linux's).

    Past `memory_limit()` the low-memory killer ends an app whose memory is anonymous, while
    clean file-backed (mmap'd) pages are evicted and faulted back `readahead` bytes at a time."""

    page_size: int = 4096  # bytes
    readahead: int = 128 * 1024  # bytes one major fault reads (read_ahead_kb)
    reserved_memory: int = 0  # bytes other apps and the OS keep, beyond dram.app_memory's limit


@dataclass(frozen=True)
class EnergySpec:
    """Optional energy figures, joules per byte or per FLOP."""

    storage_read_per_byte: float
    dram_per_byte: float
    gpu_per_flop: float


@dataclass(frozen=True)
class HardwareProfile:
    """One platform: storage, DRAM, GPU, transfer paths, optional energy; `sources` maps each
    dotted field path to where its number comes from."""

    name: str
    description: str
    storage: StorageSpec
    dram: DramSpec
    gpu: GpuSpec
    transfer: TransferSpec
    energy: EnergySpec | None = None
    sources: dict[str, Source] = field(default_factory=dict, compare=False)
    extends: str | None = None
    os: OsSpec = field(default_factory=OsSpec)

    def memory_limit(self) -> int:
        """Bytes one app can hold before the OS acts: the app limit, or less where other apps'
        reserve leaves less of physical memory."""
        return min(self.dram.app_memory, self.dram.capacity - self.os.reserved_memory)

    def storage_read_time(self, nbytes: int) -> float:
        """Seconds to read `nbytes` contiguous bytes (see `hwprofiles.storage.read_time`)."""
        from hwprofiles.storage import read_time

        return read_time(self.storage, nbytes)

    def to_dict(self) -> dict[str, Any]:
        """Flat {dotted path: value} view of every field, for tables and results rows."""
        out: dict[str, Any] = {}
        for path in FIELDS:
            out[path] = get_path(self, path)
        if not out["gpu.shared_with_transfers"]:
            del out["gpu.shared_with_transfers"]  # at its default: keeps earlier digests stable
        if out["gpu.compute_memory_overlap"] == 1.0:
            del out["gpu.compute_memory_overlap"]  # likewise
        if out["gpu.sync_latency"] == 0.0:
            del out["gpu.sync_latency"]  # likewise
        if out["gpu.kernel_issue_interval"] == 0.0:
            del out["gpu.kernel_issue_interval"]  # likewise
        if not out["gpu.sync_serial"]:
            del out["gpu.sync_serial"]  # likewise
        if out["storage.compute_contention"] == 1.0:
            del out["storage.compute_contention"]  # likewise
        if out["gpu.peak_flops.fp8"] is None:
            del out["gpu.peak_flops.fp8"]  # likewise
        for path in HOP_FIELDS:
            if out[path] is None:
                del out[path]  # likewise
        if out["transfer.transform_latency"] == 0.0:
            del out["transfer.transform_latency"]  # likewise
        for path in ("transfer.host_to_texture_latency", "transfer.host_to_texture_bandwidth"):
            if out[path] is None:
                del out[path]  # likewise
        for path in OS_FIELDS:
            if out[path] == getattr(OsSpec(), path.split(".")[1]):
                del out[path]  # likewise
        return out


def get_path(profile: HardwareProfile, path: str) -> Any:
    """Value at a dotted path such as 'gpu.peak_flops.fp16' (None where an optional part is absent)."""
    obj: Any = profile
    for part in path.split("."):
        if obj is None:
            return None
        obj = obj.get(part) if isinstance(obj, dict) else getattr(obj, part)
    return obj


# kind of each field: the unit family it is parsed with. Order = display order.
# 'text' fields need no source; every other field needs `source` or `estimate`.
FIELDS: dict[str, str] = {
    "storage.kind": "text",
    "storage.read_bandwidth": "bandwidth",
    "storage.request_latency": "time",
    "storage.queue_depth": "count",
    "storage.max_request_size": "bytes",
    "storage.max_iops": "number?",
    "storage.compute_contention": "factor?",
    "dram.kind": "text",
    "dram.capacity": "bytes",
    "dram.bandwidth": "bandwidth",
    "dram.app_memory": "bytes",
    "gpu.name": "text",
    "gpu.peak_flops.fp32": "rate",
    "gpu.peak_flops.fp16": "rate",
    "gpu.peak_flops.int8": "rate?",
    "gpu.peak_flops.int4": "rate?",
    "gpu.peak_flops.fp8": "rate?",
    "gpu.compute_efficiency": "fraction",
    "gpu.memory_bandwidth": "bandwidth",
    "gpu.texture_read_efficiency": "fraction",
    "gpu.buffer_read_efficiency": "fraction",
    "gpu.image2d_max_width": "count",
    "gpu.image2d_max_height": "count",
    "gpu.image2d_array_max_layers": "count",
    "gpu.max_alloc": "bytes",
    "gpu.kernel_launch_overhead": "time",
    "gpu.prefers_texture": "bool",
    "gpu.shared_with_transfers": "bool?",
    "gpu.compute_memory_overlap": "fraction?",
    "gpu.sync_latency": "time?",
    "gpu.sync_read": "time?",
    "gpu.sync_copy": "time?",
    "gpu.sync_transform": "time?",
    "gpu.sync_kernel": "time?",
    "gpu.sync_free": "time?",
    "gpu.kernel_issue_interval": "time?",
    "gpu.sync_serial": "bool?",
    "transfer.host_to_gpu_bandwidth": "bandwidth",
    "transfer.host_to_gpu_latency": "time",
    "transfer.transform_bandwidth": "bandwidth",
    "transfer.transform_latency": "time?",
    "transfer.host_to_texture_latency": "time?",
    "transfer.host_to_texture_bandwidth": "bandwidth?",
    "transfer.zero_copy": "bool",
    "os.page_size": "bytes?",
    "os.readahead": "bytes?",
    "os.reserved_memory": "bytes?",
    "energy.storage_read_per_byte": "energy?",
    "energy.dram_per_byte": "energy?",
    "energy.gpu_per_flop": "energy?",
}

SECTIONS = ("storage", "dram", "gpu", "transfer", "os", "energy")
OS_FIELDS = tuple(p for p in FIELDS if p.startswith("os."))
HOPS = ("read", "copy", "transform", "kernel", "free")
HOP_FIELDS = tuple(f"gpu.sync_{h}" for h in HOPS)
