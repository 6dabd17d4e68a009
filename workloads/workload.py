"""Workload scenarios: an ordered list of model invocations (one inference, repeats, LLM
prefill + decode, multi-DNN pipelines). Invocations of the same model share weight tensors by
name, so a policy may keep them resident across invocations."""

from __future__ import annotations

from dataclasses import dataclass

from workloads.model import Model, Tensor, WorkloadError, activation_profile


@dataclass(frozen=True)
class Invocation:
    """One run of one model within a workload; `label` names it in traces ('decode[3]')."""

    model: Model
    label: str


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
        out: list[int] = []
        state = 0
        for inv in self.invocations:
            out += activation_profile(inv.model, state)
            state += sum(op.state_bytes for op in inv.model.ops)
        return out

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
