"""Op fusion: a model as a runtime lowers it, with chains of ops merged into single kernels.

Rules (a runtime profile names the ones its framework applies):
- `conv_bn`: a BatchNorm right after a convolution is folded into it at conversion time (the
  norm's scale goes into the conv weights, its shift becomes the conv's bias), as MNN, LiteRT,
  TVM, ncnn and Darknet do; the norm's own weight tensors disappear.
- `elementwise`: an `add` or `mul` runs in the epilogue of the kernel that produced one of its
  inputs (the one computed last), which then reads the other input directly.
- `attention`: scores -> softmax -> weighted sum run as one attention kernel, so the score
  matrix never reaches memory (flash-attention style kernels of LLM runtimes).

A fused op keeps the first op's name and position, sums the FLOPs, reads the chain's external
inputs, writes the last op's output; intermediate activations vanish.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from workloads.model import Model, Op, WorkloadError

RULES = ("conv_bn", "elementwise", "attention")
NORM_AFTER_CONV = ("batchnorm",)
EPILOGUE_KINDS = ("add", "mul")
ATTENTION_CHAIN = ("attention_qk", "softmax", "attention_av")


def _sole_consumer(model: Model, name: str) -> str | None:
    succ = list(model.graph.successors(name))
    return succ[0] if len(succ) == 1 else None


def _chains(model: Model, rules: Sequence[str]) -> list[list[str]]:
    """Op-name chains to merge, each in execution order; every op is in at most one chain."""
    taken: set[str] = set()
    chains: list[list[str]] = []
    position = {n: i for i, n in enumerate(model.order)}
    if "attention" in rules:
        for name in model.order:
            if model.op(name).kind != ATTENTION_CHAIN[0] or name in taken:
                continue
            chain = [name]
            for kind in ATTENTION_CHAIN[1:]:
                nxt = _sole_consumer(model, chain[-1])
                if nxt is None or model.op(nxt).kind != kind:
                    break
                chain.append(nxt)
            if len(chain) == len(ATTENTION_CHAIN):
                chains.append(chain)
                taken.update(chain)
    head_of: dict[str, list[str]] = {}
    if "conv_bn" in rules:
        for name in model.order:
            op = model.op(name)
            if op.kind != "conv" or name in taken:
                continue
            nxt = _sole_consumer(model, name)
            if nxt is not None and model.op(nxt).kind in NORM_AFTER_CONV and nxt not in taken \
                    and list(model.predecessors(nxt)) == [name]:
                chain = [name, nxt]
                chains.append(chain)
                taken.update(chain)
                head_of[nxt] = chain
    if "elementwise" in rules:
        for name in model.order:
            op = model.op(name)
            if op.kind not in EPILOGUE_KINDS or name in taken:
                continue
            preds = model.predecessors(name)
            if not preds:
                continue
            producer = max(preds, key=lambda p: position[p])  # computed last: still on chip
            if _sole_consumer(model, producer) != name or model.op(producer).kind in \
                    EPILOGUE_KINDS + ("concat", "slice", "embedding"):
                continue
            if producer in head_of:  # extend a conv+bn chain
                head_of[producer].append(name)
                taken.add(name)
                head_of[name] = head_of[producer]
            elif producer not in taken:
                chain = [producer, name]
                chains.append(chain)
                taken.update(chain)
                head_of[name] = chain
    return chains


def fusion_chains(model: Model, rules: Iterable[str]) -> list[list[str]]:
    """The op-name chains `rules` would merge in `model`, each in execution order."""
    return _chains(model, tuple(rules))


def _merge(model: Model, chain: list[str]) -> Op:
    """One op doing the work of `chain` (see the module docstring)."""
    ops = [model.op(n) for n in chain]
    head = ops[0]
    weights = list(head.weights)
    flops = head.flops
    input_elems = head.input_elems
    state = head.state_elems
    workspace = head.workspace_elems
    attrs = dict(head.attrs)
    for prev, op in zip(ops, ops[1:], strict=False):
        flops += op.flops
        input_elems += max(0, op.input_elems - prev.output_elems)
        state += op.state_elems
        workspace = max(workspace, op.workspace_elems)
        if op.kind in NORM_AFTER_CONV and prev is head and head.kind == "conv":
            # folded: the norm's shift becomes the conv's bias if it had none
            if len(head.weights) == 1 and len(op.weights) == 2:
                weights.append(op.weights[1])
            if op.attrs.get("act"):
                attrs["act"] = op.attrs["act"]
        else:
            weights += [t for t in op.weights if t not in weights]
    kind = "attention" if head.kind == ATTENTION_CHAIN[0] else head.kind
    if kind == "attention":
        workspace = 0  # the score matrix stays on chip
    attrs["fused"] = tuple(chain)
    return replace(head, kind=kind, flops=flops, weights=tuple(weights),
                   input_elems=input_elems, output_elems=ops[-1].output_elems,
                   workspace_elems=workspace, state_elems=state, attrs=attrs)


def fuse(model: Model, rules: Iterable[str]) -> Model:
    """`model` with the ops that `rules` fuse merged into single kernels (itself if none)."""
    rules = tuple(rules)
    unknown = [r for r in rules if r not in RULES]
    if unknown:
        raise WorkloadError(f"unknown fusion rule(s) {unknown}; valid rules: {', '.join(RULES)}")
    chains = _chains(model, rules) if rules else []
    if not chains:
        return model
    owner = {n: c[0] for c in chains for n in c}
    merged = {c[0]: _merge(model, c) for c in chains}
    ops = [merged.get(n, model.op(n)) for n in model.insertion_order if owner.get(n, n) == n]
    edges = dict.fromkeys((owner.get(a, a), owner.get(b, b)) for a, b in model.graph.edges)
    return Model(model.name, ops, [e for e in edges if e[0] != e[1]], family=model.family,
                 source=model.source, published_params=model.published_params,
                 description=model.description)
