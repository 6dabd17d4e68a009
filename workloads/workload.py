"""Workload scenarios: an ordered list of model invocations (one inference, repeats, LLM
prefill + decode, multi-DNN pipelines). Invocations of the same model share weight tensors by
name, so a policy may keep them resident across invocations."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from workloads.model import Model, Tensor, WorkloadError


@dataclass(frozen=True)
class Invocation:
    """One run of one model within a workload; `label` names it in traces ('decode[3]').
    `records`: whether a runtime that records its command buffers per input shape (re)records
    them before this run; None: as `recording` derives it from the labels."""

    model: Model
    label: str
    records: bool | None = None


def shape_group(label: str) -> str:
    """The part of an invocation label that names its input shape: 'decode[3]' -> 'decode'."""
    return label.split("[", 1)[0]


def recording(invocations: tuple[Invocation, ...] | list[Invocation]) -> list[bool]:
    """Per invocation, whether a runtime that records command buffers per input shape records
    them before it: the first invocation (nothing recorded yet, or the run before it had another
    shape: an LLM runner's prefill follows the warm-up's decode) and every one whose label group
    differs from the one before (prefill -> decode[0]), unless the invocation says otherwise
    (a steady-state decode step or benchmark loop: `records=False`)."""
    out, prev = [], None
    for inv in invocations:
        group = shape_group(inv.label)
        rec = inv.records
        out.append(bool(prev is None or group != prev) if rec is None else rec)
        prev = group
    return out


@dataclass(frozen=True)
class Workload:
    """A scenario: invocations run in order, each op after the previous invocation's last op."""

    name: str
    invocations: tuple[Invocation, ...]
    description: str = ""

    def __post_init__(self) -> None:
        if not self.invocations:
            raise WorkloadError(f"workload {self.name!r} has no invocations")
        seen: dict[str, Tensor] = {}
        models: set[int] = set()
        for inv in self.invocations:
            if id(inv.model) in models:
                continue
            models.add(id(inv.model))
            for t in inv.model.tensors.values():
                prev = seen.setdefault(t.name, t)
                if prev is not t and prev.nbytes != t.nbytes:
                    raise WorkloadError(
                        f"workload {self.name!r}: tensor {t.name!r} has different sizes in "
                        f"different invocations ({prev.nbytes} vs {t.nbytes} bytes)")

    @property
    def tensors(self) -> dict[str, Tensor]:
        """Distinct weight tensors over all invocations, in first-use order."""
        out: dict[str, Tensor] = {}
        for inv in self.invocations:
            for name, t in inv.model.tensors.items():
                out.setdefault(name, t)
        return out

    @property
    def weight_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors.values())

    @property
    def total_flops(self) -> int:
        return sum(inv.model.total_flops for inv in self.invocations)

    def activation_profile(self) -> list[int]:
        """Activation + workspace + KV bytes while each op of each invocation runs; the KV
        cache carries over from one invocation to the next."""
        return self._activations.tolist()

    @cached_property
    def _activations(self) -> np.ndarray:
        # `model.activation_profile` over every invocation at once: activations die within
        # their invocation (each output has had its last consumer by the model's end), so the
        # running sum of outputs alive returns to zero between invocations; state accumulates
        models = [inv.model for inv in self.invocations]
        ops = [op for m in models for op in m.ops]
        if not ops:
            return np.zeros(0, dtype=np.int64)
        out = np.array([op.output_bytes for op in ops], dtype=np.int64)
        work = np.array([op.workspace_bytes for op in ops], dtype=np.int64)
        kv = np.cumsum(np.array([op.state_bytes for op in ops], dtype=np.int64))
        starts = np.cumsum([0] + [len(m.ops) for m in models[:-1]])
        structs = [m._structure for m in models]
        at = np.concatenate([st.dies_at + s for st, s in zip(structs, starts, strict=True)])
        pos = np.concatenate([st.dies_pos + s for st, s in zip(structs, starts, strict=True)])
        freed = np.zeros(len(ops), dtype=np.int64)
        np.add.at(freed, at, out[pos])
        live = np.concatenate(([0], np.cumsum(out - freed)[:-1]))  # alive before each op runs
        return live + out + work + kv

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(inv.model.name for inv in self.invocations))


def single(model: Model) -> Workload:
    """One inference of one model."""
    return Workload(model.name, (Invocation(model, model.name),))


def repeated(model: Model, times: int) -> Workload:
    """`times` back-to-back inferences: the first is cold, later ones may find weights resident."""
    if times < 1:
        raise WorkloadError(f"repeat count must be at least 1, found {times}")
    return Workload(f"{model.name}x{times}",
                    tuple(Invocation(model, f"run[{i}]") for i in range(times)),
                    f"{times} inferences of {model.name}")
