"""Import an ONNX file as a Model: initializers (and Constant nodes) become weight tensors with
the dtype of their ONNX element type, nodes become ops with FLOPs from shapes given by
`onnx.shape_inference.infer_shapes`, and tensor producer -> consumer links become edges.

Unsupported node types are never dropped silently: by default the import fails with a
WorkloadError naming them; with `allow_unsupported=True` they become 0-FLOP ops marked
`attrs["unsupported"]` and are listed in the model's description. Symbolic dimensions (batch,
sequence) take their value from `dims` (default 1). INT64 / BOOL initializers are shape and
index data, not weights. A malformed, truncated or empty file raises WorkloadError.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

from workloads.model import Model, Op, Tensor, WorkloadError

# ONNX TensorProto element type -> weight dtype (None: not weights, e.g. INT64 shape data)
ONNX_DTYPES: dict[int, str | None] = {1: "fp32", 10: "fp16", 16: "fp16", 3: "int8", 2: "int8",
                                      6: "fp32", 12: "fp32", 22: "int4", 21: "int4",
                                      7: None, 9: None}

MATMUL_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul", "MatMulInteger", "QLinearConv",
              "QLinearMatMul", "ConvInteger"}
# FLOPs per output element
ELEMENTWISE = {"Add": 1, "Sub": 1, "Mul": 1, "Div": 1, "Relu": 1, "LeakyRelu": 2, "PRelu": 2,
               "Sigmoid": 4, "Tanh": 4, "Erf": 4, "Gelu": 8, "HardSigmoid": 2, "HardSwish": 3,
               "Clip": 2, "Sqrt": 1, "Pow": 1, "Exp": 1, "Log": 1, "Neg": 1, "Abs": 1,
               "Reciprocal": 1, "Max": 1, "Min": 1, "Softmax": 5, "LogSoftmax": 5,
               "BatchNormalization": 2, "LayerNormalization": 8, "InstanceNormalization": 8,
               "GroupNormalization": 8, "SimplifiedLayerNormalization": 4, "Mish": 6,
               "Softplus": 3, "Elu": 3, "Selu": 3, "Sin": 1, "Cos": 1, "Where": 1,
               "QuantizeLinear": 2, "DequantizeLinear": 2, "DynamicQuantizeLinear": 4,
               "Resize": 1, "Upsample": 1}
# FLOPs per input element
REDUCE = {"ReduceMean": 1, "ReduceSum": 1, "ReduceMax": 1, "ReduceMin": 1, "ReduceL2": 2,
          "GlobalAveragePool": 1, "GlobalMaxPool": 1, "ArgMax": 1, "ReduceProd": 1}
POOL = {"MaxPool", "AveragePool", "LpPool"}
# data movement / shape ops: no arithmetic
MOVE = {"Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Concat", "Split", "Slice",
        "Gather", "GatherElements", "GatherND", "Shape", "Size", "Identity", "Cast", "Expand",
        "Pad", "Tile", "Dropout", "ConstantOfShape", "Range", "Equal", "Greater", "Less",
        "Not", "And", "Or", "DepthToSpace", "SpaceToDepth", "CastLike", "Trilu", "ScatterND",
        "NonZero", "TopK", "OneHot", "Floor", "Ceil", "Round", "Sign", "IsNaN", "Einsum"}
SUPPORTED_OPS = MATMUL_OPS | set(ELEMENTWISE) | set(REDUCE) | POOL | MOVE | {"Constant"}


def _shape(vi) -> tuple[int | str | None, ...] | None:
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                 for d in t.shape.dim)


def _load(path: Path):
    """Parse, check and shape-infer the file; every failure becomes a WorkloadError."""
    import onnx
    from google.protobuf.message import DecodeError

    if not path.is_file():
        raise WorkloadError(f"ONNX file not found: {path}")
    if path.stat().st_size == 0:
        raise WorkloadError(f"{path} is empty, not an ONNX model")
    try:
        proto = onnx.load(str(path))
    except (DecodeError, RuntimeError, ValueError, OSError) as exc:
        raise WorkloadError(f"{path} is not a readable ONNX model (truncated or not ONNX?): "
                            f"{type(exc).__name__}: {exc}") from None
    if not proto.HasField("graph") or not proto.graph.node:
        raise WorkloadError(f"{path} holds no ONNX graph (truncated or not an ONNX file)")
    try:
        onnx.checker.check_model(proto)
    except Exception as exc:  # onnx raises ValidationError and various C++ errors
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WorkloadError(f"{path} is not a valid ONNX model (truncated?): {first}") from None
    try:
        return onnx.shape_inference.infer_shapes(proto)
    except Exception as exc:
        raise WorkloadError(f"{path}: ONNX shape inference failed: {exc}") from None


def load_onnx(path: str | Path, *, name: str | None = None, dims: Mapping[str, int] | None = None,
              allow_unsupported: bool = False) -> Model:
    """A Model from an ONNX file (see the module docstring for the rules)."""
    path = Path(path)
    proto = _load(path)
    g = proto.graph
    name = name or path.stem
    dims = dict(dims or {})

    def concrete(shape: tuple | None) -> tuple[int, ...] | None:
        if shape is None:
            return None
        out = []
        for d in shape:
            if isinstance(d, int) and d > 0:
                out.append(d)
            elif isinstance(d, str) and d in dims:
                out.append(int(dims[d]))
            elif d is None or isinstance(d, str):
                out.append(1)  # symbolic dims default to 1 (batch 1)
            else:
                return None
        return tuple(out)

    shapes: dict[str, tuple[int, ...] | None] = {}
    for vi in (*g.input, *g.value_info, *g.output):
        shapes[vi.name] = concrete(_shape(vi))

    consts: dict[str, tuple[tuple[int, ...], int]] = {}  # name -> (shape, elem type)
    for init in g.initializer:
        consts[init.name] = (tuple(init.dims), init.data_type)
    for node in g.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    consts[node.output[0]] = (tuple(a.t.dims), a.t.data_type)
    for c, (shape, _) in consts.items():
        shapes[c] = shape

    unsupported = sorted({n.op_type for n in g.node if n.op_type not in SUPPORTED_OPS})
    if unsupported and not allow_unsupported:
        raise WorkloadError(f"{path.name}: unsupported ONNX op types {', '.join(unsupported)} "
                            f"(supported: {', '.join(sorted(SUPPORTED_OPS))}; pass "
                            f"allow_unsupported=True to import them as 0-FLOP ops)")

    def weight(tname: str) -> Tensor | None:
        shape, etype = consts[tname]
        if etype not in ONNX_DTYPES:
            raise WorkloadError(f"{path.name}: initializer {tname!r} has ONNX element type "
                                f"{etype}, which has no weight dtype")
        dtype = ONNX_DTYPES[etype]
        if dtype is None or any(d == 0 for d in shape):
            return None
        return Tensor(f"{name}/{tname}", shape, dtype)

    float_dtype = "fp16" if any(t == 10 for _, t in consts.values()) else "fp32"
    producer: dict[str, str] = {}
    ops: list[Op] = []
    edges: list[tuple[str, str]] = []
    used: set[str] = set()
    for i, node in enumerate(g.node):
        if node.op_type == "Constant":
            continue
        op_name = node.name or f"{node.op_type}_{i}"
        if op_name in used:
            op_name = f"{op_name}_{i}"
        used.add(op_name)
        weights = [w for x in node.input if x in consts and (w := weight(x)) is not None]
        acts = [x for x in node.input if x and x not in consts]
        in_shapes = [shapes.get(x) for x in node.input]
        out_shapes = [shapes.get(x) for x in node.output]
        flops = _flops(node, in_shapes, out_shapes, path.name)
        in_elems = sum(math.prod(shapes[x]) for x in acts if shapes.get(x) is not None)
        out_elems = sum(math.prod(s) for s in out_shapes if s is not None)
        wdtypes = {w.dtype for w in weights}
        dtype = next((d for d in ("int4", "int8") if d in wdtypes), float_dtype)
        attrs: dict[str, object] = {"op_type": node.op_type}
        if node.op_type not in SUPPORTED_OPS:
            attrs["unsupported"] = True
        ops.append(Op(op_name, node.op_type.lower(), flops, tuple(weights), input_elems=in_elems,
                      output_elems=out_elems, dtype=dtype, attrs=attrs))
        for x in acts:
            if x in producer:
                edges.append((producer[x], op_name))
        for y in node.output:
            producer[y] = op_name
    if not ops:
        raise WorkloadError(f"{path.name}: the graph has no compute nodes")
    opset = proto.opset_import[0].version if proto.opset_import else "?"
    desc = f"imported from {path.name} (opset {opset})"
    if unsupported:
        desc += f"; unsupported ops imported with 0 FLOPs: {', '.join(unsupported)}"
    return Model(name, ops, dict.fromkeys(edges), family="onnx",
                 source=f"ONNX file {path.name}", description=desc)


def _flops(node, ins: list, outs: list, fname: str) -> int:
    """FLOPs of one node from its input/output shapes (a multiply-add counts 2)."""
    t = node.op_type
    out = outs[0] if outs else None
    out_n = math.prod(out) if out is not None else 0

    def need(shape, what: str) -> tuple[int, ...]:
        if shape is None:
            raise WorkloadError(f"{fname}: cannot infer the {what} shape of {t} node "
                                f"{node.name or node.output[0]!r}; export with static shapes")
        return shape

    attrs = {a.name: a for a in node.attribute}
    if t in ("Conv", "ConvInteger", "QLinearConv"):
        w_idx = 3 if t == "QLinearConv" else 1
        w = need(ins[w_idx], "weight")
        out_n = math.prod(need(out, "output"))
        macs = out_n * math.prod(w[1:])
        has_bias = len(node.input) > (8 if t == "QLinearConv" else 2) and node.input[-1]
        return 2 * macs + (out_n if has_bias else 0)
    if t == "ConvTranspose":
        x, w = need(ins[0], "input"), need(ins[1], "weight")
        macs = math.prod(x) * w[1] * math.prod(w[2:])  # weight (Cin, Cout/group, k...)
        return 2 * macs + (out_n if len(node.input) > 2 and node.input[2] else 0)
    if t == "Gemm":
        a = need(ins[0], "A")
        trans_a = attrs["transA"].i if "transA" in attrs else 0
        k = a[0] if trans_a else a[-1]
        out_n = math.prod(need(out, "output"))
        return 2 * out_n * k + (out_n if len(node.input) > 2 and node.input[2] else 0)
    if t in ("MatMul", "MatMulInteger", "QLinearMatMul"):
        a = need(ins[0], "A")
        return 2 * math.prod(need(out, "output")) * a[-1]
    if t in ELEMENTWISE:
        return ELEMENTWISE[t] * out_n
    if t in REDUCE:
        return REDUCE[t] * (math.prod(ins[0]) if ins and ins[0] is not None else 0)
    if t in POOL:
        k = attrs["kernel_shape"].ints if "kernel_shape" in attrs else [1]
        return out_n * math.prod(k)
    return 0
