"""Import an ONNX file as a Model: constant tensors become weight tensors with the dtype of their
ONNX element type, nodes become ops with FLOPs from inferred shapes, and tensor producer ->
consumer links become edges.

Shapes: symbolic input dims take the values given in `dims` (`--dim height=640`, or
`--dim images:2=640` for an unnamed one) before inference, so they flow through the whole graph.
Inference is onnx's own (`onnx.shape_inference.infer_shapes` with data propagation); where
that leaves shapes unknown (shape arithmetic through Div, Range, ... as PyTorch and paddle2onnx
exports compute them), onnxruntime's symbolic shape inference fills them in. A symbolic dim not
given is refused, except a leading (batch) dim, taken as 1 and flagged.

Weights: initializers, `Constant` nodes and `ConstantOfShape` of a constant shape count alike;
INT64 / BOOL tensors, scalars and the non-data inputs of shape-like ops (Reshape shapes, Resize
scales, Clip bounds, ...) are not weights. Subgraphs: the taken branch of an `If` is imported op
by op (the condition when it is constant, else `branches`, else the branch with more FLOPs,
flagged); the other branch's weights are counted on the If op (a runtime loads them with the
file) but never computed. A `Loop` / `Scan` is one op: body FLOPs x trip count (1 and flagged
when the count is not known statically), every body weight.

Never silently wrong: unsupported op types fail the import naming them (with
`allow_unsupported=True` they become 0-FLOP ops marked `attrs["unsupported"]`, flagged); what
the importer cannot know is listed in `Model.warnings`; a malformed, truncated or empty file
raises WorkloadError.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workloads.model import Model, Op, Tensor, WorkloadError

# ONNX TensorProto element type -> weight dtype (None: not weights, e.g. INT64 shape data)
ONNX_DTYPES: dict[int, str | None] = {1: "fp32", 10: "fp16", 16: "fp16", 3: "int8", 2: "int8",
                                      6: "fp32", 12: "fp32", 22: "int4", 21: "int4",
                                      7: None, 9: None, 11: "fp32"}
DEFAULT_DOMAINS = ("", "ai.onnx")

MATMUL_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul", "MatMulInteger", "QLinearConv",
              "QLinearMatMul", "ConvInteger", "Einsum", "LSTM", "GRU", "RNN"}
# FLOPs per output element
ELEMENTWISE = {"Add": 1, "Sub": 1, "Mul": 1, "Div": 1, "Relu": 1, "LeakyRelu": 2, "PRelu": 2,
               "Sigmoid": 4, "Tanh": 4, "Erf": 4, "Gelu": 8, "HardSigmoid": 2, "HardSwish": 3,
               "Clip": 2, "Sqrt": 1, "Pow": 1, "Exp": 1, "Log": 1, "Neg": 1, "Abs": 1,
               "Reciprocal": 1, "Softmax": 5, "LogSoftmax": 5, "Hardmax": 1,
               "BatchNormalization": 2, "LayerNormalization": 8, "InstanceNormalization": 8,
               "GroupNormalization": 8, "SimplifiedLayerNormalization": 4, "RMSNormalization": 4,
               "MeanVarianceNormalization": 8, "LpNormalization": 3, "Mish": 6,
               "Softplus": 3, "Softsign": 2, "Elu": 3, "Selu": 3, "Celu": 3,
               "ThresholdedRelu": 1, "Shrink": 2, "Swish": 4, "Sin": 1, "Cos": 1, "Tan": 1,
               "Asin": 1, "Acos": 1, "Atan": 1, "Sinh": 1, "Cosh": 1, "Asinh": 1, "Acosh": 1,
               "Atanh": 1, "Where": 1, "Mod": 1, "QuantizeLinear": 2, "DequantizeLinear": 2,
               "DynamicQuantizeLinear": 4, "Resize": 1, "Upsample": 1}
VARIADIC = {"Sum": 0, "Max": 0, "Min": 0, "Mean": 1}  # (inputs - 1) + this, per output element
# FLOPs per input element
REDUCE = {"ReduceMean": 1, "ReduceSum": 1, "ReduceMax": 1, "ReduceMin": 1, "ReduceL2": 2,
          "ReduceL1": 2, "ReduceSumSquare": 2, "ReduceLogSum": 1, "ReduceLogSumExp": 3,
          "ReduceProd": 1, "GlobalAveragePool": 1, "GlobalMaxPool": 1, "GlobalLpPool": 2,
          "ArgMax": 1, "ArgMin": 1, "CumSum": 1}
POOL = {"MaxPool", "AveragePool", "LpPool"}
# data movement / shape / comparison ops: no arithmetic
MOVE = {"Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Concat", "Split", "Slice",
        "Gather", "GatherElements", "GatherND", "Shape", "Size", "Identity", "Cast", "Expand",
        "Pad", "Tile", "Dropout", "ConstantOfShape", "Range", "Equal", "Greater", "Less",
        "GreaterOrEqual", "LessOrEqual", "Not", "And", "Or", "Xor", "BitShift",
        "DepthToSpace", "SpaceToDepth", "CastLike", "Trilu", "ScatterND", "ScatterElements",
        "Scatter", "NonZero", "TopK", "OneHot", "Floor", "Ceil", "Round", "Sign", "IsNaN",
        "IsInf", "Compress", "ReverseSequence", "MaxUnpool", "Unique", "SplitToSequence",
        "SequenceAt", "SequenceConstruct", "ConcatFromSequence", "SequenceEmpty",
        "SequenceInsert", "SequenceLength", "Optional", "OptionalGetElement",
        "OptionalHasElement"}
# ops whose FLOPs depend on the data, not on shapes: counted 0 and flagged
DATA_DEPENDENT = {"NonMaxSuppression", "RoiAlign", "MaxRoiPool"}
SUBGRAPH_OPS = {"If", "Loop", "Scan"}
SUPPORTED_OPS = (MATMUL_OPS | set(ELEMENTWISE) | set(VARIADIC) | set(REDUCE) | POOL | MOVE
                 | DATA_DEPENDENT | SUBGRAPH_OPS | {"Constant", "LRN"})
# inputs that configure an op rather than hold its data (never weights)
NON_DATA_INPUTS: dict[str, tuple[int, ...]] = {
    "Resize": (1, 2, 3), "Upsample": (1,), "Clip": (1, 2), "Pad": (1, 2, 3), "Slice": (1, 2, 3, 4),
    "Reshape": (1,), "Expand": (1,), "Tile": (1,), "Squeeze": (1,), "Unsqueeze": (1,),
    "TopK": (1,), "Range": (0, 1, 2), "OneHot": (1, 2), "Split": (1,), "ConstantOfShape": (0,),
    "CumSum": (1,), "Gather": (1,), "GatherElements": (1,), "GatherND": (1,), "ScatterND": (1,),
    "ScatterElements": (1,), "NonMaxSuppression": (2, 3, 4), "Trilu": (1,), "Where": (0,),
    **{r: (1,) for r in REDUCE if r.startswith("Reduce")}}


@dataclass
class _Const:
    """A constant tensor: shape and ONNX element type (value kept for small integer tensors)."""

    shape: tuple[int, ...]
    etype: int
    value: Any = None
    root: str = ""  # the constant an Identity passes on (one tensor, counted once)


def _dims_of(vi) -> tuple[int | str | None, ...] | None:
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                 for d in t.shape.dim)


def _concrete(shape: tuple | None) -> tuple[int, ...] | None:
    if shape is None or any(not isinstance(d, int) or d < 0 for d in shape):
        return None
    return tuple(shape)


def _read(path: Path):
    """Parse and check the file; every failure becomes a WorkloadError."""
    import onnx
    from google.protobuf.message import DecodeError

    if not path.is_file():
        raise WorkloadError(f"ONNX file not found: {path}")
    if path.stat().st_size == 0:
        raise WorkloadError(f"{path} is empty, not an ONNX model")
    try:
        proto = onnx.load(str(path), load_external_data=False)
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
    if proto.functions:
        from onnx import inliner

        proto = inliner.inline_local_functions(proto)
    return proto


def _graphs(graph):
    """`graph` and every subgraph in it (If branches, Loop / Scan bodies), depth first."""
    yield graph
    for node in graph.node:
        for a in node.attribute:
            if a.HasField("g"):
                yield from _graphs(a.g)
            for g in a.graphs:
                yield from _graphs(g)


def _set_dims(proto, dims: Mapping[str, int], fname: str, warnings: list[str]) -> None:
    """Give the graph inputs' symbolic dims their values (in place) and drop the exporter's
    symbolic intermediate shapes, so inference derives every shape from the given sizes."""
    inits = {i.name for i in proto.graph.initializer}
    inputs = [vi for vi in proto.graph.input
              if vi.name not in inits and vi.type.tensor_type.HasField("shape")]
    # a dim named at axis 0 of some input is a batch dim wherever it appears
    batch = {vi.type.tensor_type.shape.dim[0].dim_param for vi in inputs
             if vi.type.tensor_type.shape.dim} - {""}
    known: dict[str, list[str]] = {}
    missing: list[str] = []
    used: set[str] = set()
    flagged: set[str] = set()
    for vi in inputs:
        for axis, d in enumerate(vi.type.tensor_type.shape.dim):
            if d.HasField("dim_value") and d.dim_value > 0:
                continue
            key = d.dim_param or f"{vi.name}:{axis}"
            known.setdefault(key, []).append(f"{vi.name}:{axis}")
            for k in (d.dim_param, f"{vi.name}:{axis}"):
                if k and k in dims:
                    d.dim_value = int(dims[k])
                    used.add(k)
                    break
            else:
                if axis == 0 or key in batch:
                    d.dim_value = 1
                    if key not in flagged:
                        flagged.add(key)
                        warnings.append(f"symbolic dim {key!r} (axis {axis} of input "
                                        f"{vi.name!r}) not given: taken as 1 (batch 1); pass "
                                        f"--dim {key}=N to change")
                else:
                    missing.append(f"{key} (input {vi.name!r} axis {axis})")
    unknown = sorted(set(dims) - used)
    if unknown:
        raise WorkloadError(f"{fname}: no symbolic input dim named {', '.join(unknown)}; the "
                            f"file's symbolic dims: {', '.join(known) or 'none'}")
    if missing:
        raise WorkloadError(f"{fname}: symbolic input dims {', '.join(missing)} set every "
                            "downstream shape and FLOP and are not given; pass them, e.g. "
                            + " ".join(f"--dim {m.split(' ')[0]}=VALUE" for m in missing)
                            + " (dims={...} in Python)")
    for g in _graphs(proto.graph):
        for vi in g.value_info:
            if vi.type.tensor_type.HasField("shape"):
                for d in vi.type.tensor_type.shape.dim:
                    if d.HasField("dim_param"):
                        d.ClearField("dim_param")
        for vi in g.output:  # inference fills in (sub)graph outputs from the inputs
            if vi.type.HasField("tensor_type"):
                vi.type.tensor_type.ClearField("shape")


FOLD_LIMIT = 4096  # largest tensor (elements) the shape-arithmetic folding evaluates


def _infer(proto, fname: str, warnings: list[str],
           branches: Mapping[str, str] | None = None) -> tuple[dict[str, tuple | None],
                                                              dict[str, Any]]:
    """Shapes of every tensor (subgraphs included), and the values of the small tensors that
    shape arithmetic computes. Alternates onnx's shape inference (with data propagation) and
    folding: a node whose inputs are all known small values (Shape of a known shape included)
    is evaluated by onnx's reference evaluator and its output becomes a constant for the next
    inference round; an If whose branch is known (`branches` by node name, or a constant
    condition) is inlined. onnxruntime's symbolic shape inference then fills in the rest."""
    import onnx

    work = onnx.ModelProto()
    work.CopyFrom(proto)
    opset = next((o.version for o in proto.opset_import if o.domain in DEFAULT_DOMAINS), 17)
    values: dict[str, Any] = {}
    for _ in range(64):  # each round resolves at least one more level of shape arithmetic
        try:
            inferred = onnx.shape_inference.infer_shapes(work, data_prop=True)
        except Exception as exc:
            raise WorkloadError(f"{fname}: ONNX shape inference failed: {exc}") from None
        shapes = _shape_map(inferred)
        if not _fold(work, shapes, values, opset, branches or {}):
            break
    read = {x for g in _graphs(inferred.graph) for n in g.node for x in n.input}
    read |= {o.name for g in _graphs(inferred.graph) for o in g.output}
    outputs = {o for g in _graphs(inferred.graph) for n in g.node for o in n.output if o in read}
    if all(_concrete(shapes.get(o)) is not None for o in outputs):
        return shapes, values
    try:
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference
    except ImportError as exc:
        warnings.append(f"onnxruntime's symbolic shape inference is not available ({exc}): "
                        "shapes onnx's own inference cannot follow stay unknown")
        return shapes, values
    try:
        # the steps of SymbolicShapeInference.infer_shapes, which on an incomplete result also
        # saves a file into the working directory and discards the shapes it did infer
        sym = SymbolicShapeInference(2**31 - 1, True, False, 0)
        sym._preprocess(work)
        while sym.run_:
            sym._infer_impl()
        sym._update_output_from_vi()
        ort = sym.out_mp_
    except Exception:  # it asserts on graphs it cannot follow; onnx's shapes stand
        return shapes, values
    for name, shape in _shape_map(ort).items():
        if _concrete(shapes.get(name)) is None and _concrete(shape) is not None:
            shapes[name] = shape
    return shapes, values


