"""Which experts of a mixture-of-experts layer, and which FFN neurons of a sparse layer, each
invocation's tokens use: the layer then runs, and reads from flash, only those.

Both are assumptions about the data (routing decisions, activation patterns) that no weight
file states, so they are explicit inputs: a `Routing` names the popularity model (`skew` 0 =
uniform; s > 0 = expert or neuron j, in a seeded random order, chosen with probability
proportional to 1 / rank^s: a few hot ones) and the `seed` of the token-by-token draws. The
same layer keeps its popularity order across invocations (a hot expert stays hot), and every
draw is seeded, so a run is reproducible.

`route_experts`: a MoE op (kind `moe`, with the routing metadata importers and the zoo give it:
num_experts, experts_per_token, expert_tensors, expert_flops_per_token, tokens) becomes one
`moe_expert` kernel per expert its tokens chose (its own weights; the FLOPs of the tokens routed
to it) and a `combine` kernel (the router's softmax and the weighted sum). Each expert's weights
are then a group of their own: streamed when used, kept resident across tokens when the planner
finds that pays (an expert cache), and `Metrics.expert_hit_rate` counts how often a kernel
found its expert already in memory.

`sparse_ffn`: an MLP block (up [and gate] projection, activation, down projection) keeps a
`fraction` of its neurons per token (LLM in a flash, PowerInfer-2): a low-rank `predictor`
(rank `predictor_rank`) picks them, neurons are stored as bundles of `bundle` neurons (each up
[and gate] row with its down column: row-column bundling, read together as one request of the
bundle's size), and the block runs one `ffn_bundle` kernel per bundle its tokens activate plus a
`combine`. `Metrics.neuron_hit_rate` counts bundle kernels that found their bundle in memory.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, replace

import numpy as np

from workloads.model import Model, Op, Tensor, WorkloadError
from workloads.workload import Workload

# an MLP block as the zoo and the importers name it: (up, down) projection suffixes, gated
# blocks also have a gate projection and an elementwise product (gate_mul)
MLP_NAMES = (("up_proj", "down_proj"), ("c_fc", "c_proj"), ("fc1", "fc2"),
             ("dense_h_to_4h", "dense_4h_to_h"), ("w3", "w2"))


@dataclass(frozen=True)
class Routing:
    """The popularity model of routing draws: skew 0 = uniform; `seed` seeds every draw."""

    skew: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not (self.skew >= 0 and math.isfinite(self.skew)):
            raise WorkloadError(f"routing skew must be a number >= 0, found {self.skew!r}")

    def popularity(self, n: int, layer: str) -> np.ndarray:
        """Probabilities of the `n` choices of `layer` (the same order in every invocation)."""
        rng = np.random.default_rng([self.seed, zlib.crc32(layer.encode())])
        rank = rng.permutation(n)
        p = 1.0 / (rank + 1.0) ** self.skew
        return p / p.sum()

    def draw(self, n: int, k: int, tokens: int, layer: str, invocation: int) -> np.ndarray:
        """How many of `tokens` tokens chose each of the `n` choices, `k` distinct per token."""
        p = self.popularity(n, layer)
        rng = np.random.default_rng([self.seed, zlib.crc32(layer.encode()), invocation + 1])
        counts = np.zeros(n, dtype=np.int64)
        for _ in range(tokens):
            counts[rng.choice(n, size=k, replace=False, p=p)] += 1
        return counts


def _rebuild(model: Model, ops: list[Op], edges: list[tuple[str, str]]) -> Model:
    return Model(model.name, ops, edges, family=model.family, source=model.source,
                 published_params=model.published_params, description=model.description,
                 warnings=model.warnings)


def _route_moe(model: Model, routing: Routing, invocation: int) -> Model:
    swaps = {}
    for op in model.ops:
        if op.kind != "moe":
            continue
        a = op.attrs
        try:
            e, k = int(a["num_experts"]), int(a["experts_per_token"])
            names = a["expert_tensors"]
            per_token, tokens = int(a["expert_flops_per_token"]), int(a["tokens"])
        except (KeyError, TypeError, ValueError):
            raise WorkloadError(f"MoE op {op.name!r} has no routing metadata (num_experts, "
                                "experts_per_token, expert_tensors, expert_flops_per_token, "
                                "tokens): it cannot be routed") from None
        counts = routing.draw(e, k, tokens, op.name, invocation)
        by_name = {t.name: t for t in op.weights}
        d = op.output_elems // max(tokens, 1)
        experts = []
        for j in np.flatnonzero(counts):
            c = int(counts[j])
            experts.append(Op(f"{op.name}.expert{j}", "moe_expert", c * per_token,
                              tuple(by_name[n] for n in names[j]), c * d, c * d,
                              op.workspace_elems * c // max(tokens * k, 1), 0, op.dtype,
                              {"expert": int(j), "of": op.name, "tokens": c}))
        rest = op.flops - tokens * k * per_token
        combine = Op(f"{op.name}.combine", "add", max(rest, 0), (), op.input_elems,
                     op.output_elems, 0, op.state_elems, op.dtype,
                     {"of": op.name, "experts_used": len(experts)})
        entries = [x.name for x in experts] + [combine.name]
        inner = [(x.name, combine.name) for x in experts]
        swaps[op.name] = ([*experts, combine], inner, entries, combine.name)
    return _replace_blocks(model, swaps) if swaps else model


def route_experts(workload: Workload, routing: Routing) -> Workload:
    """Every MoE op of `workload` runs (and reads) only the experts its tokens chose (see the
    module docstring); each invocation draws its own routing."""
    return _per_invocation(workload, lambda m, i: _route_moe(m, routing, i))


def _per_invocation(workload: Workload, fn) -> Workload:
    invs, changed = [], False
    for i, inv in enumerate(workload.invocations):
        m = fn(inv.model, i)
        changed |= m is not inv.model
        invs.append(replace(inv, model=m))
    if not changed:
        return workload
    return Workload(workload.name, tuple(invs), workload.description)


def _mlp_blocks(model: Model) -> list[tuple[str, Op | None, Op, Op, Op | None]]:
    """(prefix, gate, up, down, gate_mul) of each MLP block the naming conventions find."""
    out = []
    by_name = {op.name: op for op in model.ops}
    for op in model.ops:
        for up_s, down_s in MLP_NAMES:
            if op.kind == "linear" and op.name.endswith("." + up_s):
                prefix = op.name[: -len(up_s) - 1]
                down = by_name.get(f"{prefix}.{down_s}")
                if down is None or not op.weights or not down.weights:
                    continue
                gate = by_name.get(f"{prefix}.gate_proj") or by_name.get(f"{prefix}.w1")
                mul = by_name.get(f"{prefix}.gate_mul") if gate else None
                out.append((prefix, gate, op, down, mul))
    return out


def _sparse_model(model: Model, fractions: dict[int, float], bundle: int, routing: Routing,
                  rank: int, invocation: int) -> Model:
    swaps = {}
    for layer, (prefix, gate, up, down, mul) in enumerate(_mlp_blocks(model)):
        frac = fractions.get(layer, fractions.get(-1))
        if frac is None or frac >= 1.0:
            continue
        w_up = up.weights[0]
        f, d = w_up.shape[0], w_up.shape[1]
        tokens = max(1, up.output_elems // f)
        nb = math.ceil(f / bundle)
        k = max(1, round(frac * nb))
        counts = routing.draw(nb, k, tokens, prefix, invocation)
        mats = 3 if gate is not None else 2
        dt = w_up.dtype
        per_row = max(1, math.ceil(w_up.nbytes / f))
        block = [x for x in (gate, up, mul, down) if x is not None]
        dense = sum(x.flops for x in block)  # the block's FLOPs for all its neurons
        pred = Op(f"{prefix}.predictor", "linear", tokens * 2 * (d * rank + rank * f),
                  (Tensor(f"{w_up.name}.predictor_a", (rank, d), "fp16"),
                   Tensor(f"{w_up.name}.predictor_b", (f, rank), "fp16")),
                  tokens * d, tokens * f, 0, 0, up.dtype, {"of": prefix, "rank": rank})
        bundles = []
        for j in np.flatnonzero(counts):
            c, n = int(counts[j]), min(bundle, f - int(j) * bundle)
            t = Tensor(f"{w_up.name}.bundle{j}", (mats * n, d), dt,
                       read_unit=mats * n * per_row)
            bundles.append(Op(f"{prefix}.bundle{j}", "ffn_bundle", dense * c * n // (tokens * f),
                              (t,), c * d, c * d, 0, 0, up.dtype,
                              {"bundle": int(j), "of": prefix, "tokens": c, "neurons": n}))
        # the rest of the block's weights (biases) go with the combine
        small = tuple(t for x in block for t in x.weights[1:])
        combine = Op(f"{prefix}.combine", "add", tokens * d * len(bundles), small,
                     tokens * d * max(len(bundles), 1), down.output_elems, 0, 0, down.dtype,
                     {"of": prefix, "bundles": len(bundles)})
        inner = [(pred.name, b.name) for b in bundles] + [(b.name, combine.name)
                                                           for b in bundles]
        if not bundles:
            inner.append((pred.name, combine.name))
        entries = [pred.name] + [b.name for b in bundles]
        swaps[block[0].name] = ([pred, *bundles, combine], inner, entries, combine.name,
                                *(x.name for x in block[1:]))
    if not swaps:
        return model
    return _replace_blocks(model, swaps)


def _replace_blocks(model: Model, swaps: dict) -> Model:
    """Replace each block (first op name -> new ops, inner edges, entries, exit, other block
    ops) and rewire: what fed the block feeds its entries, its exit feeds what it fed."""
    member = {}
    for first, s in swaps.items():
        for n in (first, *s[4:]):
            member[n] = first
    ops: list[Op] = []
    for name in model.insertion_order:
        if name in swaps:
            ops += swaps[name][0]
        elif name not in member:
            ops.append(model.op(name))
    edges: set[tuple[str, str]] = set()
    for src, dst in model.edges:
        bs, bd = member.get(src), member.get(dst)
        if bs is not None and bs == bd:
            continue  # inside one block
        a = swaps[bs][3] if bs is not None else src
        for b in (swaps[bd][2] if bd is not None else [dst]):
            edges.add((a, b))
    out = sorted(edges)
    for s in swaps.values():
        out += s[1]
    return _rebuild(model, ops, list(dict.fromkeys(out)))


def sparse_ffn(workload: Workload, fractions: dict[int, float], routing: Routing,
               bundle: int = 64, predictor_rank: int = 128) -> Workload:
    """Every MLP block runs (and reads) only the neuron bundles its tokens activate (see the
    module docstring); `fractions` maps a block's index in its model (-1: every block) to the
    fraction of its neurons one token activates."""
    for layer, frac in fractions.items():
        if not 0 < frac <= 1:
            which = "every MLP block" if layer == -1 else f"MLP block {layer}"
            raise WorkloadError(f"the activation fraction of {which} must be in (0, 1], "
                                f"found {frac}")
    if bundle < 1 or predictor_rank < 1:
        raise WorkloadError("bundle and predictor_rank must be at least 1")
    return _per_invocation(workload, lambda m, i: _sparse_model(m, fractions, bundle, routing,
                                                                 predictor_rank, i))
