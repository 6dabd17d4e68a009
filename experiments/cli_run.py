"""`weightstream run`: plan and simulate one workload on one profile with one policy."""

from __future__ import annotations

import json
import math
import sys
import time
from typing import Any

import click
import yaml

from experiments.outputs import check_output, write_output
from hwprofiles.units import format_bytes, format_time, parse_bytes

# sim.ENGINES (kept here so `--help` does not import the simulator)
ENGINES = ("auto", "evaluator", "simpy")


def parse_options(items: tuple[str, ...]) -> dict[str, Any]:
    """`key=value` policy options; values parsed as YAML scalars (3, auto, true)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item or not item.split("=", 1)[0].strip():
            raise click.BadParameter(f"{item!r} must look like key=value, e.g. depth=3",
                                     param_hint="--option")
        k, v = item.split("=", 1)
        try:
            value = yaml.safe_load(v)
        except yaml.YAMLError:
            value = v  # not a YAML scalar: the policy checks the text
        if isinstance(value, float) and not math.isfinite(value):
            raise click.BadParameter(f"{item!r}: {k.strip()} must be a finite number",
                                     param_hint="--option")
        out[k.strip()] = value
    return out


def resolve(model: str | None, workload: str | None, dtype: str):
    """The Workload named by --model or --workload."""
    from workloads.scenarios import resolve_workload

    if bool(model) == bool(workload):
        raise click.UsageError("give exactly one of --model NAME or --workload NAME")
    return resolve_workload(model or workload, dtype)


def _refuse_with_schedule(model: str | None, workload: str | None, options: tuple[str, ...],
                          dtype: str) -> None:
    """A saved schedule fixes the workload, its dtype and the policy's options: options that
    would choose them again are refused rather than silently ignored."""
    given = [name for name, v in (("--model", model), ("--workload", workload),
                                  ("--option", options)) if v]
    ctx = click.get_current_context()
    if ctx.get_parameter_source("dtype") is not click.core.ParameterSource.DEFAULT:
        given.append("--dtype")
    if given:
        raise click.UsageError(f"{', '.join(given)} cannot be used with --schedule: the saved "
                               "schedule fixes the workload, dtype and policy options")


def _split(parts: dict[str, Any]) -> str:
    return ", ".join(f"{k} {format_bytes(v)}" for k, v in parts.items() if v)


def summary_lines(m: Any) -> list[str]:
    """The human-readable report of one run (what `run` prints without --json)."""
    runtime = f", runtime {m.runtime}" if m.runtime != "ideal" else ""
    stages = ", ".join(f"{k} {format_time(v)}" for k, v in m.init_breakdown_s.items() if v)
    lines = [
        f"{m.workload} on {m.profile} with {m.policy}{runtime}"
        + (f" (budget {format_bytes(m.budget_bytes)}"
           + (" of weights + staging)" if m.budget_scope == "weights" else ")")
           if m.budget_bytes else ""),
        f"  latency        {format_time(m.latency_s)}"
        + (f"  (cold {format_time(m.cold_latency_s)}, warm {format_time(m.warm_latency_s)})"
           if m.warm_latency_s is not None else ""),
        f"  cold start     init {format_time(m.init_s)}"
        + (f" ({stages})" if stages else "") + f" + exec {format_time(m.exec_s)}",
        f"  peak memory    {format_bytes(m.peak_memory_bytes)} = "
        + (_split(m.memory_at_peak_by_category) or "0")
        + f"; average {format_bytes(m.avg_memory_bytes)}; weights + staging peak "
        f"{format_bytes(m.peak_weight_bytes)}",
        "  each's own peak " + (_split(m.peak_memory_by_category) or "0")
        + " (not simultaneous)",
        f"  weights        {format_bytes(m.weight_bytes)}; read from flash "
        f"{format_bytes(m.flash_bytes_read)}",
        f"  compute {format_time(m.compute_s)}; GPU stalled {format_time(m.gpu_stall_s)}",
        "  utilisation    " + ", ".join(f"{k} {v:.0%}" for k, v in m.utilisation.items()),
    ]
    if m.memory_limit_bytes is not None:
        outcome = {"fits": "fits", "killed": "KILLED",
                   "evicted": f"over: evicted {format_bytes(m.evicted_bytes)} of mapped weights "
                              "(never touched again)",
                   "thrashed": f"over: THRASHING, {m.page_faults:,} page faults re-read "
                               f"{format_bytes(m.refault_bytes)}"}[m.memory_outcome]
        lines.append(f"  app memory     limit {format_bytes(m.memory_limit_bytes)}: {outcome}")
    if m.ttft_s is not None:
        rate = f", {m.tokens_per_s:.2f} tokens/s" if m.tokens_per_s is not None else ""
        tpot = (f", time per output token {format_time(m.tpot_s)} (p99 "
                f"{format_time(m.tpot_p99_s)}){rate}" if m.tpot_s is not None else "")
        lines.append(f"  tokens         first token after {format_time(m.ttft_s)}{tpot}")
    hits = [f"{what} {rate:.0%} found in memory" for what, rate in (
        ("experts", m.expert_hit_rate), ("neuron bundles", m.neuron_hit_rate))
        if rate is not None]
    if hits:
        lines.append(f"  hit rate       {', '.join(hits)}")
    if m.kv_bytes_written is not None:
        window = m.meta.get("kv_window_tokens")
        lines.append(f"  KV spill       {window} most recent tokens per layer in memory; read back "
                     f"{format_bytes(m.kv_bytes_read or 0)}, written "
                     f"{format_bytes(m.kv_bytes_written)} (not timed)")
    lines += plan_lines(m.meta, m.latency_s)
    lines.append(f"  executor       {m.executor}"
                 + (f" ({m.executor_note})" if m.executor_note else ""))
    return lines


def plan_lines(meta: dict[str, Any], latency_s: float) -> list[str]:
    """What the planner chose: Demand Layering's variant and buffers, which planner ran (and
    the solver's status and gap), and the latency lower bound with the gap to it."""
    out = []
    auto = (f" (auto: {meta['auto_candidates']} candidates simulated)"
            if meta.get("auto_candidates") else "")
    if meta.get("variant"):
        buf = f", buffers {format_bytes(meta['buffer_bytes'])}" if "buffer_bytes" in meta else ""
        out.append(f"  plan           {meta['variant']}, {meta.get('config', '')}{buf}{auto}")
    elif "depth" in meta:
        out.append(f"  plan           depth {meta['depth']}{auto}")
    if meta.get("planner"):
        solver = ""
        if meta.get("solver_status"):
            gap = meta.get("solver_gap")
            solver = f" (CP-SAT {meta['solver_status']}" + (
                f", gap {gap:.1%}" if isinstance(gap, float) else "") + ")"
        fallback = f"; {meta['fallback']}" if meta.get("fallback") else ""
        out.append(f"  planner        {meta['planner']}{solver}{fallback}, planned in "
                   f"{format_time(meta.get('plan_time_s') or 0.0)}")
    lb = meta.get("lower_bound_s")
    if lb:
        gap = f" ({(latency_s - lb) / latency_s:.1%} above it)" if latency_s > 0 else ""
        out.append(f"  lower bound    {format_time(lb)}{gap}")
    return out