def _fold(work, shapes: dict[str, tuple | None], values: dict[str, Any], opset: int,
          branches: Mapping[str, str]) -> bool:
    """One folding round over every (sub)graph of `work`, in place: evaluable nodes become
    Constant nodes. Returns whether anything was folded."""
    import numpy as np
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    for g in _graphs(work.graph):
        for init in g.initializer:
            if init.name not in values and math.prod(init.dims) <= FOLD_LIMIT and \
                    not init.external_data and init.data_type in (1, 6, 7, 9, 10, 11):
                values[init.name] = numpy_helper.to_array(init)
    folded = False
    for g in list(_graphs(work.graph)):
        for k, node in enumerate(list(g.node)):
            t = node.op_type
            if t == "If" and (node.input[0] in values or node.name in branches):
                # inline the branch a known condition (or the caller) picks
                if node.name in branches:
                    branch = f"{branches[node.name]}_branch"
                else:
                    branch = "then_branch" if bool(np.asarray(values[node.input[0]]).reshape(
                        -1)[0]) else "else_branch"
                sub = next(a.g for a in node.attribute if a.name == branch)
                g.initializer.extend(sub.initializer)
                nodes = list(sub.node) + [helper.make_node("Identity", [b.name], [o])
                                          for b, o in zip(sub.output, node.output, strict=False)
                                          if o]
                g.node.remove(node)
                for j, n in enumerate(nodes):
                    g.node.insert(k + j, n)
                return True  # the graph changed under the loop: infer again
            if node.domain not in DEFAULT_DOMAINS or t in SUBGRAPH_OPS or t in MATMUL_OPS:
                continue
            if t == "Constant":
                c = next((a.t for a in node.attribute if a.name == "value"), None)
                if c is not None and node.output[0] not in values and \
                        math.prod(c.dims) <= FOLD_LIMIT:
                    values[node.output[0]] = numpy_helper.to_array(c)
                continue
            out = None
            if t in ("Shape", "Size"):
                shape = _concrete(shapes.get(node.input[0]))
                if shape is not None:
                    if t == "Size":
                        out = [np.array(math.prod(shape), dtype=np.int64)]
                    else:
                        a = {x.name: x.i for x in node.attribute}
                        out = [np.array(shape[a.get("start", 0):a.get("end", len(shape)) or
                                              None], dtype=np.int64)]
                        if "end" in a and a["end"] == 0:
                            out = [np.array(shape[a.get("start", 0):0], dtype=np.int64)]
            elif node.input and all(not x or x in values for x in node.input) and \
                    all(math.prod(_concrete(shapes.get(y)) or (0,)) <= FOLD_LIMIT
                        for y in node.output if y) and \
                    (t != "ConstantOfShape" or np.prod(values[node.input[0]]) <= FOLD_LIMIT):
                try:
                    out = ReferenceEvaluator(node, opsets={"": opset}).run(
                        None, {x: values[x] for x in node.input if x})
                except Exception:  # an op the evaluator lacks: inference decides
                    out = None
            if out is None or any(np.size(v) > FOLD_LIMIT for v in out):
                continue
            consts = []
            for name, v in zip(node.output, out, strict=False):
                if name:
                    values[name] = np.asarray(v)
                    consts.append(helper.make_node("Constant", [], [name],
                                                   value=numpy_helper.from_array(
                                                       np.asarray(v), name)))
            g.node.remove(node)
            for j, c in enumerate(consts):
                g.node.insert(k + j, c)
            folded = True
    return folded


