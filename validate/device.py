"""OpenCL device selection and the facts about a device that the other modules need."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
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
    programs: dict = field(default_factory=dict)  # OpenCL C source -> built program

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


# vendor OpenCL libraries an ICD loader can be pointed at: (vendor, library file prefix, name of
# the library to register, suggested .icd file name)
VENDOR_LIBS = (
    ("NVIDIA", "libnvidia-opencl.so", "libnvidia-opencl.so.1", "nvidia.icd"),
    ("AMD (ROCm)", "libamdocl64.so", "libamdocl64.so", "amdocl64.icd"),
    ("Intel (compute runtime)", "libigdrcl.so", "libigdrcl.so", "intel.icd"),
    ("Arm Mali", "libmali.so", "libmali.so", "mali.icd"),
    ("PoCL", "libpocl.so", "libpocl.so.2", "pocl.icd"),
)
LIB_DIRS = ("/usr/lib", "/usr/lib64", "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
            "/lib", "/lib64", "/usr/local/lib", "/usr/local/nvidia/lib64", "/opt/rocm/lib",
            "/vendor/lib64", "/system/vendor/lib64")


def icd_dirs() -> list[Path]:
    """Where the ICD loader looks for .icd files: $OCL_ICD_VENDORS, Termux's $PREFIX, /etc."""
    out = []
    env = os.environ.get("OCL_ICD_VENDORS")
    if env:
        out.append(Path(env))
    if os.environ.get("PREFIX"):
        out.append(Path(os.environ["PREFIX"]) / "etc/OpenCL/vendors")
    out.append(Path("/etc/OpenCL/vendors"))
    return out


def _registered(dirs: list[Path]) -> set[str]:
    """Base names of the libraries the .icd files in `dirs` name."""
    names: set[str] = set()
    for d in dirs:
        files = [d] if d.is_file() else sorted(d.glob("*.icd")) if d.is_dir() else []
        for f in files:
            try:
                names |= {Path(line.strip()).name for line in f.read_text().splitlines()
                          if line.strip()}
            except OSError:
                continue
    return names


def unregistered_libraries(icd: list[Path] | None = None, lib_dirs: list[Path] | None = None
                           ) -> list[tuple[str, Path, str, str]]:
    """Vendor OpenCL libraries that are installed but that no .icd file registers, so an ICD
    loader (and every OpenCL program) cannot see their devices: (vendor, library path, name to
    register, suggested .icd file)."""
    if lib_dirs is None:
        extra = [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(":") if p]
        lib_dirs = [Path(p) for p in (*extra, *LIB_DIRS)]
    registered = _registered(icd if icd is not None else icd_dirs())
    out = []
    for vendor, prefix, name, icd_name in VENDOR_LIBS:
        if any(r.startswith(prefix) for r in registered):
            continue
        found = next((f for d in lib_dirs if d.is_dir() for f in sorted(d.glob(prefix + "*"))),
                     None)
        if found is not None:
            out.append((vendor, found, name, icd_name))
    return out


def registration_hints(icd: list[Path] | None = None, lib_dirs: list[Path] | None = None
                       ) -> list[str]:
    """One explanation per installed but unregistered vendor library, with the command that
    registers it."""
    where = icd if icd is not None else icd_dirs()
    target = where[-1] if where else Path("/etc/OpenCL/vendors")
    return [f"{vendor}'s OpenCL library is installed ({path}) but no ICD file in "
            f"{', '.join(str(d) for d in where)} registers it, so no OpenCL program sees its "
            f"devices; register it with: echo {name} | sudo tee {target / icd_name}"
            for vendor, path, name, icd_name in unregistered_libraries(icd, lib_dirs)]


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
    hints = "".join(f"; {h}" for h in registration_hints())
    if not devices:
        raise ValidateError(f"no OpenCL platform or device found; {HOW_TO_GET_POCL}{hints}")
    chosen = devices[0] if not spec else next(
        (x for x in devices if _matches(spec, *x)), None)
    if chosen is None:
        names = "; ".join(f"{pi}:{di} {d.name.strip()} ({p.name.strip()})"
                          for pi, di, p, d in devices)
        raise ValidateError(f"no OpenCL device matches {spec!r}; devices found: {names} "
                            "(use a name fragment such as 'pocl' or 'nvidia', or 'platform:device')"
                            f"{hints}")
    pi, di, p, d = chosen
    info = _info(cl, p, d, spec or f"{pi}:{di}")
    ctx = cl.Context([d])
    props = cl.command_queue_properties.PROFILING_ENABLE
    queues = [cl.CommandQueue(ctx, d, properties=props) for _ in range(3)]
    return Device(cl, ctx, d, info, *queues)


def host_now() -> float:
    """Host clock (seconds) used for all host-side timestamps."""
    return time.perf_counter()
