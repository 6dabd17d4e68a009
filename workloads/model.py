"""The Model type: a networkx graph of ops with weights, FLOPs and activation sizes.

Sizes are kept as element counts and turned into bytes by weight format (`workloads.formats`),
so one architecture serves fp32, fp16, int8, int4 and the quantized formats people deploy
(GGUF q4_0 / q8_0 / k-quants, AWQ / GPTQ int4, fp8): bit-width is a design-space axis. A
quantized tensor's bytes include its scales, zero points and indices. A model-level precision
may also be mixed per layer group (`workloads.precision`: 'q4_0,lm_head=q6_k').
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property

import networkx as nx

from workloads.formats import FormatError, get_format

DTYPE_BITS: dict[str, int] = {"fp32": 32, "fp16": 16, "int8": 8, "int4": 4}


class WorkloadError(ValueError):
    """Bad model, workload or importer input; the message names the problem and valid choices."""


def check_format(name: str) -> str:
    """Return `name` if it is a known weight format, else raise WorkloadError listing them."""
    try:
        get_format(name)
    except FormatError as exc:
        raise WorkloadError(str(exc)) from None
    return name


def check_dtype(dtype: str) -> str:
    """The canonical form of a model precision: a format name or a mixed-precision spec such as
    'q4_0,lm_head=q6_k'; WorkloadError (listing the valid choices) if it is neither."""
    from workloads.precision import parse_precision

    return parse_precision(dtype).name


def activation_dtype(weight_dtype: str) -> str:
    """Activations stay fp32 for fp32 models and fp16 otherwise (weight-only quantization)."""
    return "fp32" if weight_dtype == "fp32" else "fp16"


def storage_dtype(dtype: str, shape: tuple[int, ...]) -> str:
    """The format a tensor of `shape` is stored in when its layer is in `dtype`: quantized
    formats apply to matrices and kernels, while 1-D tensors (biases, norm scales) stay fp16, as
    weight-quantization schemes (GPTQ, AWQ, llama.cpp Q4) keep them."""
    return "fp16" if get_format(dtype).quantized and len(shape) < 2 else dtype


def elem_bytes(dtype: str) -> float:
    return DTYPE_BITS[dtype] / 8


@dataclass(frozen=True, slots=True)
class Tensor:
    """A weight tensor. `name` is unique across a workload: invocations of one model share it."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "fp16"  # a weight format name (workloads.formats)
    group_size: int = 0  # quantization group overriding the format's; 0 = the format's own

    def __post_init__(self) -> None:
        if any((not isinstance(d, int)) or d <= 0 for d in self.shape):
            raise WorkloadError(f"tensor {self.name!r} has a non-positive dimension: {self.shape}")
        check_format(self.dtype)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def format(self):
        """The tensor's weight format (with `group_size` applied where it is set)."""
        fmt = get_format(self.dtype)
        if self.group_size and fmt.quantized and fmt.grouping != "tensor":
            grouping = "flat" if fmt.grouping == "channel" else fmt.grouping
            fmt = replace(fmt, grouping=grouping, group=self.group_size)
        return fmt

    @property
    def scale_count(self) -> int:
        """Number of quantization groups (scales) stored with the tensor (0 for float formats)."""
        return self.format.groups(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes on flash and in memory, quantization scales, zero points and indices included."""
        return self.format.nbytes(self.shape)

    def with_dtype(self, dtype: str) -> Tensor:
        return replace(self, dtype=check_format(dtype))


@dataclass(frozen=True, slots=True)
class Op:
    """One operator: its FLOPs (a multiply-add counts 2), weights and activation sizes.

    `input_elems`/`output_elems` are activation elements read/written; `workspace_elems` is
    scratch memory held only while the op runs; `state_elems` is persistent state the op
    appends (an LLM's KV cache), kept to the end of the workload.
    """

    name: str
    kind: str
    flops: int
    weights: tuple[Tensor, ...] = ()
    input_elems: int = 0
    output_elems: int = 0
    workspace_elems: int = 0
    state_elems: int = 0
    dtype: str = "fp16"
    attrs: Mapping[str, object] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        for attr in ("flops", "input_elems", "output_elems", "workspace_elems", "state_elems"):
            if getattr(self, attr) < 0:
                raise WorkloadError(f"op {self.name!r}: {attr} is negative ({getattr(self, attr)})")
        check_format(self.dtype)

    @property
    def act_dtype(self) -> str:
        return activation_dtype(self.dtype)

    @property
    def weight_bytes(self) -> int:
        return sum(t.nbytes for t in self.weights)

    @property
    def input_bytes(self) -> int:
        return math.ceil(self.input_elems * elem_bytes(self.act_dtype))

    @property
    def output_bytes(self) -> int:
        return math.ceil(self.output_elems * elem_bytes(self.act_dtype))

    @property
    def workspace_bytes(self) -> int:
        return math.ceil(self.workspace_elems * elem_bytes(self.act_dtype))

    @property
    def state_bytes(self) -> int:
        return math.ceil(self.state_elems * elem_bytes(self.act_dtype))

    def with_dtype(self, dtype: str, tensor_dtypes: Mapping[str, str] | None = None) -> Op:
        """This op with weights (and compute) in format `dtype` (see `storage_dtype`);
        `tensor_dtypes` overrides per tensor."""
        tensor_dtypes = tensor_dtypes or {}
        weights = tuple(t.with_dtype(tensor_dtypes.get(t.name) or storage_dtype(dtype, t.shape))
                        for t in self.weights)
        return replace(self, dtype=check_format(dtype), weights=weights)


class Model:
    """A DNN as a DAG of ops with a deterministic execution order (topological, ties broken by
    the order in which ops were added)."""

    def __init__(self, name: str, ops: Iterable[Op], edges: Iterable[tuple[str, str]] = (),
                 *, family: str = "", source: str = "", published_params: int | None = None,
                 description: str = "", warnings: Iterable[str] = ()):
        self.name = name
        self.family = family
        self.source = source
        self.published_params = published_params
        self.description = description
        self.warnings = tuple(warnings)  # what an importer could not know (shown to the user)
        g = nx.DiGraph()
        for i, op in enumerate(ops):
            if op.name in g:
                raise WorkloadError(f"model {name!r}: op name {op.name!r} is used twice")
            g.add_node(op.name, op=op, index=i)
        for src, dst in edges:
            for end in (src, dst):
                if end not in g:
                    raise WorkloadError(f"model {name!r}: edge {src!r} -> {dst!r} names unknown op {end!r}")
            g.add_edge(src, dst)
        if not nx.is_directed_acyclic_graph(g):
            cycle = nx.find_cycle(g)
            raise WorkloadError(f"model {name!r} has a cycle: {cycle}")
        self.graph = g
        seen: dict[str, Tensor] = {}
        for op in self.ops:
            for t in op.weights:
                if t.name in seen and seen[t.name].shape != t.shape:
                    raise WorkloadError(f"model {name!r}: tensor {t.name!r} has two shapes")
                seen[t.name] = t

    @cached_property
    def order(self) -> tuple[str, ...]:
        idx = nx.get_node_attributes(self.graph, "index")
        return tuple(nx.lexicographical_topological_sort(self.graph, key=lambda n: idx[n]))

    @cached_property
    def ops(self) -> tuple[Op, ...]:
        nodes = self.graph.nodes
        return tuple(nodes[n]["op"] for n in self.order)

    def op(self, name: str) -> Op:
        return self.graph.nodes[name]["op"]

    @cached_property
    def _predecessors(self) -> dict[str, tuple[str, ...]]:
        idx = self.graph.nodes
        return {n: tuple(sorted(self.graph.predecessors(n), key=lambda m: idx[m]["index"]))
                for n in self.graph.nodes}

    def predecessors(self, name: str) -> tuple[str, ...]:
        """Ops whose outputs `name` reads, in the order they were added."""
        return self._predecessors[name]

    @cached_property
    def tensors(self) -> dict[str, Tensor]:
        """Distinct weight tensors in first-use order (a tensor shared by ops counts once)."""
        out: dict[str, Tensor] = {}
        for op in self.ops:
            for t in op.weights:
                out.setdefault(t.name, t)
        return out

    @property
    def param_count(self) -> int:
        return sum(t.numel for t in self.tensors.values())

    @property
    def weight_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors.values())

    @property
    def total_flops(self) -> int:
        return sum(op.flops for op in self.ops)

    @property
    def dtypes(self) -> set[str]:
        return {t.dtype for t in self.tensors.values()}

    def with_dtype(self, dtype: str, tensor_dtypes: Mapping[str, str] | None = None) -> Model:
        """A copy in precision `dtype`: one format ('q4_0') or mixed per layer group
        ('q4_0,lm_head=q6_k'); `tensor_dtypes` overrides single tensors by full name."""
        from workloads.precision import op_group, parse_precision, tensor_groups

        prec = parse_precision(dtype)
        tensor_dtypes = {k: check_format(v) for k, v in (tensor_dtypes or {}).items()}
        nodes = sorted(self.graph.nodes, key=lambda n: self.graph.nodes[n]["index"])
        old = [self.graph.nodes[n]["op"] for n in nodes]
        tgroup = tensor_groups(old) if prec.mixed else {}
        ops = []
        for op in old:
            fmt = prec.format_for(op_group(op)) if prec.mixed else prec.base
            per = {t.name: tensor_dtypes.get(t.name)
                   or storage_dtype(prec.format_for(tgroup.get(t.name, "other")), t.shape)
                   for t in op.weights}
            ops.append(op.with_dtype(fmt, per))
        return Model(self.name, ops, self.graph.edges, family=self.family, source=self.source,
                     published_params=self.published_params, description=self.description,
                     warnings=self.warnings)

    def __repr__(self) -> str:
        return (f"Model({self.name!r}, ops={len(self.graph)}, params={self.param_count:,}, "
                f"weight_bytes={self.weight_bytes:,})")


def activation_profile(model: Model, state: int = 0) -> list[int]:
    """Activation bytes held while each op runs (in execution order): live outputs not yet
    consumed, the op's own output and workspace, and the persistent state (KV cache) so far,
    starting from `state` bytes of state carried in from earlier invocations."""
    remaining = {n: model.graph.out_degree(n) for n in model.order}
    live = 0
    out: list[int] = []
    for op in model.ops:
        state += op.state_bytes
        out.append(live + op.output_bytes + op.workspace_bytes + state)
        live += op.output_bytes
        for p in model.predecessors(op.name):
            remaining[p] -= 1
            if remaining[p] == 0:
                live -= model.op(p).output_bytes
        if remaining[op.name] == 0:
            live -= op.output_bytes
    return out


def chain(name: str, ops: Iterable[Op], **kwargs: object) -> Model:
    """A model whose ops run one after another (each reads the previous op's output)."""
    ops = list(ops)
    edges = [(a.name, b.name) for a, b in zip(ops, ops[1:], strict=False)]
    return Model(name, ops, edges, **kwargs)  # type: ignore[arg-type]
