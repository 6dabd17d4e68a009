"""Workload transforms for streaming at LLM scale: embedding rows and weight tiles.

`gather_rows`: an embedding lookup reads only the rows its tokens touch. Each embedding op's
table is replaced by a tensor of those rows (the table's name + `.rows@` + the invocation that
looks them up), read from flash one row at a time (`Tensor.read_unit`: each row is its own
request to storage); the table itself never has to be in memory. A table the LM head also uses
(tied) stays a weight of the LM head only.

`tile_workload`: an op whose weights exceed a size limit runs as partial kernels over row tiles
of them (row = the weights' first axis: output features of a linear layer, output channels of
a convolution, vocabulary rows of an LM head). Tile i of k holds rows [i*R/k, (i+1)*R/k) of
every weight that has the op's R rows (a bias too), its kernel does the same share of the FLOPs
and writes the same share of the output, and reads the whole input; each partial kernel pays
its own launch (the executors charge every kernel). The consumers read every tile's output.

Both are pure functions of immutable inputs (memoised: a sweep or a planner trying several
budgets gets the same transformed workload back).
"""

from __future__ import annotations

import math
from dataclasses import replace
from functools import lru_cache

from workloads.model import Model, Op, Tensor
from workloads.workload import Workload

TILEABLE = ("linear", "matmul", "gemm", "conv")  # kinds whose weights' rows are output rows


def _rows_tensor(table: Tensor, rows: int, tag: str) -> Tensor:
    """The `rows` rows of `table` a lookup reads, as a tensor read a row at a time."""
    per_row = max(1, math.ceil(table.nbytes / table.shape[0]))
    return Tensor(f"{table.name}.rows@{tag}", (rows, *table.shape[1:]), table.dtype,
                  table.group_size, read_unit=per_row)


def _gathers(model: Model, tag: str) -> Model:
    ops, changed = [], False
    for name in model.insertion_order:
        op = model.op(name)
        rows = op.attrs.get("gather_rows") if op.kind == "embedding" else None
        if rows and len(op.weights) == 1 and len(op.weights[0].shape) == 2 \
                and 0 < int(rows) < op.weights[0].shape[0]:
            table = op.weights[0]
            op = Op(op.name, op.kind, op.flops, (_rows_tensor(table, int(rows), tag),),
                    op.input_elems, op.output_elems, op.workspace_elems, op.state_elems,
                    op.dtype, {**op.attrs, "rows_of": table.name})
            changed = True
        ops.append(op)
    if not changed:
        return model
    return Model(model.name, ops, model.edges, family=model.family, source=model.source,
                 published_params=model.published_params, description=model.description,
                 warnings=model.warnings)


@lru_cache(maxsize=4)
def gather_rows(workload: Workload) -> Workload:
    """`workload` with every embedding lookup reading only its tokens' rows (see the module
    docstring); itself when it has none."""
    done: dict[int, Model] = {}
    invs, changed = [], False
    for inv in workload.invocations:
        key = id(inv.model)
        if key not in done:
            done[key] = _gathers(inv.model, inv.label)
        changed |= done[key] is not inv.model
        invs.append(replace(inv, model=done[key]))
    if not changed:
        return workload
    return Workload(workload.name, tuple(invs), workload.description)


def _split(total: int, shares: list[int]) -> list[int]:
    """`total` split in proportion to `shares`, whole numbers summing to `total` exactly
    (largest remainders first)."""
    whole = sum(shares)
    exact = [total * s / whole for s in shares]
    out = [math.floor(x) for x in exact]
    for k in sorted(range(len(out)), key=lambda k: out[k] - exact[k])[:total - sum(out)]:
        out[k] += 1
    return out


def tile_op(op: Op, k: int) -> list[Op]:
    """`op` as `k` partial kernels over row tiles of its weights (see the module docstring)."""
    rows = max(t.shape[0] for t in op.weights)
    k = max(1, min(k, rows))
    bounds = [rows * i // k for i in range(k + 1)]
    sizes = [bounds[i + 1] - bounds[i] for i in range(k)]
    flops, outs, work = (_split(v, sizes) for v in (op.flops, op.output_elems,
                                                    op.workspace_elems))
    parts = []
    for i, r in enumerate(sizes):
        weights = []
        for t in op.weights:
            if t.shape[0] == rows:
                weights.append(Tensor(f"{t.name}.tile{i}of{k}", (r, *t.shape[1:]), t.dtype,
                                      t.group_size, t.read_unit))
            elif i == 0:  # not along the output rows: read whole, by the first tile
                weights.append(t)
        parts.append(Op(f"{op.name}.tile{i}of{k}", op.kind, flops[i], tuple(weights),
                        op.input_elems, outs[i], work[i], op.state_elems if i == 0 else 0,
                        op.dtype, {**op.attrs, "tile": (i, k), "tiled": op.name}))
    return parts


def _tiles(model: Model, limit: int, shared: frozenset[str]) -> Model:
    replaced: dict[str, list[str]] = {}
    ops: list[Op] = []
    for name in model.insertion_order:
        op = model.op(name)
        if op.kind in TILEABLE and op.weights and op.weight_bytes > limit \
                and not any(t.name in shared for t in op.weights):
            parts = tile_op(op, math.ceil(op.weight_bytes / limit))
            if len(parts) > 1:
                replaced[name] = [p.name for p in parts]
                ops += parts
                continue
        ops.append(op)
    if not replaced:
        return model
    edges = [(a, b) for src, dst in model.edges for a in replaced.get(src, [src])
             for b in replaced.get(dst, [dst])]
    return Model(model.name, ops, edges, family=model.family, source=model.source,
                 published_params=model.published_params, description=model.description,
                 warnings=model.warnings)


@lru_cache(maxsize=8)
def tile_workload(workload: Workload, limit: int) -> Workload:
    """`workload` with every linear, matmul or convolution whose weights exceed `limit` bytes
    split into as few row tiles as keep each under it (itself when none does). A tensor another
    kind of op also reads (an untransformed embedding table tied to the LM head) is not tiled:
    that op would still need it whole."""
    if limit <= 0:
        raise ValueError(f"tile limit must be positive, found {limit}")
    users: dict[str, set[str]] = {}
    for inv in workload.invocations:
        for op in inv.model.ops:
            for t in op.weights:
                users.setdefault(t.name, set()).add(op.kind)
    shared = frozenset(n for n, kinds in users.items() if not kinds <= set(TILEABLE))
    done: dict[int, Model] = {}
    invs, changed = [], False
    for inv in workload.invocations:
        key = id(inv.model)
        if key not in done:
            done[key] = _tiles(inv.model, limit, shared)
        changed |= done[key] is not inv.model
        invs.append(replace(inv, model=done[key]))
    if not changed:
        return workload
    return Workload(workload.name, tuple(invs), workload.description)
