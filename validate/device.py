"""OpenCL device selection and the facts about a device that the other modules need."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from validate.errors import ValidateError

HOW_TO_GET_POCL = ("install a CPU OpenCL driver with `pip install pyopencl "
                   "pocl-binary-distribution`, or your GPU vendor's OpenCL ICD")


@dataclass(frozen=True)
class DeviceInfo:
    """What a device is and what it supports (recorded with every measurement)."""

    platform: str
    name: str
    vendor: str
    driver: str
    version: str
    device_type: str
    compute_units: int
    clock_mhz: int
    global_mem: int
    max_alloc: int
    image_support: bool
    image2d_max_width: int
    image2d_max_height: int
    image_max_array_size: int
    fp16: bool
    half_images: bool
    spec: str

    @property
    def label(self) -> str:
        return f"{self.name} ({self.platform}, driver {self.driver})"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Device:
    """An open OpenCL context on one device with profiling queues for compute and copies."""

    cl: Any
    context: Any
    device: Any
    info: DeviceInfo
    compute_queue: Any
    copy_queue: Any
    transform_queue: Any
    _pinned_ok: bool | None = None
    _keep: list = field(default_factory=list)
    _free_host: dict = field(default_factory=dict)

    def queue(self) -> Any:
        """A new profiling in-order queue on this device."""
        return self.cl.CommandQueue(self.context, self.device,
                                    properties=self.cl.command_queue_properties.PROFILING_ENABLE)

    def host_array(self, nbytes: int) -> Any:
        """A page-aligned uint8 host array for staging, pinned where the driver allows it: a
        mapped CL_MEM_ALLOC_HOST_PTR buffer (page-locked on NVIDIA, so copies from it are true
        asynchronous DMA, as in a real runtime's staging pool); else an anonymous mmap."""
        from validate.reader import ALIGN, align_up, aligned_array

        n = max(ALIGN, align_up(nbytes))
        free = self._free_host.get(n)
        if free:
            return free.pop()
        if self._pinned_ok is not False:
            cl = self.cl
            try:
                buf = cl.Buffer(self.context, cl.mem_flags.READ_WRITE
                                | cl.mem_flags.ALLOC_HOST_PTR, n)
                arr, ev = cl.enqueue_map_buffer(self.copy_queue, buf, cl.map_flags.READ
                                                | cl.map_flags.WRITE, 0, (n,), np.uint8)
                ev.wait()
                if arr.ctypes.data % ALIGN == 0:
                    self._pinned_ok = True
                    self._keep.append(buf)
                    arr[::ALIGN] = 0  # touch every page now, not on first use
                    return arr
                self._pinned_ok = False
            except cl.Error:
                self._pinned_ok = False
        arr = aligned_array(n)
        arr[::ALIGN] = 0
        return arr

    def give_host(self, arr: Any) -> None:
        """Return an array from `host_array` for reuse by later replays."""
        self._free_host.setdefault(arr.size, []).append(arr)

    @property
    def pinned(self) -> bool:
        """Whether host staging arrays are pinned (mapped ALLOC_HOST_PTR buffers)."""
        return bool(self._pinned_ok)

    def finish(self) -> None:
        for q in (self.compute_queue, self.copy_queue, self.transform_queue):
            q.finish()


def import_cl() -> Any:
    """Import pyopencl or raise ValidateError explaining how to install it."""
    try:
        import pyopencl as cl
    except ImportError as exc:
        raise ValidateError(f"pyopencl is not installed ({exc}); {HOW_TO_GET_POCL}") from None
    return cl


def _all_devices(cl: Any) -> list[tuple[int, int, Any, Any]]:
    try:
        platforms = cl.get_platforms()
    except cl.Error:
        platforms = []
    out = []
    for pi, p in enumerate(platforms):
        try:
            devices = p.get_devices()
        except cl.Error:
            devices = []
        for di, d in enumerate(devices):
            out.append((pi, di, p, d))
    return out


def list_devices() -> list[str]:
    """One line per OpenCL device: 'P:D  name (platform)'."""
    cl = import_cl()
    return [f"{pi}:{di}  {d.name.strip()} ({p.name.strip()}, driver {d.driver_version})"
            for pi, di, p, d in _all_devices(cl)]


def _matches(spec: str, pi: int, di: int, p: Any, d: Any) -> bool:
    s = spec.strip().lower()
    if ":" in s:
        a, _, b = s.partition(":")
        return a.isdigit() and b.isdigit() and (int(a), int(b)) == (pi, di)
    if s.isdigit():
        return int(s) == pi
    hay = " ".join([p.name, p.vendor, d.name, d.vendor]).lower()
    return s in hay


def _info(cl: Any, p: Any, d: Any, spec: str) -> DeviceInfo:
    ext = d.extensions.split()
    half_images = False
    if d.image_support:
        try:
            ctx = cl.Context([d])
            fmts = cl.get_supported_image_formats(ctx, cl.mem_flags.READ_WRITE,
                                                  cl.mem_object_type.IMAGE2D)
            half_images = any(f.channel_order == cl.channel_order.RGBA
                              and f.channel_data_type == cl.channel_type.HALF_FLOAT for f in fmts)
        except cl.Error:
            half_images = False
    return DeviceInfo(
        platform=p.name.strip(), name=d.name.strip(), vendor=d.vendor.strip(),
        driver=str(d.driver_version).strip(), version=str(d.version).strip(),
        device_type=cl.device_type.to_string(d.type), compute_units=int(d.max_compute_units),
        clock_mhz=int(d.max_clock_frequency), global_mem=int(d.global_mem_size),
        max_alloc=int(d.max_mem_alloc_size), image_support=bool(d.image_support),
        image2d_max_width=int(d.image2d_max_width) if d.image_support else 0,
        image2d_max_height=int(d.image2d_max_height) if d.image_support else 0,
        image_max_array_size=int(getattr(d, "image_max_array_size", 0) or 0)
        if d.image_support else 0,
        fp16="cl_khr_fp16" in ext, half_images=half_images, spec=spec)


def open_device(spec: str | None = None) -> Device:
    """Open the device named by `spec` ('pocl', 'nvidia', '0:1', a platform index) or the first
    one; raise ValidateError naming the devices there are (or saying there are none)."""
    cl = import_cl()
    spec = spec or os.environ.get("WEIGHTSTREAM_CL_DEVICE") or ""
    devices = _all_devices(cl)
    if not devices:
        raise ValidateError(f"no OpenCL platform or device found; {HOW_TO_GET_POCL}")
    chosen = devices[0] if not spec else next(
        (x for x in devices if _matches(spec, *x)), None)
    if chosen is None:
        names = "; ".join(f"{pi}:{di} {d.name.strip()} ({p.name.strip()})"
                          for pi, di, p, d in devices)
        raise ValidateError(f"no OpenCL device matches {spec!r}; devices found: {names} "
                            "(use a name fragment such as 'pocl' or 'nvidia', or 'platform:device')")
    pi, di, p, d = chosen
    info = _info(cl, p, d, spec or f"{pi}:{di}")
    ctx = cl.Context([d])
    props = cl.command_queue_properties.PROFILING_ENABLE
    queues = [cl.CommandQueue(ctx, d, properties=props) for _ in range(3)]
    return Device(cl, ctx, d, info, *queues)


def host_now() -> float:
    """Host clock (seconds) used for all host-side timestamps."""
    return time.perf_counter()
