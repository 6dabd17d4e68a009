"""A workload as a runtime runs it: ops fused by the runtime's rules, each op in a kernel class.

The class decides which of the runtime's efficiencies a kernel gets (`hwprofiles.runtime
.OP_CLASSES`): a linear layer over one token is a GEMV (memory-bound decode), over several a
matmul; a convolution with one input channel per group is depthwise.
"""

from __future__ import annotations

from dataclasses import replace

from hwprofiles.runtime import RuntimeProfile
from workloads.formats import runtime_keys
from workloads.fusion import fuse
from workloads.model import Model, Op
from workloads.workload import Workload

_BY_KIND = {
    "conv": "conv", "linear": "matmul", "matmul": "matmul", "gemm": "matmul",
    "attention": "attention", "attention_qk": "attention", "attention_av": "attention",
    "layernorm": "norm", "rmsnorm": "norm", "groupnorm": "norm", "batchnorm": "norm",
    "softmax": "norm", "instancenorm": "norm",
}


def kind_class(kind: str) -> str:
    """The kernel class of an op kind alone (shape-dependent classes need `op_class`)."""
    return _BY_KIND.get(kind, "elementwise")


def op_class(op: Op) -> str:
    """The kernel class of `op`: conv, depthwise, matmul, matmul_narrow (set by `lower`), gemv,
    attention, norm or elementwise."""
    tagged = op.attrs.get("kernel_class")
    if tagged:
        return tagged  # type: ignore[return-value]
    cls = kind_class(op.kind)
    if cls == "conv" and op.weights and len(op.weights[0].shape) == 4 \
            and op.weights[0].shape[1] == 1 and op.weights[0].shape[0] > 1:
        return "depthwise"
    if cls == "matmul" and op.weights and op.weights[0].shape:
        rows = op.weights[0].shape[0]
        if rows > 0 and op.output_elems // rows <= 1:
            return "gemv"
    return cls


def narrow(op: Op, runtime: RuntimeProfile) -> bool:
    """Whether `runtime` runs `op` on its fallback kernel: a matrix product over several tokens
    whose weight, in one of the runtime's `narrow_formats`, has a dimension below
    `narrow_min_dim`, where the runtime states an efficiency for that kernel (without one the
    product is an ordinary matmul: nothing is assumed)."""
    if not runtime.narrow_min_dim or not op.weights or kind_class(op.kind) != "matmul":
        return False
    w = op.weights[0]
    keys = runtime_keys(w.dtype)
    return (len(w.shape) == 2 and min(w.shape) < runtime.narrow_min_dim
            and op_class(op) == "matmul" and any(k in runtime.narrow_formats for k in keys)
            and (runtime.states_dtype("matmul_narrow", *keys)
                 or "matmul_narrow" in runtime.efficiency))


def _lower_model(model: Model, runtime: RuntimeProfile) -> Model:
    m = fuse(model, runtime.fusion) if runtime.fusion else model
    if not runtime.narrow_min_dim:
        return m
    old = [m.op(n) for n in m.insertion_order]
    ops = [replace(op, attrs={**op.attrs, "kernel_class": "matmul_narrow"})
           if narrow(op, runtime) else op for op in old]
    if all(a is b for a, b in zip(ops, old, strict=True)):
        return m
    return Model(m.name, ops, m.graph.edges, family=m.family, source=m.source,
                 published_params=m.published_params, description=m.description,
                 warnings=m.warnings)


def lower(workload: Workload, runtime: RuntimeProfile) -> Workload:
    """`workload` with each model fused by `runtime`'s rules and its narrow matrix products on
    the runtime's fallback kernel (itself when neither applies)."""
    if not runtime.fusion and not runtime.narrow_min_dim:
        return workload
    lowered: dict[int, Model] = {}
    invs = []
    for inv in workload.invocations:
        key = id(inv.model)
        if key not in lowered:
            lowered[key] = _lower_model(inv.model, runtime)
        invs.append(replace(inv, model=lowered[key]))
    return Workload(workload.name, tuple(invs), workload.description)
