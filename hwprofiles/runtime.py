"""The RuntimeProfile data model: what an inference framework adds to the hardware.

A hardware profile says what a phone can do; a runtime profile says what a framework (MNN,
LiteRT GPU, TVM, llama.cpp, ...) makes of it: how it holds weights (anonymous copies, or a
file mapping the OS may evict), how fast it parses and converts them at load, what it builds at
initialisation, what each kernel launch costs it, which ops it fuses, and how efficient its
kernels are per op class and dtype. Every field is optional: a field left out is neutral, so the
`ideal` runtime (nothing set) is the hardware profile alone. Files use the hardware profiles'
format and rules (`{value: ..., source: ...}` or `estimate: ...` on every leaf).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hwprofiles.schema import Source

# kernels are grouped into classes whose efficiency a runtime states separately
OP_CLASSES = ("conv", "depthwise", "matmul", "matmul_narrow", "gemv", "attention", "norm",
              "elementwise")
HOLDING = ("anonymous", "mmap")
TRANSFORM_UNITS = ("hardware", "gpu", "cpu")
PROGRAM_KEYS = ("kind", "shape", "runtime")
# ops a runtime may fuse into the kernel before them (see workloads.fusion)
FUSION_RULES = ("conv_bn", "elementwise", "attention")
DTYPE_KEYS = ("fp32", "fp16", "int8", "int4")
# weight-format families (workloads.formats) a runtime may state kernel efficiencies for; a
# format's kernels take its family's figure, else its bit-width dtype's (q4_0 -> int4)
FORMAT_KEYS = ("fp8", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "k-quant", "awq", "gptq")
EFFICIENCY_KEYS = (*DTYPE_KEYS, *FORMAT_KEYS)

RUNTIME_FIELDS: dict[str, str] = {
    "weights.holding": f"choice:{'|'.join(HOLDING)}?",
    "weights.file_scale": "ratio?",
    "weights.host_copy": "choice:none|until_init?",
    "weights.fault_queue_depth": "count?",
    "load.parse_bandwidth": "bandwidth?",
    "load.per_tensor": "time?",
    "load.transform": f"choice:{'|'.join(TRANSFORM_UNITS)}?",
    "load.transform_bandwidth": "bandwidth?",
    "load.reads_in_flight": "count?",
    "init.fixed": "time?",
    "init.program_build": "time?",
    "init.programs_per": f"choice:{'|'.join(PROGRAM_KEYS)}?",
    "init.program_count": "count?",
    "init.cached": "bool?",
    "init.order": "choice:with_load|before_load?",
    "init.program_load": "time?",
    "dispatch.per_kernel": "time?",
    "dispatch.record_per_kernel": "time?",
    "fusion.rules": f"list:{'|'.join(FUSION_RULES)}?",
    "kernels.narrow_min_dim": "count?",
    "kernels.narrow_formats": f"list:{'|'.join(EFFICIENCY_KEYS)}?",
    **{f"efficiency.{c}": "ratio?" for c in OP_CLASSES},
    **{f"dtype_efficiency.{d}": "ratio?" for d in EFFICIENCY_KEYS},
    **{f"kernel_efficiency.{c}.{d}": "ratio?" for c in OP_CLASSES for d in EFFICIENCY_KEYS},
}
RUNTIME_SECTIONS = ("weights", "load", "init", "dispatch", "fusion", "kernels", "efficiency",
                    "dtype_efficiency", "kernel_efficiency")


@dataclass(frozen=True)
class RuntimeProfile:
    """One framework's costs on top of the hardware; every default is neutral (`ideal`).

    weights: `holding` anonymous (copied: the app is killed past the memory limit) or mmap (a
    file mapping: kernels read the mapped pages, the OS evicts them under pressure and faults
    them back); `file_scale` bytes on flash per byte in memory (2 for fp32 files run in fp16);
    `host_copy` until_init keeps each parsed host copy until the first kernel starts.
    load: `parse_bandwidth` host-side deserialisation (bytes of file per second, None = none);
    `per_tensor` host cost per loaded tensor; `transform` where buffer->texture conversion runs
    (hardware: the profile's transform unit and bandwidth; gpu: that unit at
    `transform_bandwidth`; cpu: the host at `transform_bandwidth`); `reads_in_flight` how many
    reads the runtime's reader keeps submitted at once (1: each read is submitted when the one
    before it has completed, as read() or glibc's POSIX AIO on one file; more: io_uring or
    libaio keep the device queue full across reads, so a read's first request latency hides
    behind the transfer of the reads ahead of it).
    init: `fixed` session set-up; `program_build` per program built before the first kernel
    runs: one per distinct op kind or op shape of the model (`programs_per`), or a fixed
    `program_count` whatever the model (`runtime`: a framework that builds all its kernels);
    with `cached` binaries each program costs `program_load` instead. `order` before_load:
    set-up and builds finish before the first weight is read (a backend initialised before the
    model is loaded); with_load: they share the host with parsing while reads proceed.
    dispatch: `per_kernel` host cost of each kernel launch, on top of the GPU's own;
    `record_per_kernel` host cost per kernel of recording a graph's command buffers, paid before
    every invocation that `workloads.workload.recording` says records (its first run, and each
    run whose input shape differs from the run before: ET-VK clears and re-encodes its command
    buffers when a resize changes dispatch parameters).
    kernels: `narrow_min_dim` a matrix product over several tokens whose weight (in one of
    `narrow_formats`) has a dimension below this runs the runtime's generic fallback kernel
    instead of its tuned GEMM (llama.cpp's Adreno Q4_0 kernels need both >= 512): kernel class
    `matmul_narrow`, with its own efficiency.
    efficiency: per op class and per dtype, the factor by which this runtime's kernels reach
    the hardware roofline (1 = as the hardware profile's compute efficiency says; 0.5 = twice
    as slow); `kernel_efficiency[class][dtype]`, where given, replaces the product of the two
    (a framework whose fp16 GEMM is naive while its int4 GEMM is tuned).
    """

    name: str
    description: str = ""
    holding: str = "anonymous"
    file_scale: float = 1.0
    host_copy: str = "none"
    fault_queue_depth: int = 1
    parse_bandwidth: float | None = None
    per_tensor: float = 0.0
    transform: str = "hardware"
    transform_bandwidth: float | None = None
    reads_in_flight: int = 1
    init_fixed: float = 0.0
    program_build: float = 0.0
    programs_per: str = "kind"
    program_count: int = 0
    cached: bool = False
    program_load: float = 0.0
    init_order: str = "with_load"
    dispatch: float = 0.0
    record_per_kernel: float = 0.0
    fusion: tuple[str, ...] = ()
    narrow_min_dim: int = 0
    narrow_formats: tuple[str, ...] = ()
    efficiency: dict[str, float] = field(default_factory=dict)
    dtype_efficiency: dict[str, float] = field(default_factory=dict)
    kernel_efficiency: dict[str, float] = field(default_factory=dict)  # "class.dtype" -> ratio
    sources: dict[str, Source] = field(default_factory=dict, compare=False)
    extends: str | None = None

    def efficiency_for(self, op_class: str, dtype: str, *fallbacks: str) -> float:
        """Factor on the hardware roofline for a kernel of `op_class` in `dtype`: the first of
        `dtype`, `fallbacks` (a weight format's family, then its bit-width dtype) that this
        runtime states a kernel or dtype efficiency for; else the op class's alone."""
        for key in (dtype, *fallbacks):
            both = self.kernel_efficiency.get(f"{op_class}.{key}")
            if both is not None:
                return both
            if key in self.dtype_efficiency:
                return self.efficiency.get(op_class, 1.0) * self.dtype_efficiency[key]
        return self.efficiency.get(op_class, 1.0)

    def states_dtype(self, op_class: str, *keys: str) -> bool:
        """Whether this runtime gives a per-dtype figure for `op_class` under any of `keys`."""
        return any(f"{op_class}.{k}" in self.kernel_efficiency or k in self.dtype_efficiency
                   for k in keys)

    @property
    def program_cost(self) -> float:
        """Seconds per program at initialisation: built, or loaded from a binary cache."""
        return self.program_load if self.cached else self.program_build

    @property
    def is_neutral(self) -> bool:
        """True when this runtime adds nothing to the hardware (the `ideal` runtime)."""
        return self.to_dict() == {}

    def to_dict(self) -> dict[str, Any]:
        """Flat {dotted path: value} of the fields that differ from neutral (for digests)."""
        out: dict[str, Any] = {}
        neutral = RuntimeProfile("neutral")
        for path in RUNTIME_FIELDS:
            value = runtime_value(self, path)
            if value != runtime_value(neutral, path):
                out[path] = list(value) if isinstance(value, tuple) else value
        return out


# dotted field path -> dataclass attribute (sections whose leaves are dict entries map to None)
_ATTR = {
    "weights.holding": "holding", "weights.file_scale": "file_scale",
    "weights.host_copy": "host_copy", "weights.fault_queue_depth": "fault_queue_depth",
    "load.parse_bandwidth": "parse_bandwidth", "load.per_tensor": "per_tensor",
    "load.transform": "transform", "load.transform_bandwidth": "transform_bandwidth",
    "load.reads_in_flight": "reads_in_flight",
    "init.fixed": "init_fixed", "init.program_build": "program_build",
    "init.programs_per": "programs_per", "init.program_count": "program_count",
    "init.cached": "cached", "init.program_load": "program_load", "init.order": "init_order",
    "dispatch.per_kernel": "dispatch", "dispatch.record_per_kernel": "record_per_kernel",
    "fusion.rules": "fusion",
    "kernels.narrow_min_dim": "narrow_min_dim", "kernels.narrow_formats": "narrow_formats",
}


_DICT_SECTIONS = ("efficiency", "dtype_efficiency", "kernel_efficiency")


def runtime_value(rt: RuntimeProfile, path: str) -> Any:
    """The value of a dotted field path (the neutral default where the file leaves it out)."""
    section, key = path.split(".", 1)
    if section in _DICT_SECTIONS:
        return getattr(rt, section).get(key)
    return getattr(rt, _ATTR[path])


def build_runtime(data: Any, values: dict[str, Any], sources: dict[str, Source]) -> RuntimeProfile:
    """A RuntimeProfile from a checked mapping's parsed values."""
    kwargs: dict[str, Any] = {_ATTR[p]: v for p, v in values.items() if p in _ATTR}
    for section in _DICT_SECTIONS:
        kwargs[section] = {p.split(".", 1)[1]: v for p, v in values.items()
                           if p.startswith(section + ".")}
    return RuntimeProfile(name=str(data["name"]), description=str(data.get("description", "")),
                          sources=sources, extends=data.get("extends"), **kwargs)