def _shape_map(proto) -> dict[str, tuple | None]:
    """Every value's shape; a concrete one wins over a declared symbolic or unknown one."""
    shapes: dict[str, tuple | None] = {}
    for g in _graphs(proto.graph):
        for vi in (*g.input, *g.value_info, *g.output):
            shape = _dims_of(vi)
            if _concrete(shapes.get(vi.name)) is None or _concrete(shape) is not None:
                shapes[vi.name] = shape
    return shapes


def _const_of(node) -> _Const | None:
    """The tensor a Constant node holds."""
    from onnx import numpy_helper

    for a in node.attribute:
        if a.name == "value":
            value = numpy_helper.to_array(a.t) if a.t.data_type in (6, 7, 9) and \
                math.prod(a.t.dims) <= 64 else None
            return _Const(tuple(a.t.dims), a.t.data_type, value)
        if a.name in ("value_float", "value_int"):
            return _Const((), 1 if a.name == "value_float" else 7,
                          None if a.name == "value_float" else a.i)
        if a.name in ("value_floats", "value_ints"):
            vals = list(a.floats if a.name == "value_floats" else a.ints)
            return _Const((len(vals),), 1 if a.name == "value_floats" else 7,
                          None if a.name == "value_floats" else vals)
    return None


@dataclass
class _Import:
    """Walks the graph (and taken If branches) emitting ops; reads shared shapes."""

    model: str
    fname: str
    shapes: dict[str, tuple | None]
    values: dict[str, Any]  # small tensors the shape arithmetic computes (folded)
    branches: Mapping[str, str]
    allow_unsupported: bool
    # If branches picked by the FLOPs rule: node -> (branch, the other branch's FLOPs)
    auto: dict[str, tuple[str, int | None]] = field(default_factory=dict)
    consts: dict[str, _Const] = field(default_factory=dict)
    producer: dict[str, str] = field(default_factory=dict)
    ops: list[Op] = field(default_factory=list)
    edges: list[tuple[str, str]] = field(default_factory=list)
    used_names: set[str] = field(default_factory=set)
    read: set[str] = field(default_factory=set)  # constants some op reads
    warnings: list[str] = field(default_factory=list)
    unknown_shapes: dict[str, None] = field(default_factory=dict)  # ops, in order
    float_dtype: str = "fp32"
    consumed: set[str] = field(default_factory=set)  # tensors some node or graph output reads

    def child(self) -> _Import:
        """A scratch importer for a subgraph dry run (shares constants, not results)."""
        return _Import(self.model, self.fname, self.shapes, self.values, self.branches,
                       self.allow_unsupported, auto=self.auto, consts=dict(self.consts),
                       producer=dict(self.producer), used_names=set(self.used_names),
                       float_dtype=self.float_dtype, consumed=self.consumed)

    # -- constants ----------------------------------------------------------------------------
    def add_initializers(self, graph) -> None:
        from onnx import numpy_helper

        for init in graph.initializer:
            value = None
            if init.data_type in (6, 7, 9) and math.prod(init.dims) <= 64 and not \
                    init.external_data:
                value = numpy_helper.to_array(init)
            self.consts[init.name] = _Const(tuple(init.dims), init.data_type, value)
            self.shapes.setdefault(init.name, tuple(init.dims))

    def weight(self, tname: str) -> Tensor | None:
        c = self.consts[tname]
        if c.etype not in ONNX_DTYPES:
            raise WorkloadError(f"{self.fname}: constant {tname!r} has ONNX element type "
                                f"{c.etype}, which has no weight dtype")
        dtype = ONNX_DTYPES[c.etype]
        if dtype is None or not c.shape or any(d == 0 for d in c.shape):
            return None  # shape / index data, scalars and empty tensors are not weights
        return Tensor(f"{self.model}/{c.root or tname}", c.shape, dtype)

    # -- walking ------------------------------------------------------------------------------
    def walk(self, graph, prefix: str = "") -> None:
        self.add_initializers(graph)
        for i, node in enumerate(graph.node):
            t = node.op_type
            if t == "Constant":
                c = _const_of(node)
                if c is not None:
                    self.consts[node.output[0]] = c
                    self.shapes[node.output[0]] = c.shape
                continue
            if t == "Identity" and node.input[0] in self.consts:
                src = self.consts[node.input[0]]
                self.consts[node.output[0]] = _Const(src.shape, src.etype, src.value,
                                                     src.root or node.input[0])
                self.shapes[node.output[0]] = src.shape
                continue
            if t == "ConstantOfShape" and node.input and node.input[0] in self.consts \
                    and self.consts[node.input[0]].value is not None:
                value = next((a.t for a in node.attribute if a.name == "value"), None)
                shape = tuple(int(d) for d in self.consts[node.input[0]].value.reshape(-1))
                self.consts[node.output[0]] = _Const(shape, value.data_type if value else 1)
                self.shapes[node.output[0]] = shape
                continue
            name = self.op_name(node, i, prefix)
            if t == "If":
                self.import_if(node, name)
            elif t in ("Loop", "Scan"):
                self.import_loop(node, name)
            else:
                self.emit(node, name, self.flops(node, name))

    def op_name(self, node, i: int, prefix: str) -> str:
        name = prefix + (node.name or f"{node.op_type}_{i}")
        if name in self.used_names:
            name = f"{name}_{i}"
        while name in self.used_names:
            name += "_"
        self.used_names.add(name)
        return name

    def emit(self, node, name: str, flops: int, extra: tuple[Tensor, ...] = (),
             reads: tuple[str, ...] = (), **attrs: object) -> None:
        """Add the op for `node`: weights from its constant inputs (plus `extra`), edges from
        the ops that wrote its other inputs (and the outer values in `reads`)."""
        skip = NON_DATA_INPUTS.get(node.op_type, ())
        weights: list[Tensor] = []
        acts: list[str] = []
        for j, x in enumerate(node.input):
            if not x:
                continue
            if x in self.consts:
                self.read.add(x)
                self.read.add(self.consts[x].root)
                w = None if j in skip else self.weight(x)
                if w is not None and w not in weights:
                    weights.append(w)
            elif x not in acts:
                acts.append(x)
        for w in extra:
            if w not in weights:
                weights.append(w)
        acts += [x for x in reads if x not in acts and x not in self.consts]
        in_shapes = [self.shapes.get(x) for x in acts]
        out_shapes = [_concrete(self.shapes.get(y)) for y in node.output
                      if y and y in self.consumed]
        if any(_concrete(s) is None for s in in_shapes) or any(s is None for s in out_shapes):
            self.unknown_shapes[f"{node.op_type} {name!r}"] = None
        in_elems = sum(math.prod(s) for s in map(_concrete, in_shapes) if s is not None)
        out_elems = sum(math.prod(s) for s in out_shapes if s is not None)
        dtypes = {w.dtype for w in weights}
        dtype = next((d for d in ("int4", "int8") if d in dtypes), self.float_dtype)
        attrs = {"op_type": node.op_type, **attrs}
        if node.op_type not in SUPPORTED_OPS or node.domain not in DEFAULT_DOMAINS:
            attrs["unsupported"] = True
        self.ops.append(Op(name, node.op_type.lower(), flops, tuple(weights),
                           input_elems=in_elems, output_elems=out_elems, dtype=dtype,
                           attrs=attrs))
        for x in acts:
            if x in self.producer and (self.producer[x], name) not in self.edges:
                self.edges.append((self.producer[x], name))
        for y in node.output:
            if y:
                self.producer[y] = name

    # -- subgraphs ----------------------------------------------------------------------------
    def value(self, name: str) -> Any:
        """The value of a small constant or folded tensor, or None."""
        c = self.consts.get(name)
        if c is not None and c.value is not None:
            return c.value
        v = self.values.get(name)
        return None if v is None else np.asarray(v)

    def outer_reads(self, graph) -> tuple[set[str], set[str]]:
        """Names a subgraph reads from outside itself, and the names it defines."""
        defined: set[str] = set()
        reads: set[str] = set()
        for g in _graphs(graph):
            defined |= {i.name for i in g.initializer} | {i.name for i in g.input}
            defined |= {o for n in g.node for o in n.output}
        for g in _graphs(graph):
            reads |= {x for n in g.node for x in n.input if x and x not in defined}
            reads |= {o.name for o in g.output if o.name not in defined}
        return reads, defined

    def dry_run(self, graph, prefix: str) -> int | None:
        """FLOPs of a subgraph (None when its shapes are unknown), without keeping its ops."""
        sub = self.child()
        try:
            sub.walk(graph, prefix)
        except WorkloadError:
            return None
        return sum(op.flops for op in sub.ops)

    def graph_weights(self, graph) -> list[Tensor]:
        """Every weight a subgraph's nodes read as data: its own constants and outer ones."""
        sub = self.child()
        for g in _graphs(graph):
            sub.add_initializers(g)
            for n in g.node:
                if n.op_type == "Constant" and (c := _const_of(n)) is not None:
                    sub.consts[n.output[0]] = c
                elif n.op_type == "Identity" and n.input[0] in sub.consts:
                    c = sub.consts[n.input[0]]
                    sub.consts[n.output[0]] = _Const(c.shape, c.etype, c.value,
                                                     c.root or n.input[0])
        out: dict[str, Tensor] = {}
        for g in _graphs(graph):
            for n in g.node:
                skip = NON_DATA_INPUTS.get(n.op_type, ())
                for j, x in enumerate(n.input):
                    if x in sub.consts and j not in skip and (w := sub.weight(x)) is not None:
                        out.setdefault(w.name, w)
                        self.read.add(sub.consts[x].root or x)
        return list(out.values())

    def import_if(self, node, name: str) -> None:
        graphs = {a.name.removesuffix("_branch"): a.g for a in node.attribute}
        choice = self.branches.get(name) or self.branches.get(node.name)
        picked = self.auto.get(node.name)
        if choice is not None and choice not in graphs:
            raise WorkloadError(f"{self.fname}: branch {choice!r} for If node {name!r} must be "
                                "'then' or 'else'")
        cond = self.value(node.input[0])
        how = "chosen by --branch"
        flops: dict[str, int | None] = {}
        if choice is None and cond is not None:
            choice, how = ("then" if bool(cond.reshape(-1)[0]) else "else"), ""
        elif picked is not None:  # a second pass, shapes inferred through the picked branch
            choice, how = picked[0], "condition unknown statically, took the branch with more FLOPs"
            flops = {"else" if choice == "then" else "then": picked[1]}
        elif choice is None:
            flops = {k: self.dry_run(g, f"{name}/{k}/") for k, g in graphs.items()}
            known = [k for k in graphs if flops[k] is not None]
            choice = max(known, key=lambda k: (flops[k], k == "then")) if known else "then"
            how = "condition unknown statically, took the branch with more FLOPs"
        other = "else" if choice == "then" else "then"
        if how.startswith("condition"):
            self.auto[node.name] = (choice, flops.get(other))
        taken = graphs[choice]
        before = len(self.ops)
        # the taken branch's ops join the model; its outputs stand for the If's outputs
        self.walk(taken, f"{name}/{choice}/")
        for out, bout in zip(node.output, (o.name for o in taken.output), strict=False):
            if bout in self.producer:
                self.producer[out] = self.producer[bout]
            if bout in self.consts:
                self.consts[out] = self.consts[bout]
            if _concrete(self.shapes.get(out)) is None:
                self.shapes[out] = self.shapes.get(bout)
        ran = sum(op.flops for op in self.ops[before:])
        have = {w.name for op in self.ops for w in op.weights}
        idle = [w for w in self.graph_weights(graphs[other]) if w.name not in have]
        self.emit(_Stub("If", node.domain, node.input[:1], ()), name, 0, tuple(idle),
                  branch=choice, untaken_branch_params=sum(w.numel for w in idle))
        other_flops = flops[other] if other in flops else \
            self.dry_run(graphs[other], f"{name}/{other}/")
        if how and (other_flops != ran or idle):
            said = "unknown" if other_flops is None else f"{other_flops:,}"
            self.warnings.append(
                f"If node {name!r}: {how}: ran the {choice!r} branch ({ran:,} FLOPs; the "
                f"{other!r} branch has {said}); the {other!r} branch's "
                f"{sum(w.numel for w in idle):,} parameters are counted on op {name!r} (loaded "
                f"with the file, never computed); choose with --branch {name}=then|else")

    def import_loop(self, node, name: str) -> None:
        body = next(a.g for a in node.attribute if a.name == "body")
        sub = self.child()
        sub.walk(body, f"{name}/body/")
        per_iter = sum(op.flops for op in sub.ops)
        trips = None
        if node.op_type == "Loop":
            m = self.value(node.input[0]) if node.input and node.input[0] else None
            if m is not None:
                trips = int(m.reshape(-1)[0])
        else:
            n_scan = next(a.i for a in node.attribute if a.name == "num_scan_inputs")
            axes = next((list(a.ints) for a in node.attribute if a.name == "scan_input_axes"),
                        [0] * n_scan)
            first = _concrete(self.shapes.get(node.input[len(node.input) - n_scan]))
            if first is not None:
                trips = first[axes[0] if axes else 0]
        if node.op_type == "Loop":  # outputs: final loop-carried values, then scan outputs
            carried = len(node.input) - 2
            for k, out in enumerate(node.output):
                inner = _concrete(self.shapes.get(body.output[k + 1].name))
                if out and inner is not None and _concrete(self.shapes.get(out)) is None:
                    self.shapes[out] = inner if k < carried else ((trips or 1), *inner)
        reads, _ = self.outer_reads(body)
        self.read |= reads
        if trips is None:
            self.warnings.append(f"{node.op_type} node {name!r}: trip count not known "
                                 f"statically: FLOPs counted for 1 iteration ({per_iter:,})")
        self.emit(node, name, per_iter * (trips or 1), tuple(self.graph_weights(body)),
                  reads=tuple(sorted(reads)), trips=trips, flops_per_iteration=per_iter)

    # -- FLOPs --------------------------------------------------------------------------------
    def flops(self, node, name: str) -> int:
        """FLOPs of one node from its input/output shapes (a multiply-add counts 2)."""
        t = node.op_type
        if t not in SUPPORTED_OPS or node.domain not in DEFAULT_DOMAINS:
            return 0
        ins = [_concrete(self.shapes.get(x)) if x else None for x in node.input]
        outs = [_concrete(self.shapes.get(y)) if y else None for y in node.output]
        out = outs[0] if outs else None

        def need(shape, what: str) -> tuple[int, ...]:
            if shape is None:
                raise WorkloadError(
                    f"{self.fname}: cannot infer the {what} shape of {t} node {name!r}, so its "
                    "FLOPs are unknown; give the symbolic input dims (--dim NAME=VALUE) or "
                    "export with static shapes")
            return shape

        attrs = {a.name: a for a in node.attribute}
        if t in MATMUL_OPS:
            return _matmul_flops(node, t, ins, out, attrs, need)
        if t == "LRN":
            size = attrs["size"].i
            return (2 * size + 3) * math.prod(need(out, "output"))
        if t in DATA_DEPENDENT:
            self.warnings.append(f"{t} node {name!r}: its work depends on the data: counted "
                                 "as 0 FLOPs")
            return 0
        if t in MOVE:
            return 0
        if t in REDUCE:
            x = ins[0] if ins else None
            if x is None:
                self.unknown_shapes[f"{t} {name!r}"] = None
                return 0
            return REDUCE[t] * math.prod(x)
        if out is None:
            self.unknown_shapes[f"{t} {name!r}"] = None
            return 0
        n = math.prod(out)
        if t in ELEMENTWISE:
            return ELEMENTWISE[t] * n
        if t in VARIADIC:
            return (len([x for x in node.input if x]) - 1 + VARIADIC[t]) * n
        if t in POOL:
            k = attrs["kernel_shape"].ints if "kernel_shape" in attrs else [1]
            return n * math.prod(k)
        return 0


