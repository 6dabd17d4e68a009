"""KV cache spill (MNN-LLM style): each attention layer keeps the KV of its `window` most recent
tokens in memory; older tokens' KV goes to flash and is read back, in blocks of `block` tokens
(one request each), by every attention op that needs it.

Attention ops with a full, growing self-attention cache carry `kv_token_elems` (the KV elements
one token adds to their cache: K for QK^T, V for AV; the zoo and the config importers set it).
For such an op in an invocation with `past` cached tokens of which `m` are in memory:
- the `past - m` spilled tokens are a tensor `{op}.kv@{invocation}` the op reads like a weight
  (streamed just before it, freed after; read `block` tokens per request), and no longer part of
  the activations it reads from memory;
- its `n` new tokens join the window: the op appends min(m + n, window) - m tokens of state, and
  the tokens pushed out of the window are written to flash (counted, not timed: the profiles
  model reads, not writes; MNN-LLM writes them back asynchronously).
Other ops (sliding-window caches, cross-attention, imported graphs without the attribute) are
left as they are.
"""

from __future__ import annotations

import math
from dataclasses import replace
from functools import lru_cache

from workloads.model import Model, Tensor, elem_bytes
from workloads.workload import Workload


def kv_token_bytes(workload: Workload) -> int:
    """KV bytes one token adds over every layer whose cache can spill (0: nothing can)."""
    for inv in workload.invocations:
        ops = [op for op in inv.model.ops if "kv_token_elems" in op.attrs]
        if ops:
            return sum(math.ceil(int(op.attrs["kv_token_elems"]) * elem_bytes(op.act_dtype))
                       for op in ops)
    return 0


def cached_tokens(workload: Workload) -> int:
    """The most tokens any spillable KV cache of `workload` ends up holding."""
    total: dict[tuple[str, str], int] = {}
    for inv in workload.invocations:
        for op in inv.model.ops:
            e = int(op.attrs.get("kv_token_elems", 0))
            if e:
                key = (inv.model.name, op.name)
                total[key] = total.get(key, 0) + op.state_elems // e
    return max(total.values(), default=0)


@lru_cache(maxsize=8)
def spill_kv(workload: Workload, window: int, block: int) -> tuple[Workload, int]:
    """`workload` with every growing KV cache kept to its `window` most recent tokens in memory
    (the rest on flash, read back in `block`-token requests), and the KV bytes written to flash;
    itself (and 0) when no cache outgrows the window."""
    if window < 1 or block < 1:
        raise ValueError(f"KV window and block must be at least 1 token, found {window}, {block}")
    resident: dict[tuple[str, str], int] = {}  # (model, op) -> tokens in memory
    total: dict[tuple[str, str], int] = {}  # (model, op) -> tokens cached so far
    written = 0
    invs, changed = [], False
    for inv in workload.invocations:
        ops, touched = [], False
        for op in inv.model.ops:
            e = int(op.attrs.get("kv_token_elems", 0))
            if not e:
                ops.append(op)
                continue
            key = (inv.model.name, op.name)
            m, past = resident.get(key, 0), total.get(key, 0)
            n = op.state_elems // e
            if op.attrs.get("past_tokens", past) != past:  # not the cache this walk tracks
                ops.append(op)
                continue
            keep = min(m + n, window)
            resident[key], total[key] = keep, past + n
            ebytes = elem_bytes(op.act_dtype)
            written += math.ceil((m + n - keep) * e * ebytes)
            spilled = past - m
            if not spilled and keep - m == n:
                ops.append(op)
                continue
            weights = op.weights
            if spilled:
                weights += (Tensor(f"{op.name}.kv@{inv.label}", (spilled, e), op.act_dtype,
                                   read_unit=math.ceil(block * e * ebytes)),)
            ops.append(replace(op, weights=weights, input_elems=op.input_elems - spilled * e,
                               state_elems=(keep - m) * e))
            touched = True
        model = inv.model
        if touched:
            model = Model(model.name, ops, list(model.edges), family=model.family,
                          source=model.source, published_params=model.published_params,
                          description=model.description, warnings=model.warnings)
            changed = True
        invs.append(replace(inv, model=model))
    if not changed:
        return workload, written
    return Workload(workload.name, tuple(invs), workload.description), written
