"""2.5D texture layout of a weight tensor under a device's OpenCL image limits.

A texel holds 4 channels (RGBA). Weights are pre-laid-out on flash in the texture's order, so
they can be streamed straight into an image. A tensor that does not fit one image2d is split
across the layers of an image2d_array; one that exceeds the array or the largest single
allocation falls back to a plain buffer (read at the profile's buffer efficiency).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hwprofiles.schema import GpuSpec

# bytes per RGBA texel: RGBA32F, RGBA16F, RGBA8, and int4 packed 8-per-uint32 in RGBA32UI
TEXEL_BYTES = {"fp32": 16, "fp16": 8, "int8": 4, "int4": 16}


@dataclass(frozen=True)
class TextureLayout:
    """Where one tensor lives: an image2d, an image2d_array, or a buffer (with the reason)."""

    kind: str  # image2d | image2d_array | buffer
    width: int = 0
    height: int = 0
    layers: int = 0
    reason: str = ""

    @property
    def dst(self) -> str:
        return "buffer" if self.kind == "buffer" else "texture"

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "width": self.width, "height": self.height,
                "layers": self.layers, **({"reason": self.reason} if self.reason else {})}


def texture_layout(nbytes: int, dtype: str, gpu: GpuSpec) -> TextureLayout:
    """The image (or buffer) a tensor of `nbytes` in `dtype` is streamed into on `gpu`."""
    if nbytes > gpu.max_alloc:
        return TextureLayout("buffer", reason=f"{nbytes} bytes exceed the largest single "
                                              f"allocation ({gpu.max_alloc} bytes)")
    texels = max(1, math.ceil(nbytes / TEXEL_BYTES.get(dtype, 8)))
    w_max, h_max = gpu.image2d_max_width, gpu.image2d_max_height
    width = min(texels, w_max)
    height = math.ceil(texels / width)
    if height <= h_max:
        return TextureLayout("image2d", width, height, 1)
    layers = math.ceil(height / h_max)
    if layers <= gpu.image2d_array_max_layers:
        return TextureLayout("image2d_array", width, h_max, layers)
    return TextureLayout("buffer", reason=f"{texels} texels exceed image2d_array limits "
                                          f"({w_max}x{h_max}x{gpu.image2d_array_max_layers})")
