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
    papers' parameter memory); budget_scope says what the budget capped (total or weights).
    memory_outcome says what the OS did past memory_limit_bytes:
    fits, evicted (mapped weight pages dropped, never needed again), thrashed (page_faults
    re-read refault_bytes, counted in flash_bytes_read) or killed (then infeasible).
    For token workloads (LLM prefill + decode invocations), ttft_s is the time from the start
    to the end of the prefill (the first token), tpot_s and tpot_p99_s the mean and 99th
    percentile of the decode steps' latencies, tokens_per_s the decode steps per second of
    their total time; None for other workloads. expert_hit_rate (routed MoE experts) and
    neuron_hit_rate (sparse FFN neuron bundles) are the shares of their kernels whose weights
    were already in memory (kept resident or still loaded from an earlier use): the rest made a
    read from flash. With KV cache spill, kv_bytes_read is the spilled KV read back (part of
    flash_bytes_read) and kv_bytes_written the KV written to flash (not timed); None without.
    executor says which executor computed the run (the exact one-pass evaluator or the SimPy
    engine; both give the same numbers where both apply), executor_note why the engine ran.
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
    ttft_s: float | None = None  # token workloads: time to the first token (end of prefill)
    tpot_s: float | None = None  # mean time per output token over the decode steps
    tpot_p99_s: float | None = None  # their 99th percentile
    tokens_per_s: float | None = None  # decode tokens per second
    expert_hit_rate: float | None = None  # routed MoE: expert kernels that found it loaded
    neuron_hit_rate: float | None = None  # sparse FFN: bundle kernels that found it loaded
    kv_bytes_read: int | None = None  # KV spill: spilled KV read back from flash
    kv_bytes_written: int | None = None  # KV spill: KV written to flash (counted, not timed)
    executor: str = "simpy"  # evaluator | simpy: which executor produced these numbers
    executor_note: str | None = None  # why the SimPy engine ran where the evaluator was asked
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
