"""The model zoo: published architectures built op by op, looked up by name.

`get_model("llama-3.2-1b", "int4", tokens=64)` builds the model with every weight in the dtype
(`tensor_dtypes` overrides single tensors by full name); keyword arguments go to the family's
constructor (sequence length, image size, ...).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from workloads.model import Model, WorkloadError
from workloads.precision import parse_precision
from workloads.zoo import cnn, diffusion, llm, transformer, vision


@dataclass(frozen=True)
class ZooEntry:
    """One zoo model: its family and the constructor `(dtype, **kwargs) -> Model`."""

    name: str
    family: str
    build: Callable[..., Model]

    @property
    def options(self) -> list[str]:
        """Keyword arguments the constructor accepts besides dtype."""
        return [p for p in inspect.signature(self.build).parameters if p != "dtype"]


ZOO: dict[str, ZooEntry] = {e.name: e for e in (
    ZooEntry("resnet50", "cnn", cnn.resnet50),
    ZooEntry("resnet152", "cnn", cnn.resnet152),
    ZooEntry("mobilenetv2", "cnn", cnn.mobilenetv2),
    ZooEntry("yolov4", "cnn", cnn.yolov4),
    ZooEntry("yolov4-tiny", "cnn", cnn.yolov4_tiny),
    ZooEntry("resnet18", "cnn", cnn.resnet18),
    ZooEntry("googlenet", "cnn", cnn.googlenet),
    ZooEntry("inception-v3", "cnn", cnn.inception_v3),
    ZooEntry("convnext-tiny", "cnn", cnn.convnext_tiny),
    ZooEntry("vit-b16", "vision-transformer", vision.vit_b16),
    ZooEntry("vit-b32-384", "vision-transformer", vision.vit_b32_384),
    ZooEntry("swin-t", "vision-transformer", vision.swin_t),
    ZooEntry("sam-vit-b-encoder", "vision-transformer", vision.sam_vit_b_encoder),
    ZooEntry("bert-base", "transformer", transformer.bert_base),
    *(ZooEntry(name, "llm", llm.lm_builder(cfg)) for name, cfg in llm.CONFIGS.items()),
    *(e for w in transformer.WHISPERS for e in (
        ZooEntry(f"{w.name}-encoder", "audio", transformer.whisper_encoder_builder(w)),
        ZooEntry(f"{w.name}-decoder", "audio", transformer.whisper_decoder_builder(w)))),
    ZooEntry("sd15-text-encoder", "diffusion", transformer.clip_text),
    ZooEntry("sd15-unet", "diffusion", diffusion.sd15_unet),
    ZooEntry("sd15-vae-decoder", "diffusion", diffusion.sd15_vae_decoder),
)}

LLM_CONFIGS = llm.CONFIGS


def list_models() -> list[str]:
    """Zoo model names in registry order."""
    return list(ZOO)


def zoo_entry(name: str) -> ZooEntry:
    """The registry entry for `name`, or WorkloadError listing the valid names."""
    try:
        return ZOO[name]
    except KeyError:
        raise WorkloadError(f"unknown model {name!r}; valid models: {', '.join(ZOO)}") from None


def get_model(name: str, dtype: str = "fp16", tensor_dtypes: Mapping[str, str] | None = None,
              **kwargs: object) -> Model:
    """Build zoo model `name` in precision `dtype` (a format, or mixed per layer group such as
    'q4_0,lm_head=q6_k'); `tensor_dtypes` overrides single tensors."""
    entry = zoo_entry(name)
    prec = parse_precision(dtype)
    bad = sorted(set(kwargs) - set(entry.options))
    if bad:
        raise WorkloadError(f"model {name!r} does not take {', '.join(bad)}; options: "
                            f"{', '.join(entry.options) or 'none'}")
    model = entry.build(dtype=prec.base, **kwargs)
    if prec.mixed:
        model = model.with_dtype(prec.name)
    if tensor_dtypes:
        unknown = sorted(set(tensor_dtypes) - set(model.tensors))
        if unknown:
            raise WorkloadError(f"model {name!r} has no tensor {unknown[0]!r} "
                                f"(names look like {next(iter(model.tensors))!r})")
        model = model.with_dtype(prec.name, tensor_dtypes)
    return model


__all__ = ["LLM_CONFIGS", "ZOO", "ZooEntry", "get_model", "list_models", "zoo_entry"]
