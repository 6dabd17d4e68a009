"""A workload as a runtime runs it: ops fused by the runtime's rules, each op in a kernel class.

The class decides which of the runtime's efficiencies a kernel gets (`hwprofiles.runtime
.OP_CLASSES`): a linear layer over one token is a GEMV (memory-bound decode), over several a
matmul; a convolution with one input channel per group is depthwise.
"""

from __future__ import annotations

from hwprofiles.runtime import RuntimeProfile
from workloads.fusion import fuse
from workloads.model import Model, Op
from workloads.workload import Invocation, Workload

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
    """The kernel class of `op`: conv, depthwise, matmul, gemv, attention, norm or elementwise."""
    cls = kind_class(op.kind)
    if cls == "conv" and op.weights and len(op.weights[0].shape) == 4 \
            and op.weights[0].shape[1] == 1 and op.weights[0].shape[0] > 1:
        return "depthwise"
    if cls == "matmul" and op.weights and op.weights[0].shape:
        rows = op.weights[0].shape[0]
        if rows > 0 and op.output_elems // rows <= 1:
            return "gemv"
    return cls


def lower(workload: Workload, runtime: RuntimeProfile) -> Workload:
    """`workload` with each model fused by `runtime`'s rules (itself when it fuses nothing)."""
    if not runtime.fusion:
        return workload
    fused: dict[int, Model] = {}
    invs = []
    for inv in workload.invocations:
        key = id(inv.model)
        if key not in fused:
            fused[key] = fuse(inv.model, runtime.fusion)
        invs.append(Invocation(fused[key], inv.label))
    return Workload(workload.name, tuple(invs), workload.description)
