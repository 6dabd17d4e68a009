"""A layer-by-layer graph builder for the zoo: each call adds one op with its own weights, FLOPs
and activation sizes (batch 1), and wires it to the ops whose outputs it reads.

FLOP conventions (also in docs/models.md): a multiply-add counts 2; a bias add counts 1 per
output element; an activation fused into the op before it adds `ACT_FLOPS` per output element;
elementwise and normalisation ops count `ELEMENTWISE_FLOPS` per element they write.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from workloads.model import Model, Op, Tensor, WorkloadError, storage_dtype

# FLOPs per output element of an activation fused into a conv / linear / norm op
ACT_FLOPS: dict[str, int] = {"": 0, "relu": 1, "relu6": 2, "leaky": 2, "silu": 4, "gelu": 8,
                             "quick_gelu": 4, "mish": 6, "sigmoid": 4, "tanh": 4}
# FLOPs per output element of a standalone elementwise / normalisation op
ELEMENTWISE_FLOPS: dict[str, int] = {"add": 1, "mul": 1, "concat": 0, "upsample": 0,
                                     "maxpool": 0, "avgpool": 1, "softmax": 5, "layernorm": 8,
                                     "rmsnorm": 4, "groupnorm": 8, "batchnorm": 2,
                                     "embedding": 0, "geglu": 9, "swiglu": 5}


@dataclass(frozen=True, slots=True)
class Act:
    """An activation: the op that wrote it (None = model input) and its shape (batch 1)."""

    src: str | None
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def conv_out(size: int, k: int, stride: int, pad: int, ceil: bool = False) -> int:
    """Spatial output size of a convolution or pooling window (`ceil`: PyTorch's ceil_mode, a
    last partial window counts if it starts inside the input or its left padding);
    WorkloadError when the window does not fit the input (an image too small for the model)."""
    if ceil:
        out = -(-(size + 2 * pad - k) // stride) + 1
        out = out - 1 if (out - 1) * stride >= size + pad else out
    else:
        out = (size + 2 * pad - k) // stride + 1
    if out < 1:
        raise WorkloadError(f"a {k}x{k} window (stride {stride}, padding {pad}) does not fit an "
                            f"input {size} wide: the image is too small for this model")
    return out


@lru_cache(maxsize=1 << 16)
def _tensor(name: str, shape: tuple[int, ...], dtype: str) -> Tensor:
    """One Tensor object per distinct weight: every build of a model (each decode step of an
    LLM) shares them."""
    return Tensor(name, shape, dtype)


@lru_cache(maxsize=1 << 17)
def _op(name: str, kind: str, flops: int, weights: tuple[Tensor, ...], input_elems: int,
        output_elems: int, workspace: int, state: int, dtype: str,
        attrs: tuple[tuple[str, object], ...]) -> Op:
    """One Op object per distinct op (immutable): the decode steps of an LLM differ only in
    their attention ops and share the rest."""
    return Op(name, kind, flops, weights, input_elems, output_elems, workspace, state, dtype,
              dict(attrs))


class GraphBuilder:
    """Accumulates ops and edges for one model; tensor names get the `model/` prefix."""

    def __init__(self, model: str, dtype: str = "fp16"):
        self.model = model
        self.dtype = dtype
        self.ops: list[Op] = []
        self.edges: list[tuple[str, str]] = []
        self._tensors: dict[str, Tensor] = {}

    # -- plumbing -----------------------------------------------------------------------------
    def tensor(self, name: str, *shape: int) -> Tensor:
        """The weight `model/name` (created once; a second use with the same name shares it)."""
        full = f"{self.model}/{name}"
        t = self._tensors.get(full)
        if t is None:
            dims = tuple(int(d) for d in shape)
            t = self._tensors[full] = _tensor(full, dims, storage_dtype(self.dtype, dims))
        elif t.shape != tuple(shape):
            raise WorkloadError(f"tensor {full!r} reused with shape {shape}, was {t.shape}")
        return t

    def op(self, name: str, kind: str, inputs: Sequence[Act], out_shape: Sequence[int],
           flops: int, weights: Sequence[Tensor] = (), *, input_elems: int | None = None,
           workspace: int = 0, state: int = 0, **attrs: object) -> Act:
        """Add one op reading `inputs` and writing an activation of `out_shape`."""
        out_shape = tuple(map(int, out_shape))
        if input_elems is None:
            input_elems = sum([math.prod(a.shape) for a in inputs])
        args = (name, kind, int(flops), tuple(weights), int(input_elems), math.prod(out_shape),
                int(workspace), int(state), self.dtype)
        try:
            op = _op(*args, tuple(attrs.items()))
        except TypeError:  # an unhashable attribute value: build it uncached
            op = Op(*args, attrs=attrs)
        self.ops.append(op)
        self.edges += [(a.src, name) for a in inputs if a.src is not None]
        return Act(name, out_shape)

    def build(self, **meta: object) -> Model:
        return Model(self.model, self.ops, dict.fromkeys(self.edges), **meta)  # type: ignore[arg-type]

    # -- layers -------------------------------------------------------------------------------
    def conv2d(self, x: Act, name: str, cout: int, k: int | tuple[int, int], stride: int = 1,
               pad: int | None = None, groups: int = 1, bias: bool = True, act: str = "",
               wname: str | None = None) -> Act:
        """2-D convolution on a (C, H, W) activation; weight (cout, cin/groups, kh, kw); `k` a
        size or (kh, kw) (rectangular kernels pad each axis by half of it by default)."""
        cin, h, w = x.shape
        kh, kw = k if isinstance(k, tuple) else (k, k)
        ph, pw = (kh // 2, kw // 2) if pad is None else (pad, pad)
        ho, wo = conv_out(h, kh, stride, ph), conv_out(w, kw, stride, pw)
        wname = wname or name
        weights = [self.tensor(f"{wname}.weight", cout, cin // groups, kh, kw)]
        if bias:
            weights.append(self.tensor(f"{wname}.bias", cout))
        out = cout * ho * wo
        flops = 2 * out * (cin // groups) * kh * kw + (out if bias else 0) + ACT_FLOPS[act] * out
        return self.op(name, "conv", [x], (cout, ho, wo), flops, weights,
                       kernel=k, stride=stride, groups=groups, act=act)

    def linear(self, x: Act, name: str, out: int, bias: bool = True, act: str = "",
               weight: Tensor | None = None, wname: str | None = None) -> Act:
        """Fully connected layer on the last axis; weight (out, in) as PyTorch stores it."""
        cin = x.shape[-1]
        tokens = x.numel // cin
        wname = wname or name
        weights = [weight or self.tensor(f"{wname}.weight", out, cin)]
        if bias:
            weights.append(self.tensor(f"{wname}.bias", out))
        n = tokens * out
        flops = 2 * n * cin + (n if bias else 0) + ACT_FLOPS[act] * n
        return self.op(name, "linear", [x], (*x.shape[:-1], out), flops, weights, act=act)

    def norm(self, x: Act, name: str, kind: str = "layernorm", bias: bool = True,
             channel_axis: int = -1, act: str = "", wname: str | None = None,
             groups: int = 0) -> Act:
        """LayerNorm / RMSNorm / GroupNorm / BatchNorm with its own scale (and shift)."""
        c = x.shape[channel_axis]
        wname = wname or name
        weights = [self.tensor(f"{wname}.weight", c)]
        if bias:
            weights.append(self.tensor(f"{wname}.bias", c))
        flops = (ELEMENTWISE_FLOPS[kind] + ACT_FLOPS[act]) * x.numel
        attrs: dict[str, object] = {"act": act}
        if groups:
            attrs["groups"] = groups
        return self.op(name, kind, [x], x.shape, flops, weights, **attrs)

    def elementwise(self, name: str, kind: str, inputs: Sequence[Act],
                    out_shape: Sequence[int] | None = None) -> Act:
        """A weightless op (add, mul, softmax, concat, pool, upsample...)."""
        shape = tuple(out_shape) if out_shape is not None else inputs[0].shape
        return self.op(name, kind, inputs, shape, ELEMENTWISE_FLOPS[kind] * math.prod(shape))

    def add(self, name: str, a: Act, b: Act) -> Act:
        return self.elementwise(name, "add", [a, b])

    def concat(self, name: str, parts: Sequence[Act], axis: int = 0) -> Act:
        """Concatenate activations along `axis` (no FLOPs; a real op so the graph keeps both)."""
        shape = list(parts[0].shape)
        shape[axis] = sum(p.shape[axis] for p in parts)
        return self.elementwise(name, "concat", parts, shape)

    def embedding(self, name: str, table: Tensor, tokens: int, src: Act | None = None) -> Act:
        """Row gather from `table` (vocab, dim); the whole table is the op's weight."""
        dim = table.shape[-1]
        return self.op(name, "embedding", [src] if src else [], (tokens, dim), 0, [table],
                       input_elems=tokens, gather_rows=tokens)