@dataclass(frozen=True)
class _Stub:
    """A node-like record for ops the importer adds itself (an If's untaken weights)."""

    op_type: str
    domain: str
    input: tuple[str, ...]
    output: tuple[str, ...]


def _matmul_flops(node, t: str, ins: list, out, attrs: dict, need) -> int:
    if t in ("Conv", "ConvInteger", "QLinearConv"):
        w = need(ins[3 if t == "QLinearConv" else 1], "weight")
        out_n = math.prod(need(out, "output"))
        has_bias = len(node.input) > (8 if t == "QLinearConv" else 2) and node.input[-1]
        return 2 * out_n * math.prod(w[1:]) + (out_n if has_bias else 0)
    if t == "ConvTranspose":
        x, w = need(ins[0], "input"), need(ins[1], "weight")
        macs = math.prod(x) * w[1] * math.prod(w[2:])  # weight (Cin, Cout/group, k...)
        out_n = math.prod(out) if out is not None else 0
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
    if t == "Einsum":
        return einsum_flops(attrs["equation"].s.decode(),
                            [need(s, f"operand {i}") for i, s in enumerate(ins)])
    # LSTM / GRU / RNN: X (seq, batch, input), W (dirs, gates*hidden, input)
    x, w = need(ins[0], "X"), need(ins[1], "W")
    gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[t]
    hidden = w[1] // gates
    seq, batch = (x[1], x[0]) if "layout" in attrs and attrs["layout"].i else (x[0], x[1])
    per_step = 2 * gates * hidden * (x[2] + hidden) + 10 * gates * hidden  # + gate math
    return w[0] * seq * batch * per_step


