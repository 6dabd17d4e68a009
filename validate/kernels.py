"""OpenCL C sources (proxy compute, buffer->image transform, empty kernel), the image layout of
a weight blob, and the mapping from device profiling timestamps to the host clock.

The proxy kernel is FLOP-matched: every work-item first streams its share of the op's weights
(from buffers or images) and activations, then runs `iters` rounds of 4 independent vector
multiply-add chains (32 FLOPs per round per work-item), so an op's kernel moves the op's bytes
and does (to rounding) its FLOPs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from validate.device import Device, host_now

FLOPS_PER_ITER = 32  # 4 chains x 4 lanes x (mul + add)
TEXEL_ELEMS = 4  # RGBA
MAX_GLOBAL = 1 << 18

_HEADER = """
__constant sampler_t SMP = CLK_NORMALIZED_COORDS_FALSE | CLK_ADDRESS_CLAMP_TO_EDGE
                         | CLK_FILTER_NEAREST;
"""

EMPTY_SRC = "__kernel void empty(__global float* x) { }\n"


def transform_src() -> str:
    """Kernels copying a buffer of float or half RGBA texels into image2d / image2d_array."""
    return """
__kernel void to_image2d_f(__global const float4* src, __write_only image2d_t dst, int w, int n)
{ int j = get_global_id(0); if (j < n) write_imagef(dst, (int2)(j % w, j / w), src[j]); }
__kernel void to_image2d_h(__global const half* src, __write_only image2d_t dst, int w, int n)
{ int j = get_global_id(0); if (j < n) write_imagef(dst, (int2)(j % w, j / w), vload_half4(j, src)); }
__kernel void to_array_f(__global const float4* src, __write_only image2d_array_t dst, int w, int h, int n)
{ int j = get_global_id(0); if (j < n)
  write_imagef(dst, (int4)(j % w, (j / w) % h, j / (w * h), 0), src[j]); }
__kernel void to_array_h(__global const half* src, __write_only image2d_array_t dst, int w, int h, int n)
{ int j = get_global_id(0); if (j < n)
  write_imagef(dst, (int4)(j % w, (j / w) % h, j / (w * h), 0), vload_half4(j, src)); }
"""


def proxy_src(sig: str, half: bool, chains: int = 4) -> str:
    """Proxy kernel `proxy` reading one weight object per letter of `sig` ('b' buffer,
    'i' image2d, 'a' image2d_array), then running the multiply-add chains in float or half."""
    t = "half4" if half else "float4"
    params, loops = [], []
    for k, kind in enumerate(sig):
        if kind == "b":
            params.append(f"__global const float4* w{k}, int n{k}")
            loops.append(f"for (int j = gid; j < n{k}; j += gsz) s += w{k}[j];")
        elif kind == "i":
            params.append(f"__read_only image2d_t w{k}, int n{k}, int wd{k}")
            loops.append(f"for (int j = gid; j < n{k}; j += gsz) "
                         f"s += read_imagef(w{k}, SMP, (int2)(j % wd{k}, j / wd{k}));")
        elif kind == "a":
            params.append(f"__read_only image2d_array_t w{k}, int n{k}, int wd{k}, int ht{k}")
            loops.append(f"for (int j = gid; j < n{k}; j += gsz) s += read_imagef(w{k}, SMP, "
                         f"(int4)(j % wd{k}, (j / wd{k}) % ht{k}, j / (wd{k} * ht{k}), 0));")
        else:
            raise ValueError(f"unknown weight kind {kind!r}")
    extra = "".join(", " + p for p in params)
    names = [f"a{c}" for c in range(chains)]
    init = " ".join(f"{t} {n} = v + ({t})({c + 1}.0f);" for c, n in enumerate(names))
    body = " ".join(f"{n} = mad({n}, mm, cc);" for n in names)
    total = " + ".join(names)
    pragma = "#pragma OPENCL EXTENSION cl_khr_fp16 : enable\n" if half else ""
    return pragma + _HEADER + f"""
