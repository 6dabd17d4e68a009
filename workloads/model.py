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
from functools import cached_property, lru_cache

import networkx as nx
import numpy as np

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
    # bytes of one contiguous piece on flash when the tensor is read in pieces (the rows an
    # embedding gather touches); 0 = stored contiguously
    read_unit: int = 0
    _nbytes: int = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        for d in self.shape:
            if not isinstance(d, int) or d <= 0:
                raise WorkloadError(f"tensor {self.name!r} has a non-positive dimension: "
                                    f"{self.shape}")
        check_format(self.dtype)
        object.__setattr__(self, "_nbytes", self.format.nbytes(self.shape))

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
        return self._nbytes

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
    # activation bytes read, written, scratch and appended state (from the elements and dtype)
    _bytes: tuple[int, int, int, int] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if min(self.flops, self.input_elems, self.output_elems, self.workspace_elems,
               self.state_elems) < 0:
            for attr in ("flops", "input_elems", "output_elems", "workspace_elems",
                         "state_elems"):
                if getattr(self, attr) < 0:
                    raise WorkloadError(f"op {self.name!r}: {attr} is negative "
                                        f"({getattr(self, attr)})")
        check_format(self.dtype)
        e = elem_bytes(activation_dtype(self.dtype))
        object.__setattr__(self, "_bytes", (
            math.ceil(self.input_elems * e), math.ceil(self.output_elems * e),
            math.ceil(self.workspace_elems * e), math.ceil(self.state_elems * e)))

    @property
    def act_dtype(self) -> str:
        return activation_dtype(self.dtype)

    @property
    def weight_bytes(self) -> int:
        return sum(t.nbytes for t in self.weights)

    @property
    def input_bytes(self) -> int:
        return self._bytes[0]

    @property
    def output_bytes(self) -> int:
        return self._bytes[1]

    @property
    def workspace_bytes(self) -> int:
        return self._bytes[2]

    @property
    def state_bytes(self) -> int:
        return self._bytes[3]

    def with_dtype(self, dtype: str, tensor_dtypes: Mapping[str, str] | None = None) -> Op:
        """This op with weights (and compute) in format `dtype` (see `storage_dtype`);
        `tensor_dtypes` overrides per tensor."""
        tensor_dtypes = tensor_dtypes or {}
        weights = tuple(t.with_dtype(tensor_dtypes.get(t.name) or storage_dtype(dtype, t.shape))
                        for t in self.weights)
        return replace(self, dtype=check_format(dtype), weights=weights)


@dataclass(frozen=True)
class _Structure:
    """The graph of a model without its ops: names, edges, execution order, predecessors."""

    graph: nx.DiGraph
    index: dict[str, int]
    order: tuple[str, ...]
    predecessors: dict[str, tuple[str, ...]]
    out_degree: dict[str, int]
    # liveness in execution order: after the op at position dies_at[j] has run, the output of
    # the op at position dies_pos[j] has had its last consumer (or never had one)
    dies_at: np.ndarray
    dies_pos: np.ndarray


@lru_cache(maxsize=256)
def _structure(model: str, names: tuple[str, ...], edges: tuple[tuple[str, str], ...]
               ) -> _Structure:
    """Build (once per distinct graph: every decode step of an LLM has the same one) and check
    a model's graph; raises WorkloadError for duplicate names, unknown ends and cycles."""
    g = nx.DiGraph()
    for i, n in enumerate(names):
        if n in g:
            raise WorkloadError(f"model {model!r}: op name {n!r} is used twice")
        g.add_node(n, index=i)
    for src, dst in edges:
        for end in (src, dst):
            if end not in g:
                raise WorkloadError(f"model {model!r}: edge {src!r} -> {dst!r} names unknown op "
                                    f"{end!r}")
        g.add_edge(src, dst)
    if not nx.is_directed_acyclic_graph(g):
        cycle = nx.find_cycle(g)
        raise WorkloadError(f"model {model!r} has a cycle: {cycle}")
    index = {n: i for i, n in enumerate(names)}
    order = tuple(nx.lexicographical_topological_sort(g, key=index.__getitem__))
    preds = {n: tuple(sorted(g.predecessors(n), key=index.__getitem__)) for n in names}
    degree = {n: g.out_degree(n) for n in names}
    remaining = dict(degree)
    pos = {n: k for k, n in enumerate(order)}
    dies_at: list[int] = []
    dies_pos: list[int] = []
    for k, n in enumerate(order):
        for q in preds[n]:
            remaining[q] -= 1
            if remaining[q] == 0:
                dies_at.append(k)
                dies_pos.append(pos[q])
        if remaining[n] == 0:
            dies_at.append(k)
            dies_pos.append(k)
    return _Structure(g, index, order, preds, degree, np.array(dies_at, dtype=np.int64),
                      np.array(dies_pos, dtype=np.int64))


