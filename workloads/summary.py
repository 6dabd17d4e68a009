"""Model summaries for the CLI and docs: totals, peak activation memory, and the largest
tensors and layers (the largest layer's weights bound the smallest streaming budget)."""

from __future__ import annotations

from dataclasses import dataclass

from workloads.model import Model, activation_profile


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