def einsum_flops(equation: str, shapes: list[tuple[int, ...]]) -> int:
    """FLOPs of an Einsum: every index combination once; with a summed index each operand
    pair is a multiply-add (2 FLOPs), without one a multiply (1); one operand: adds only."""
    eq = equation.replace(" ", "")
    lhs, _, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise WorkloadError(f"Einsum equation {equation!r} has {len(terms)} operands, the node "
                            f"{len(shapes)}")
    sizes: dict[str, int] = {}
    counts: dict[str, int] = {}
    for term, shape in zip(terms, shapes, strict=True):
        letters = list(term.replace("...", ""))
        n_ell = len(shape) - len(letters)
        full = term.replace("...", "".join(chr(0x100 + k) for k in range(max(n_ell, 0))))
        # ellipsis dims are right-aligned across operands: name them by distance from the end
        ell = [c for c in full if ord(c) >= 0x100]
        full = "".join(chr(0x100 + len(ell) - 1 - ell.index(c)) if ord(c) >= 0x100 else c
                       for c in full)
        if len(full) != len(shape):
            raise WorkloadError(f"Einsum term {term!r} does not match an operand of rank "
                                f"{len(shape)}")
        for c, d in zip(full, shape, strict=True):
            sizes[c] = max(sizes.get(c, 1), d)
            counts[c] = counts.get(c, 0) + 1
    if "->" in eq:
        out = set(rhs.replace("...", "")) | {c for c in sizes if ord(c) >= 0x100}
    else:
        out = {c for c, k in counts.items() if k == 1 or ord(c) >= 0x100}
    total = math.prod(sizes.values())
    summed = any(c not in out for c in sizes)
    if len(shapes) == 1:
        return total if summed else 0
    return (2 if summed else 1) * (len(shapes) - 1) * total