__kernel void proxy(__global const float4* act_in, int n_in, __global float4* act_out, int n_out,
                    int iters, float m, float c{extra})
{{
  int gid = get_global_id(0); int gsz = get_global_size(0);
  float4 s = (float4)(0.0f);
  for (int j = gid; j < n_in; j += gsz) s += act_in[j];
  {' '.join(loops)}
  {t} v = convert_{t}(s * 1e-6f) + ({t})(gid * 1e-7f);
  {t} mm = ({t})(m); {t} cc = ({t})(c);
  {init}
  for (int k = 0; k < iters; k++) {{ {body} }}
  float4 r = convert_float4({total});
  for (int j = gid; j < n_out; j += gsz) act_out[j] = r;
  if (n_out == 0 && r.x == 1234.5f) act_out[0] = r;
}}
"""


@dataclass(frozen=True)
class ImageLayout:
    """How a blob of `nbytes` is laid out as RGBA texels in an image2d or image2d_array."""

    kind: str  # "image2d" | "image2d_array"
    width: int
    height: int
    layers: int
    texel_bytes: int

    @property
    def texels(self) -> int:
        return self.width * self.height * self.layers

    @property
    def nbytes(self) -> int:
        return self.texels * self.texel_bytes


# the scalar arguments of each weight object in a proxy kernel, after its memory object
_WEIGHT_SCALARS = {"b": 1, "i": 2, "a": 3}


def proxy_kernel(dev: Device, sig: str, half: bool, chains: int = 4) -> Any:
    """The built `proxy` kernel for `sig`, with its scalar argument types declared so that
    pyopencl sets arguments in ~1.5 us instead of ~60 us (host time a runtime would not spend)."""
    knl = dev.cl.Kernel(build(dev, proxy_src(sig, half, chains)), "proxy")
    types: list[Any] = [None, np.int32, None, np.int32, np.int32, np.float32, np.float32]
    for kind in sig:
        types += [None] + [np.int32] * _WEIGHT_SCALARS[kind]
    knl.set_scalar_arg_dtypes(types)
    return knl


def transform_kernel(cl: Any, prg: Any, name: str) -> Any:
    """One buffer->image kernel of `transform_src` with its scalar argument types declared."""
    knl = cl.Kernel(prg, name)
    knl.set_scalar_arg_dtypes([None, None] + [np.int32] * (3 if "array" in name else 2))
    return knl


def image_layout(nbytes: int, texel_bytes: int, max_w: int, max_h: int, max_layers: int,
                 prefer_array: bool = False, width: int = 4096) -> ImageLayout:
    """A layout holding `nbytes`: rows of `width` texels, an image2d_array when the rows exceed
    the device's image height (or when `prefer_array`)."""
    texels = max(1, math.ceil(nbytes / texel_bytes))
    w = min(width, max_w, texels)
    rows = math.ceil(texels / w)
    if rows <= max_h and not prefer_array:
        return ImageLayout("image2d", w, rows, 1, texel_bytes)
    h = min(rows, max_h, 1024 if prefer_array else max_h)
    layers = math.ceil(rows / h)
    if layers > max_layers:
        raise ValueError(f"{nbytes} bytes do not fit one image2d_array ({max_w}x{max_h}x"
                         f"{max_layers} texels of {texel_bytes} bytes)")
    return ImageLayout("image2d_array", w, h, layers, texel_bytes)


def is_cpu(info: Any) -> bool:
    """Whether an OpenCL device computes on the host's own cores (PoCL)."""
    return "CPU" in str(getattr(info, "device_type", "")).upper()


def max_global_for(info: Any) -> int:
    """Largest proxy-kernel global size for a device: 2^18 work-items on a GPU; on a CPU device
    (PoCL) 4096 per compute unit, since each work-item there is a loop iteration with a fixed
    cost and a real CPU kernel would not spread a few MFLOPs over 2^18 of them."""
    if is_cpu(info):
        return max(256, min(MAX_GLOBAL, 4096 * max(1, int(info.compute_units))))
    return MAX_GLOBAL


def global_size(flops: int, nbytes: int, max_global: int = MAX_GLOBAL) -> tuple[int, int]:
    """(work-items, multiply-add rounds) with work-items x rounds x 32 ~ `flops`; enough
    work-items to stream `nbytes` (one per 64 bytes, capped), so memory-bound ops are not
    starved of parallelism."""
    by_bytes = min(max_global, max(64, nbytes // 64))
    by_flops = min(max_global, max(64, flops // FLOPS_PER_ITER))
    g = _round64(max(by_bytes, by_flops))
    iters = round(flops / (FLOPS_PER_ITER * g)) if flops > 0 else 0
    return g, iters


def _round64(n: int) -> int:
    return max(64, (int(n) + 63) // 64 * 64)


def clock_offset(dev: Device, samples: int = 7) -> float:
    """Seconds to add to a profiling timestamp (ns * 1e-9) to get `host_now()` time, from the
    QUEUED timestamp of tiny kernels enqueued between two host clock reads."""
    cl = dev.cl
    prg = cl.Program(dev.context, EMPTY_SRC).build()
    knl = cl.Kernel(prg, "empty")
    buf = cl.Buffer(dev.context, cl.mem_flags.READ_WRITE, 64)
    knl.set_arg(0, buf)
    best: tuple[float, float] | None = None
    for _ in range(samples):
        t0 = host_now()
        ev = cl.enqueue_nd_range_kernel(dev.compute_queue, knl, (1,), None)
        t1 = host_now()
        ev.wait()
        q = ev.profile.queued * 1e-9
        cand = (t1 - t0, (t0 + t1) / 2 - q)
        if best is None or cand[0] < best[0]:
            best = cand
    assert best is not None
    return best[1]


def create_image(dev: Device, layout: Any, half: bool) -> Any:
    """An RGBA image2d (or image2d_array) of `layout`'s shape, half or float channels."""
    cl = dev.cl
    ctype = cl.channel_type.HALF_FLOAT if half else cl.channel_type.FLOAT
    fmt = cl.ImageFormat(cl.channel_order.RGBA, ctype)
    if layout.kind == "image2d":
        return cl.create_image(dev.context, cl.mem_flags.READ_WRITE, fmt,
                               shape=(layout.width, layout.height))
    return cl.create_image(dev.context, cl.mem_flags.READ_WRITE, fmt,
                           shape=(layout.width, layout.height, layout.layers), is_array=True)


def build(dev: Device, src: str) -> Any:
    """Build an OpenCL program, turning build failures into a readable error."""
    cl = dev.cl
    if src in dev.programs:  # built once per device, as a runtime's program cache does
        return dev.programs[src]
    try:
        prg = cl.Program(dev.context, src).build()
    except cl.RuntimeError as exc:  # build failure
        raise RuntimeError(f"OpenCL build failed on {dev.info.name}: {exc}") from None
    dev.programs[src] = prg
    return prg
