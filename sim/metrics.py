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

    init_s is the time before the first kernel of the first invocation starts (loading,
    transforms, program builds), exec_s the rest of the first invocation; init_breakdown_s the
    busy seconds of each load stage before that. Memory is physical: peak_memory_by_category
    holds each category's own peak (not simultaneous), memory_at_peak_by_category the split at
    the instant of the total peak; peak_weight_bytes is weights + staging at one instant (the
    papers' parameter memory); budget_scope says what the budget capped (total or weights). memory_outcome says what the OS did past memory_limit_bytes:
    fits, evicted (mapped weight pages dropped, never needed again), thrashed (page_faults
    re-read refault_bytes, counted in flash_bytes_read) or killed (then infeasible).
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
    runtime: str = "ideal"
    init_s: float = 0.0
    exec_s: float = 0.0
    init_breakdown_s: dict[str, float] = field(default_factory=dict)
    peak_weight_bytes: int = 0
    memory_at_peak_by_category: dict[str, int] = field(default_factory=dict)
    memory_limit_bytes: int | None = None
    memory_outcome: str = "fits"
    page_faults: int = 0
    refault_bytes: int = 0
    evicted_bytes: int = 0
    budget_scope: str = "total"

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
