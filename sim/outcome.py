"""From what an executor recorded to Metrics: one implementation for the evaluator and the
engine, so the two can only differ in the times and bytes they recorded."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hwprofiles.units import format_bytes, format_time
from sim.flow import COMPUTE, FREE, Prepared
from sim.hardware import unstated_formats
from sim.memory import CATEGORIES, Peaks, time_average
from sim.metrics import Metrics


@dataclass
class RunRecord:
    """The raw outcome of one execution."""

    end_time: list[float]
    busy: dict[str, float]  # seconds per resource
    stall_s: float
    compute_s: float
    dram_bytes: int
    flash_bytes: int
    error: str | None
    init_end: float | None  # when the first kernel started
    stages: list[tuple[str, float, float]]  # (stage, start, end) of load stages and builds
    timeline: list[tuple[float, ...]]  # end-of-instant memory rows
    peak: Peaks
    oom: tuple[float, int] | None
    events: int = 0
    page_faults: int = 0
    refault_bytes: int = 0
    evicted_bytes: int = 0
    thrashed: bool = False
    evicted: bool = False


def init_breakdown(stages: list[tuple[str, float, float]], init: float) -> dict[str, float]:
    """Seconds each load stage (and program builds) worked before the first kernel started
    (summed exactly, so the order the stages were recorded in does not matter)."""
    parts: dict[str, list[float]] = {}
    first: dict[str, float] = {}
    for stage, start, end in stages:
        if start < init:
            parts.setdefault(stage, []).append(min(end, init) - start)
            if start < first.get(stage, math.inf):
                first[stage] = start
    return {k: math.fsum(parts[k]) for k in sorted(parts, key=lambda k: (first[k], k))}


def memory_outcome(p: Prepared, rec: RunRecord, limit: int) -> tuple[str, str | None]:
    """What the OS did with the app's memory: fits | evicted | thrashed | killed (with why)."""
    profile, runtime = p.profile, p.runtime
    if rec.oom is not None:
        when, held = rec.oom
        what = ("its anonymous memory (activations, staging, KV cache) alone" if p.mapped
                else f"runtime {runtime.name} holds its weights in anonymous memory, which")
        reserve = (f" less os.reserved_memory {format_bytes(profile.os.reserved_memory)}"
                   if profile.os.reserved_memory else "")
        return "killed", (
            f"killed by the low-memory killer at {format_time(when)}: {format_bytes(held)} in use, "
            f"above the {format_bytes(limit)} one app may hold on {profile.name} "
            f"(dram.app_memory{reserve}); {what} cannot be paged out")
    if rec.thrashed:
        return "thrashed", None
    if rec.evicted:
        return "evicted", None
    return "fits", None


