"""Weight formats as they are stored and run: bits per weight, quantization groups with the bytes
of their scales / zero points / mins, the format family, and the compute dtype whose peak rate
the kernels run at.

A format's bytes for a tensor of shape (rows, ...) are its packed payload plus, per group, the
bytes of the group's scale (and zero point or min), plus any per-column index:

- `flat` groups run over the flattened tensor (`ceil(numel / group)` groups, no padding): the
  simulator's original int4 (and `int4-gN`, `int8-gN`);
- `row` groups run along each row (the input dimension of a PyTorch (out, in) weight), each row
  padded to whole groups, as GGUF blocks, AutoAWQ and AutoGPTQ store them;
- `channel`: one scale per output channel (the original int8); `tensor`: one scale per tensor.

Names: the fixed formats of `FORMATS`, plus group-size patterns `int4-gN`, `int8-gN`, `awq-gN`
and `gptq-gN` (N a power of two from 16 to 1024). A runtime profile can key per-format kernel
efficiency or dequantisation cost by `name` or by `family`; the hardware-only model uses
`compute_dtype` for the peak rate and the format's bytes for memory traffic, nothing else.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cache

GGUF_SOURCE = ("ggml/src/ggml-common.h block_* structs (llama.cpp): bytes per block of "
               "32 (legacy) or 256 (k-quant) weights")
GGUF_COMPUTE = ("estimate: llama.cpp GPU backends (OpenCL on Adreno, Vulkan, Metal) dequantize "
                "blocks inside the matmul kernel and multiply in fp16/fp32")


class FormatError(ValueError):
    """Unknown or malformed format name (a WorkloadError subclass wraps it for users)."""


@dataclass(frozen=True)
class Format:
    """One stored weight format; see the module docstring for how its bytes are counted."""

    name: str
    family: str  # float | int | fp8 | q4_0 | q4_1 | q5_0 | q5_1 | q8_0 | k-quant | awq | gptq
    bits: int  # payload bits per weight
    compute_dtype: str  # key of gpu.peak_flops the kernels run at (fp32 | fp16 | int8 | int4 | fp8)
    grouping: str = "none"  # none | flat | row | channel | tensor
    group: int = 0  # weights per group (block) for flat and row grouping
    group_bytes: float = 0.0  # scale + zero point / min bytes per group
    col_index_bytes: int = 0  # bytes per input column (GPTQ's int32 g_idx)
    texel_bytes: int = 8  # bytes per RGBA texel when laid out in a 2.5D texture
    description: str = ""
    source: str = ""

    @property
    def quantized(self) -> bool:
        """True for every format but fp32/fp16: 1-D tensors (biases, norms) then stay fp16."""
        return self.family != "float"

    def groups(self, shape: tuple[int, ...]) -> int:
        """Number of scale groups stored with a tensor of `shape`."""
        numel = math.prod(shape)
        rows = shape[0] if len(shape) > 1 else 1
        if self.grouping == "flat":
            return math.ceil(numel / self.group)
        if self.grouping == "row":
            return rows * math.ceil(numel // rows / self.group)
        if self.grouping == "channel":
            return rows
        if self.grouping == "tensor":
            return 1
        return 0

    def nbytes(self, shape: tuple[int, ...]) -> int:
        """Bytes of a tensor of `shape` on flash and in memory, scales and indices included."""
        numel = math.prod(shape)
        stored = numel
        if self.grouping == "row":  # rows padded to whole groups
            stored = self.groups(shape) * self.group
        payload = math.ceil(stored * self.bits / 8)
        cols = numel // shape[0] if len(shape) > 1 else numel
        return math.ceil(payload + self.groups(shape) * self.group_bytes
                         + self.col_index_bytes * cols)

    @property
    def runtime_keys(self) -> tuple[str, ...]:
        """Keys of a runtime profile's per-dtype kernel efficiencies for this format, most
        specific first: its family, then the dtype of its bit width (4-bit blocks and groups
        -> int4, 8-bit -> int8: how published rows of Q4_0, Q4_K_M, q4f16 and Q8_0 runs are
        fitted). 2/3/5/6-bit formats have no bit-width dtype: a runtime must name their family."""
        if self.family in ("float", "int"):
            return (self.compute_dtype,)
        bitwise = {4: "int4", 8: "int8"}.get(self.bits) if self.family != "fp8" else None
        return (self.family, bitwise) if bitwise else (self.family,)

    def bits_per_weight(self, shape: tuple[int, ...] = (4096, 4096)) -> float:
        """Effective stored bits per weight for `shape` (default: a 4096 x 4096 matrix)."""
        return self.nbytes(shape) * 8 / math.prod(shape)


def _gguf(name: str, family: str, bits: int, group: int, group_bytes: int,
          layout: str) -> Format:
    return Format(name, family, bits, "fp16", "row", group, group_bytes, texel_bytes=16,
                  description=f"GGUF {name.upper()}: {layout}", source=GGUF_SOURCE)


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("fp32", "float", 32, "fp32", texel_bytes=16, description="IEEE float32"),
    Format("fp16", "float", 16, "fp16", texel_bytes=8, description="IEEE float16"),
    Format("int8", "int", 8, "int8", "channel", 0, 2, texel_bytes=4,
           description="symmetric int8, one fp16 scale per output channel"),
    Format("int4", "int", 4, "int4", "flat", 128, 2, texel_bytes=16,
           description="symmetric int4, one fp16 scale per 128 consecutive weights"),
    Format("fp8", "fp8", 8, "fp8", "tensor", 0, 4, texel_bytes=4,
           description="FP8 E4M3 weights with one fp32 scale per tensor; runs at the fp8 "
                       "peak where the profile gives one, else at the fp16 rate",
           source="per-tensor FP8 checkpoints (vLLM / compressed-tensors: float8_e4m3fn "
                  "weight + float32 weight_scale)"),
    _gguf("q4_0", "q4_0", 4, 32, 2, "18-byte block of 32: fp16 d + 16 bytes of nibbles"),
    _gguf("q4_1", "q4_1", 4, 32, 4, "20-byte block of 32: fp16 d, fp16 m + 16 bytes"),
    _gguf("q5_0", "q5_0", 5, 32, 2, "22-byte block of 32: fp16 d + 4 bytes qh + 16 bytes qs"),
    _gguf("q5_1", "q5_1", 5, 32, 4, "24-byte block of 32: fp16 d, m + 4 bytes qh + 16 qs"),
    _gguf("q8_0", "q8_0", 8, 32, 2, "34-byte block of 32: fp16 d + 32 int8"),
    _gguf("q2_k", "k-quant", 2, 256, 20, "84-byte super-block of 256: 16 scale bytes, 64 "
                                        "bytes qs, fp16 d, dmin"),
    _gguf("q3_k", "k-quant", 3, 256, 14, "110-byte super-block of 256: 32 hmask, 64 qs, "
                                        "12 scale bytes, fp16 d"),
    _gguf("q4_k", "k-quant", 4, 256, 16, "144-byte super-block of 256: fp16 d, dmin, 12 "
                                        "scale bytes, 128 bytes qs"),
    _gguf("q5_k", "k-quant", 5, 256, 16, "176-byte super-block of 256: fp16 d, dmin, 12 "
                                        "scale bytes, 32 qh, 128 qs"),
    _gguf("q6_k", "k-quant", 6, 256, 18, "210-byte super-block of 256: 128 ql, 64 qh, "
                                        "16 int8 scales, fp16 d"),
)}

PATTERNS = ("int4-gN", "int8-gN", "awq-gN", "gptq-gN")
_PATTERN = re.compile(r"^(?P<kind>int4|int8|awq|gptq)-g(?P<n>\d+)$")
GROUP_SIZES = tuple(2**k for k in range(4, 11))  # 16 .. 1024


def _pattern(kind: str, n: int) -> Format:
    if kind in ("int4", "int8"):
        bits = int(kind[3:])
        return Format(f"{kind}-g{n}", "int", bits, kind, "flat", n, 2,
                      texel_bytes=16 if bits == 4 else 4,
                      description=f"symmetric {kind}, one fp16 scale per {n} consecutive weights")
    if kind == "awq":
        return Format(f"awq-g{n}", "awq", 4, "fp16", "row", n, 2.5, texel_bytes=16,
                      description=f"AWQ int4 (W4A16), per {n} input weights an fp16 scale and "
                                  "a packed 4-bit zero point",
                      source="AutoAWQ WQLinear_GEMM buffers: qweight int32 (in, out/8), qzeros "
                             "int32 (in/g, out/8), scales fp16 (in/g, out)")
    return Format(f"gptq-g{n}", "gptq", 4, "fp16", "row", n, 2.5, col_index_bytes=4,
                  texel_bytes=16,
                  description=f"GPTQ int4 (W4A16), per {n} input weights an fp16 scale and a "
                              "packed 4-bit zero point, plus an int32 group index per input column",
                  source="AutoGPTQ QuantLinear buffers: qweight int32 (in/8, out), qzeros int32 "
                         "(ceil(in/g), out/8), scales fp16 (ceil(in/g), out), g_idx int32 (in)")


@cache
def get_format(name: str) -> Format:
    """The format called `name` (a fixed name or a group-size pattern); FormatError if unknown."""
    if not isinstance(name, str):
        raise FormatError(f"a format name must be text, found {name!r}")
    fmt = FORMATS.get(name)
    if fmt is not None:
        return fmt
    m = _PATTERN.match(name)
    if m:
        n = int(m["n"])
        if n not in GROUP_SIZES:
            raise FormatError(f"group size {n} in {name!r} is not supported; valid group sizes: "
                              f"{', '.join(map(str, GROUP_SIZES))}")
        return _pattern(m["kind"], n)
    raise FormatError(f"unknown format {name!r}; valid formats: {', '.join(FORMATS)} "
                      f"(patterns: {', '.join(PATTERNS)}, N in {GROUP_SIZES[0]}..{GROUP_SIZES[-1]})")


def list_formats(examples: bool = False) -> list[str]:
    """The fixed format names (patterns such as awq-g64 are accepted too); with `examples`,
    also the common pattern instances awq-g128 and gptq-g128."""
    return list(FORMATS) + (["awq-g128", "gptq-g128"] if examples else [])


def runtime_keys(name: str) -> tuple[str, ...]:
    """A runtime profile's efficiency keys for format `name` (see Format.runtime_keys)."""
    return get_format(name).runtime_keys


def compute_dtype(name: str) -> str:
    """The gpu.peak_flops key the kernels of format `name` run at."""
    return get_format(name).compute_dtype