@click.command()
@click.option("--model", help="zoo model name (one inference)")
@click.option("--workload", help="scenario name, e.g. llama-3.2-1b-p128-d32")
@click.option("--profile", "profile_ref", required=True, help="profile name or YAML file")
@click.option("--policy", help="preload | sequential | pipeline | demand-layering | flashmem | "
                               "flashmem-opg (not with --schedule)")
@click.option("--runtime", "runtime_ref", default="ideal", show_default=True,
              help="runtime profile name or YAML file (`weightstream runtimes list`)")
@click.option("--runtime-set", "runtime_overrides", multiple=True,
              help="runtime override key=value, e.g. weights.holding=mmap")
@click.option("--budget", help="memory budget, e.g. 512MiB (default: unlimited)")
@click.option("--budget-scope", type=click.Choice(["total", "weights"]), default="total",
              show_default=True,
              help="what the budget caps: all memory, or weights + staging (the papers' "
                   "parameter memory)")
@click.option("--dtype", default="fp16", show_default=True, help="weight format (fp16, int8, int4, q4_0, q8_0, q4_k, awq-g128, fp8, ...) or mixed "
                   "precision per layer group, e.g. 'q4_0,lm_head=q6_k'")
@click.option("--set", "overrides", multiple=True, help="profile override key=value")
@click.option("--option", "options", multiple=True, help="policy option key=value (depth=3)")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@click.option("--trace", "trace_path", type=click.Path(dir_okay=False),
              help="write a Chrome/Perfetto trace JSON")
@click.option("--gantt", "gantt_path", type=click.Path(dir_okay=False),
              help="write a Gantt timeline PNG/SVG")
