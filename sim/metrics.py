"""Metrics: the numbers one simulated (or replayed) run is judged by."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Metrics:
    """End-to-end results of one run. Times in seconds, sizes in bytes.

    cold_latency_s is the first invocation; warm_latency_s the mean of later ones (None for a
    single invocation). gpu_stall_s is time the GPU sat idle although the previous op and this
    op's inputs were done: waiting for weights or memory. utilisation is busy time / latency.
    """

    policy: str
    workload: str
    profile: str
    budget_bytes: int | None
    feasible: bool
    error: str | None
    latency_s: float
    cold_latency_s: float
    warm_latency_s: float | None
    invocation_latencies_s: list[float]
    peak_memory_bytes: int
    peak_memory_by_category: dict[str, int]
    avg_memory_bytes: float
    avg_memory_by_category: dict[str, float]
    weight_bytes: int
    flash_bytes_read: int
    compute_s: float
    gpu_stall_s: float
    utilisation: dict[str, float]
    energy_j: float | None = None
    sim_events: int = 0
    steps: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def model(self) -> str:
        return self.workload

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; `model` is an alias of `workload` for the CLI contract."""
        d = asdict(self)
        d["model"] = self.workload
        return d

    def flat(self) -> dict[str, Any]:
        """One flat row (nested dicts become prefixed columns) for results tables."""
        row: dict[str, Any] = {}
        for k, v in self.to_dict().items():
            if isinstance(v, dict):
                for kk, vv in v.items():
                    if isinstance(vv, int | float | str | bool) or vv is None:
                        row[f"{k}.{kk}"] = vv
            elif isinstance(v, list):
                row[k] = list(v)
            else:
                row[k] = v
        return row