def parse_dims(items: Mapping[str, int] | list[str] | tuple[str, ...] | None) -> dict[str, int]:
    """`--dim name=value` strings (or a mapping) as {name: value}; bad entries are refused."""
    if not items:
        return {}
    pairs = items.items() if isinstance(items, Mapping) else \
        [tuple(s.split("=", 1)) if "=" in s else (s, None) for s in items]
    out: dict[str, int] = {}
    for k, v in pairs:
        try:
            value = int(v)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            value = 0
        if not k or value < 1 or isinstance(v, bool):
            raise WorkloadError(f"bad dim {k}={v}: give NAME=VALUE with a whole number >= 1, "
                                "e.g. --dim height=640 (or INPUT:AXIS=VALUE for an unnamed dim)")
        out[str(k)] = value
    return out


def load_onnx(path: str | Path, *, name: str | None = None,
              dims: Mapping[str, int] | None = None, allow_unsupported: bool = False,
              branches: Mapping[str, str] | None = None) -> Model:
    """A Model from an ONNX file (see the module docstring for the rules). `dims` gives the
    symbolic input dims; `branches` picks If branches by node name ('then' / 'else')."""
    path = Path(path)
    proto = _read(path)
    g = proto.graph
    name = name or path.stem
    warnings: list[str] = []
    _set_dims(proto, parse_dims(dims), path.name, warnings)
    nodes = [n for sub in _graphs(g) for n in sub.node]
    unsupported = sorted({n.op_type if n.domain in DEFAULT_DOMAINS else f"{n.domain}.{n.op_type}"
                          for n in nodes
                          if n.op_type not in SUPPORTED_OPS or n.domain not in DEFAULT_DOMAINS})
    if unsupported and not allow_unsupported:
        first = {u: next(n.name or n.output[0] for n in nodes if u.endswith(n.op_type))
                 for u in unsupported}
        raise WorkloadError(f"{path.name}: unsupported ONNX op types "
                            f"{', '.join(f'{u} (node {first[u]!r})' for u in unsupported)}; "
                            f"their FLOPs and weights are unknown to the importer (supported: "
                            f"{', '.join(sorted(SUPPORTED_OPS))}; pass --allow-unsupported / "
                            "allow_unsupported=True to import them as 0-FLOP ops, flagged)")
    ifs = [n.name for n in nodes if n.op_type == "If"]
    for node_name, which in (branches or {}).items():
        if which not in ("then", "else"):
            raise WorkloadError(f"{path.name}: branch {which!r} for If node {node_name!r} must "
                                "be 'then' or 'else'")
        if node_name not in ifs:
            raise WorkloadError(f"{path.name}: no If node named {node_name!r}; If nodes: "
                                f"{', '.join(ifs) or 'none'}")
    elem_types = {i.data_type for i in g.initializer}
    auto: dict[str, tuple[str, int | None]] = {}
    for _ in range(4):  # again when If branches were picked: shapes then follow them
        inferred = list(warnings)
        forced = {k: v[0] for k, v in auto.items()} | dict(branches or {})
        shapes, values = _infer(proto, path.name, inferred, forced)
        imp = _Import(name, path.name, shapes, values, branches or {}, allow_unsupported,
                      auto=dict(auto), warnings=inferred)
        imp.float_dtype = "fp16" if 10 in elem_types or 16 in elem_types else "fp32"
        imp.consumed = {x for sub in _graphs(g) for n in sub.node for x in n.input}
        imp.consumed |= {o.name for sub in _graphs(g) for o in sub.output}
        imp.walk(g)
        if imp.auto == auto or not imp.unknown_shapes:
            break
        auto = imp.auto
    warnings = imp.warnings
    if not imp.ops:
        raise WorkloadError(f"{path.name}: the graph has no compute nodes")
    model_weights = {t.name for op in imp.ops for t in op.weights}
    unread = [c for k, c in imp.consts.items() if k not in imp.read
              and f"{name}/{k}" not in model_weights and ONNX_DTYPES.get(c.etype) and c.shape]
    if unread:
        warnings.append(f"{len(unread)} constant tensors ({sum(math.prod(c.shape) for c in unread):,}"
                        " elements) are read by no node: not counted")
    if imp.unknown_shapes:
        warnings.append(f"{len(imp.unknown_shapes)} ops have shapes the importer could not infer "
                        f"(first: {', '.join(list(imp.unknown_shapes)[:3])}): their per-element FLOPs "
                        "and activation sizes count as 0; give the symbolic dims (--dim) or "
                        "export with static shapes")
    if unsupported:
        warnings.append(f"unsupported ops imported as 0-FLOP ops: {', '.join(unsupported)}; "
                        "their weights are counted as stored")
    opset = next((o.version for o in proto.opset_import if o.domain in DEFAULT_DOMAINS), "?")
    desc = f"imported from {path.name} (opset {opset})"
    if unsupported:
        desc += f"; unsupported ops imported with 0 FLOPs: {', '.join(unsupported)}"
    return Model(name, imp.ops, dict.fromkeys(imp.edges), family="onnx",
                 source=f"ONNX file {path.name}", description=desc, warnings=warnings)