@click.option("--save-schedule", type=click.Path(dir_okay=False), help="write the schedule JSON")
@click.option("--engine", type=click.Choice(ENGINES), default="auto", show_default=True,
              help="auto: the exact one-pass evaluator, or the SimPy engine where only it is "
                   "exact (binding memory waits, contention, page-cache faults); evaluator: "
                   "refuse those; simpy: always the engine")
@click.option("--schedule", "schedule_path", type=click.Path(dir_okay=False),
              help="simulate a saved schedule instead of planning one")
@click.option("--timings", is_flag=True,
              help="add wall-clock planning times ('timing' in --json, meta of --save-schedule);"
                   " without it the output is byte-identical between runs")
def run(model: str | None, workload: str | None, profile_ref: str, policy: str | None,
        runtime_ref: str, runtime_overrides: tuple[str, ...], budget: str | None,
        budget_scope: str, dtype: str,
        overrides: tuple[str, ...], options: tuple[str, ...],
        as_json: bool, trace_path: str | None, gantt_path: str | None,
        save_schedule: str | None, schedule_path: str | None, timings: bool,
        engine: str) -> None:
    """Plan WORKLOAD with POLICY on PROFILE under BUDGET and simulate it."""
    from hwprofiles import load_profile
    from hwprofiles.loader import load_runtime
    from sim import plan, simulate
    from sim.capacity import min_feasible_budget
    from sim.policies import get_policy
    from sim.schedule import TIMING_META, Schedule, validate_schedule

    if schedule_path:
        _refuse_with_schedule(model, workload, options, dtype)
    elif not policy:
        raise click.UsageError("Missing option '--policy' (or give --schedule FILE)")
    if timings and not (as_json or save_schedule):
        raise click.UsageError("--timings adds to --json or --save-schedule; give one of them")
    if gantt_path:
        from experiments.plots import check_image_path

        check_image_path(gantt_path)
    for path, option in ((trace_path, "--trace"), (gantt_path, "--gantt"),
                         (save_schedule, "--save-schedule")):
        check_output(path, option)
    prof = load_profile(profile_ref, overrides)
    rt = load_runtime(runtime_ref, runtime_overrides)
    budget_bytes = parse_bytes(budget) if budget is not None else None
    if budget_bytes is not None and budget_bytes <= 0:
        raise click.BadParameter(f"budget must be positive, found {budget!r}", param_hint="--budget")
    if policy:
        get_policy(policy)
    opts = parse_options(options)
    wl = None
    t0 = time.perf_counter()
    if schedule_path:
        sched = Schedule.load(schedule_path)
        validate_schedule(sched)
        if policy and policy != sched.policy:
            raise click.UsageError(f"--policy {policy} conflicts with the schedule, which was "
                                   f"planned by {sched.policy}; drop --policy")
        policy = sched.policy
        if budget_bytes is None:
            budget_bytes = sched.budget_bytes
    else:
        wl = resolve(model, workload, dtype)
        sched = plan(policy, wl, prof, budget_bytes, rt, budget_scope, **opts)
    if save_schedule:
        write_output(save_schedule, "--save-schedule", lambda p: sched.save(p, timings))
    result = simulate(sched, prof, budget=budget_bytes, runtime=rt, engine=engine,
                      record_trace=bool(trace_path or gantt_path))
    wall_s = time.perf_counter() - t0
    m = result.metrics
    if not m.feasible and wl is not None and budget_bytes is not None \
            and m.memory_outcome != "killed":
        need = min_feasible_budget(policy, wl, prof, runtime=rt, budget_scope=budget_scope,
                                   engine="simpy" if engine == "simpy" else "auto", **opts)
        m.error = (f"budget {format_bytes(budget_bytes)} is below the smallest feasible working "
                   f"set of {policy} for {wl.name} on {prof.name}: at least "
                   f"{format_bytes(need)} ({need} bytes) is needed. ({m.error})")
        m.meta["min_feasible_budget_bytes"] = need
    if trace_path:
        write_output(trace_path, "--trace", result.trace.save_chrome)
    if gantt_path:
        from experiments.plots import plot_gantt

        plot_gantt(result.trace, gantt_path, title=" / ".join(summary_lines(m)[0:1]))
    if as_json:
        d = m.to_dict()
        timing = {k: d["meta"].pop(k) for k in TIMING_META if k in d["meta"]}
        if timings:
            d["timing"] = {**timing, "wall_s": wall_s}
        click.echo(json.dumps(d, default=float))
    elif m.feasible:
        click.echo("\n".join(summary_lines(m)))
    else:
        click.echo(summary_lines(m)[0] + ": infeasible")
    if not m.feasible:
        click.echo(f"error: {m.error}", err=True)
        sys.exit(3)
