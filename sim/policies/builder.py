"""Helpers every policy uses to turn a Workload into Schedule steps."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple

from hwprofiles.schema import HardwareProfile
from sim.lowering import op_class
from sim.schedule import Compute, Free, InvocationInfo, Load, Schedule
from workloads.model import Op
from workloads.workload import Workload, recording


class Unit(NamedTuple):
    """One op of one invocation, in global execution order (a tuple: an LLM has 10^5)."""

    pos: int
    inv: int
    op: Op


def units(workload: Workload) -> list[Unit]:
    """Every (invocation, op) in the order the GPU runs them."""
    ops = [(i, op) for i, inv in enumerate(workload.invocations) for op in inv.model.ops]
    return list(map(Unit._make, [(k, i, op) for k, (i, op) in enumerate(ops)]))


def default_dst(profile: HardwareProfile, nbytes: int) -> str:
    """Where a framework keeps a weight: a texture on GPUs that prefer them, if it fits one
    allocation; otherwise a plain buffer."""
    if profile.gpu.prefers_texture and nbytes <= profile.gpu.max_alloc:
        return "texture"
    return "buffer"


class Builder:
    """Accumulates a Schedule, wiring each compute's activation inputs automatically."""

    def __init__(self, policy: str, workload: Workload, profile: HardwareProfile,
                 budget: int | None):
        self.workload = workload
        self.profile = profile
        self.schedule = Schedule(
            policy=policy, workload=workload.name, profile=profile.name, budget_bytes=budget,
            tensor_bytes={n: t.nbytes for n, t in workload.tensors.items()},
            invocations=[InvocationInfo(inv.label, inv.model.name, rec) for inv, rec in
                         zip(workload.invocations, recording(workload.invocations), strict=True)])
        self._compute_ids: list[dict[str, int]] = [{} for _ in workload.invocations]
        # per invocation: each op's predecessors (the model's own table)
        self._preds = [inv.model._structure.predecessors for inv in workload.invocations]
        # tensors read in pieces from flash (gathered embedding rows): the piece size
        self._read_unit = {n: t.read_unit for n, t in workload.tensors.items() if t.read_unit}
        self._kernels: dict[int, tuple] = {}  # per op object: what every compute of it repeats

    def nbytes(self, tensors: Iterable[str]) -> int:
        tb = self.schedule.tensor_bytes
        return sum([tb[t] for t in tensors])

    def load(self, tensors: Iterable[str], after: Iterable[int] = (), path: str = "via_buffer",
             dst: str | None = None, layout: dict | None = None, read_bytes: int | None = None,
             copy_after: Iterable[int] = (), preallocated: bool = False) -> int:
        tensors = tuple(tensors)
        nbytes = self.nbytes(tensors)
        steps = self.schedule.steps
        ru = self._read_unit
        pieces = [u for u in (ru.get(t, 0) for t in tensors) if u] if ru else ()
        steps.append(Load(len(steps), tensors, nbytes, path,
                          dst or default_dst(self.profile, nbytes), tuple(after), "flash",
                          layout, min(pieces) if pieces else None, read_bytes,
                          _distinct(copy_after), preallocated))
        return len(steps) - 1

    def _kernel(self, op: Op) -> tuple:
        k = self._kernels.get(id(op))
        if k is None:
            k = self._kernels[id(op)] = (
                op.kind, op.dtype, op.flops, tuple(dict.fromkeys(t.name for t in op.weights)),
                op.input_bytes, op.output_bytes, op.workspace_bytes, op.state_bytes,
                op_class(op), op)  # the op itself keeps its id unique while cached
        return k

    def weight_names(self, op: Op) -> tuple[str, ...]:
        """The distinct weight tensors `op` reads, in order."""
        return self._kernel(op)[3]

    def compute(self, unit: Unit, after: Iterable[int] = (), after_read: Iterable[int] = ()
                ) -> int:
        op = unit.op
        k = self._kernels.get(id(op)) or self._kernel(op)
        inv = unit.inv
        ids = self._compute_ids[inv]
        name = op.name
        steps = self.schedule.steps
        cid = len(steps)
        steps.append(Compute(cid, name, inv, k[0], k[1], k[2], k[3], k[4], k[5], k[6],
                             k[7], tuple([ids[p] for p in self._preds[inv][name]]),
                             _distinct(after), k[8], _distinct(after_read)))
        ids[name] = cid
        return cid

    def free(self, tensors: Iterable[str], after: Iterable[int]) -> int:
        steps = self.schedule.steps
        steps.append(Free(len(steps), tuple(tensors), tuple(dict.fromkeys(after))))
        return len(steps) - 1


def _distinct(ids: Iterable[int]) -> tuple[int, ...]:
    """`ids` once each, in order."""
    if type(ids) is not tuple:
        ids = tuple(ids)
    if len(ids) < 2 or (len(ids) == 2 and ids[0] != ids[1]):
        return ids
    return tuple(dict.fromkeys(ids))


def next_uses(seq: list[Unit]) -> Iterator[dict[str, int | None]]:
    """For each unit, the position of the next unit using each of its tensors (None if none)."""
    nxt: dict[str, int | None] = {}
    out: list[dict[str, int | None]] = []
    for u in reversed(seq):
        names = dict.fromkeys(t.name for t in u.op.weights)
        out.append({t: nxt.get(t) for t in names})
        for t in names:
            nxt[t] = u.pos
    return reversed(out)


def expected_ops(workload: Workload) -> dict[int, list[str]]:
    """invocation index -> op names, for `validate_schedule`."""
    return {i: list(inv.model.order) for i, inv in enumerate(workload.invocations)}


__all__ = ["Builder", "Compute", "Free", "Load", "Unit", "default_dst", "expected_ops",
           "next_uses", "units"]
