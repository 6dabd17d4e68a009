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
from workloads.formats import get_format


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
    # bytes per RGBA texel (`Format.texel_bytes`): RGBA32F, RGBA16F, RGBA8, and packed int4 or
    # GGUF / AWQ / GPTQ blocks as raw words in RGBA32UI
    texels = max(1, math.ceil(nbytes / get_format(dtype).texel_bytes))
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