class Model:
    """A DNN as a DAG of ops with a deterministic execution order (topological, ties broken by
    the order in which ops were added). Models with the same op names and edges (the decode
    steps of an LLM) share one graph structure."""

    def __init__(self, name: str, ops: Iterable[Op], edges: Iterable[tuple[str, str]] = (),
                 *, family: str = "", source: str = "", published_params: int | None = None,
                 description: str = "", warnings: Iterable[str] = ()):
        self.name = name
        self.family = family
        self.source = source
        self.published_params = published_params
        self.description = description
        self.warnings = tuple(warnings)  # what an importer could not know (shown to the user)
        ops = list(ops)
        edges = tuple((str(a), str(b)) for a, b in edges)
        try:
            st = _structure(name, tuple(op.name for op in ops), edges)
        except TypeError:  # an unhashable name: no caching, same checks
            st = _structure.__wrapped__(name, tuple(op.name for op in ops), edges)
        self._structure = st
        self.graph = st.graph
        self._by_name = {op.name: op for op in ops}
        seen: dict[str, Tensor] = {}
        for op in ops:
            for t in op.weights:
                prev = seen.setdefault(t.name, t)
                if prev is not t and prev.shape != t.shape:
                    raise WorkloadError(f"model {name!r}: tensor {t.name!r} has two shapes")

    @property
    def order(self) -> tuple[str, ...]:
        return self._structure.order

    @cached_property
    def ops(self) -> tuple[Op, ...]:
        by_name = self._by_name
        return tuple(by_name[n] for n in self._structure.order)

    def op(self, name: str) -> Op:
        return self._by_name[name]

    @property
    def _predecessors(self) -> dict[str, tuple[str, ...]]:
        return self._structure.predecessors

    def predecessors(self, name: str) -> tuple[str, ...]:
        """Ops whose outputs `name` reads, in the order they were added."""
        return self._structure.predecessors[name]

    def out_degree(self, name: str) -> int:
        """How many ops read `name`'s output."""
        return self._structure.out_degree[name]

    @property
    def insertion_order(self) -> tuple[str, ...]:
        """Op names in the order they were added."""
        return tuple(self._structure.index)

    @property
    def edges(self) -> tuple[tuple[str, str], ...]:
        return tuple(self.graph.edges)

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
        old = [self._by_name[n] for n in self.insertion_order]
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
    consumed (an output lives until its last consumer has run), the op's own output and
    workspace, and the persistent state (KV cache) so far, starting from `state` bytes of state
    carried in from earlier invocations."""
    ops = model.ops
    if not ops:
        return []
    st = model._structure
    out = np.array([op.output_bytes for op in ops], dtype=np.int64)
    work = np.array([op.workspace_bytes for op in ops], dtype=np.int64)
    kv = np.cumsum(np.array([op.state_bytes for op in ops], dtype=np.int64)) + state
    freed = np.zeros(len(ops), dtype=np.int64)
    np.add.at(freed, st.dies_at, out[st.dies_pos])
    live = np.concatenate(([0], np.cumsum(out - freed)[:-1]))  # alive before each op runs
    return (live + out + work + kv).tolist()


def chain(name: str, ops: Iterable[Op], **kwargs: object) -> Model:
    """A model whose ops run one after another (each reads the previous op's output)."""
    ops = list(ops)
    edges = [(a.name, b.name) for a, b in zip(ops, ops[1:], strict=False)]
    return Model(name, ops, edges, **kwargs)  # type: ignore[arg-type]
