"""Model summaries for the CLI and docs: totals, peak activation memory, and the largest
tensors and layers (the largest layer's weights bound the smallest streaming budget)."""

from __future__ import annotations

from dataclasses import dataclass

from workloads.formats import get_format, list_formats
from workloads.model import Model, activation_profile, storage_dtype
from workloads.precision import GROUPS, OTHER, op_group, tensor_groups


@dataclass(frozen=True)
class ModelSummary:
    """What `weightstream models show` prints about one model."""

    name: str
    family: str
    dtype: str
    ops: int
    params: int
    weight_bytes: int
    flops: int
    peak_activation_bytes: int
    min_streaming_bytes: int  # largest (layer weights + activations while it runs)
    largest_tensors: tuple[tuple[str, tuple[int, ...], int], ...]  # name, shape, bytes
    largest_layers: tuple[tuple[str, str, int, int], ...]  # op, kind, weight bytes, flops
    published_params: int | None = None
    source: str = ""
    description: str = ""
    warnings: tuple[str, ...] = ()  # what an importer could not know


def summarize(model: Model, top: int = 5) -> ModelSummary:
    """Totals and the `top` largest tensors and layers (by weight bytes) of `model`."""
    acts = activation_profile(model)
    ops = model.ops
    per_op = [op.weight_bytes for op in ops]
    tensors = sorted(model.tensors.values(), key=lambda t: (-t.nbytes, t.name))[:top]
    layers = sorted(ops, key=lambda o: (-o.weight_bytes, o.name))[:top]
    dtypes = sorted(model.dtypes) or ["-"]
    return ModelSummary(
        name=model.name, family=model.family, dtype="+".join(dtypes), ops=len(ops),
        params=model.param_count, weight_bytes=model.weight_bytes, flops=model.total_flops,
        peak_activation_bytes=max(acts, default=0),
        min_streaming_bytes=max((w + a for w, a in zip(per_op, acts, strict=True)), default=0),
        largest_tensors=tuple((t.name, t.shape, t.nbytes) for t in tensors),
        largest_layers=tuple((o.name, o.kind, o.weight_bytes, o.flops) for o in layers),
        published_params=model.published_params, source=model.source,
        description=model.description, warnings=tuple(getattr(model, "warnings", ())))


@dataclass(frozen=True)
class FormatSize:
    """The model's weight bytes if every layer were in one format (1-D tensors stay fp16)."""

    format: str
    family: str
    weight_bytes: int
    bits_per_param: float


def format_sizes(model: Model, formats: list[str] | None = None) -> list[FormatSize]:
    """Weight bytes of `model` in each format (default: every fixed format, awq-g128 and
    gptq-g128), scales included."""
    out = []
    params = model.param_count
    for name in formats or list_formats(examples=True):
        fmt = get_format(name)
        total = sum(get_format(storage_dtype(name, t.shape)).nbytes(t.shape)
                    for t in model.tensors.values())
        out.append(FormatSize(name, fmt.family, total, 8 * total / params if params else 0.0))
    return out


def group_sizes(model: Model) -> list[tuple[str, int, str, int]]:
    """Per layer group (embeddings, attention, ffn, lm_head, other): parameters, the formats of
    its tensors and their bytes, for models with mixed precision."""
    groups = tensor_groups(model.ops)
    rows = []
    for g in (*GROUPS, OTHER):
        ts = [t for t in model.tensors.values() if groups.get(t.name) == g]
        if ts:
            fmts = "+".join(sorted({t.dtype for t in ts}))
            rows.append((g, sum(t.numel for t in ts), fmts, sum(t.nbytes for t in ts)))
    return rows


__all__ = ["FormatSize", "ModelSummary", "format_sizes", "group_sizes", "op_group", "summarize"]