def assemble(p: Prepared, budget: int | None, rec: RunRecord, executor: str,
             note: str | None = None) -> Metrics:
    """The Metrics of one execution of prepared schedule `p` under `budget`."""
    schedule, profile, runtime = p.schedule, p.profile, p.runtime
    kinds, end = p.kinds, rec.end_time
    # the end of the last load or kernel: a trailing free is host bookkeeping, not latency
    latency = max([0.0] + [t for t, k in zip(end, kinds, strict=True) if k != FREE])
    inv_end = [0.0] * len(schedule.invocations)
    steps = schedule.steps
    for i, k in enumerate(kinds):
        if k == COMPUTE:
            inv = steps[i].invocation  # type: ignore[union-attr]
            if end[i] > inv_end[inv]:
                inv_end[inv] = end[i]
    inv_lat = [b - a for a, b in zip([0.0, *inv_end[:-1]], inv_end, strict=True)]
    avg = time_average(rec.timeline, latency)
    flash = rec.flash_bytes if rec.error is None else max(rec.flash_bytes,
                                                          schedule.streamed_bytes)
    energy = None
    e = profile.energy
    if e is not None:
        energy = (flash * e.storage_read_per_byte
                  + rec.dram_bytes * e.dram_per_byte + schedule.total_flops * e.gpu_per_flop)
    weight_bytes = sum(schedule.tensor_bytes.values())
    init = rec.init_end if rec.init_end is not None else latency
    limit = profile.memory_limit()
    outcome, error = memory_outcome(p, rec, limit)
    if rec.error is not None:
        error = rec.error
    peak = rec.peak
    # a run that did not complete has no token timings to report
    tokens = token_metrics([inv.label for inv in schedule.invocations], inv_end, inv_lat) \
        if error is None else {}
    kinds = {steps[c].kind for c in p.compute_ids}  # type: ignore[union-attr]
    for kind, name in (("moe_expert", "expert_hit_rate"), ("ffn_bundle", "neuron_hit_rate")):
        if kind in kinds:
            tokens[name] = hit_rate(steps, kind)
    if "kv_bytes_written" in schedule.meta:
        tokens["kv_bytes_read"] = sum(schedule.tensor_bytes[t] for i in p.loads
                                      for t in steps[i].tensors  # type: ignore[union-attr]
                                      if ".kv@" in t)
        tokens["kv_bytes_written"] = int(schedule.meta["kv_bytes_written"])  # type: ignore
    return Metrics(
        policy=schedule.policy, workload=schedule.workload, profile=profile.name,
        budget_bytes=budget, feasible=error is None, error=error,
        latency_s=latency, cold_latency_s=inv_lat[0] if inv_lat else 0.0,
        warm_latency_s=float(np.mean(inv_lat[1:])) if len(inv_lat) > 1 else None,
        invocation_latencies_s=inv_lat,
        peak_memory_bytes=peak.total,
        peak_memory_by_category=dict(zip(CATEGORIES, peak.by_cat, strict=True)),
        avg_memory_bytes=avg["total"],
        avg_memory_by_category={k: v for k, v in avg.items() if k != "total"},
        weight_bytes=weight_bytes, flash_bytes_read=flash,
        compute_s=rec.compute_s, gpu_stall_s=rec.stall_s,
        utilisation={k: (v / latency if latency > 0 else 0.0) for k, v in rec.busy.items()},
        energy_j=energy, sim_events=rec.events, steps=len(steps),
        meta=_meta(p),
        runtime=runtime.name, init_s=init,
        exec_s=(inv_end[0] - init) if inv_end else 0.0,
        init_breakdown_s=init_breakdown(rec.stages, init),
        peak_weight_bytes=peak.weights_staging,
        memory_at_peak_by_category=dict(zip(CATEGORIES, peak.row[2:], strict=True)),
        memory_limit_bytes=limit, memory_outcome=outcome,
        page_faults=rec.page_faults, refault_bytes=rec.refault_bytes,
        evicted_bytes=rec.evicted_bytes, budget_scope=schedule.budget_scope,
        executor=executor, executor_note=note, **tokens,
    )


def _meta(p: Prepared) -> dict[str, object]:
    """The schedule's metadata, plus the quantized formats the runtime states no kernel
    efficiency for (they ran at its op-class efficiency alone)."""
    meta = dict(p.schedule.meta)
    if not p.runtime.is_neutral:
        computes = [p.schedule.steps[c] for c in p.compute_ids]
        unstated = unstated_formats(p.runtime, computes)  # type: ignore[arg-type]
        if unstated:
            meta["runtime_unstated_formats"] = ", ".join(unstated)
    return meta


def token_metrics(labels: list[str], inv_end: list[float], inv_lat: list[float]
                  ) -> dict[str, float | None]:
    """TTFT, time per output token (mean, p99) and decode tokens/s of an LLM generation: its
    invocations labelled prefill and decode[i] (other invocations before them count in TTFT)."""
    if "prefill" not in labels:
        return {}
    out: dict[str, float | None] = {"ttft_s": inv_end[labels.index("prefill")]}
    steps = [lat for lab, lat in zip(labels, inv_lat, strict=True) if lab.startswith("decode[")]
    if steps:
        total = math.fsum(steps)
        out.update(tpot_s=total / len(steps), tpot_p99_s=float(np.percentile(steps, 99)),
                   tokens_per_s=len(steps) / total if total > 0 else None)
    return out


def hit_rate(steps: list, kind: str) -> float | None:
    """Share of the kernels of `kind` whose weights were in memory when they ran: not loaded
    for them (a load counts as a miss of the first kernel that uses it)."""
    from sim.schedule import Compute, Load

    unused: set[str] = set()  # tensors loaded and not yet used by any kernel
    hits = uses = 0
    for st in steps:
        if type(st) is Load:
            unused.update(st.tensors)
        elif type(st) is Compute:
            fresh = any(t in unused for t in st.weights)
            if st.kind == kind:
                uses += 1
                hits += not fresh
            unused.difference_update(st.weights)
    return hits / uses if uses else None
