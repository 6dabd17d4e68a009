"""Planners compared: planning time, latency (with the lower bound), average and peak memory of
weightstream's `flashmem`, FlashMem's paper planner `flashmem-opg` and the `pipeline` and
`demand-layering` baselines, on zoo models at three budgets each; and flashmem's planning time
vs graph size (CP-SAT on small graphs, greedy on large, including Llama-2-7B decode and the
Stable Diffusion pipeline).

    python benchmarks/bench_planner.py [--quick] [--workers N] [--opg-time-limit S]
        [--out DIR]

Budgets per model: 1.2 x flashmem's smallest feasible budget, the full preload footprint, and
their geometric mean. Writes planners.parquet and planners.png into --out (default
benchmarks/out) and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import math
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, peak_rss_mib, table, timed  # noqa: E402

from hwprofiles import load_profile  # noqa: E402
from sim import plan, simulate  # noqa: E402
from sim.planner.problem import build_problem  # noqa: E402
from workloads.scenarios import resolve_workload  # noqa: E402

PROFILE = "snapdragon-8-gen-3"
MODELS = ["mobilenetv2", "resnet50", "resnet152", "yolov4", "vit-b16", "swin-t", "bert-base",
          "gpt2", "whisper-small-encoder"]
QUICK_MODELS = ["mobilenetv2", "resnet50", "gpt2"]


def policies(opg_time_limit: float) -> list[tuple[str, str, dict]]:
    return [("flashmem", "flashmem", {}),
            ("flashmem (rolling CP-SAT)", "flashmem", {"solver": "rolling"}),
            ("flashmem-opg", "flashmem-opg", {"time_limit": opg_time_limit}),
            ("pipeline", "pipeline", {}),
            ("demand-layering", "demand-layering", {})]


def budgets(name: str) -> list[tuple[str, int]]:
    from sim.capacity import min_feasible_budget

    prof = load_profile(PROFILE)
    wl = resolve_workload(name, "fp16")
    lo = int(1.2 * min_feasible_budget("flashmem", wl, prof))
    full = simulate(plan("preload", wl, prof), prof, record_trace=False).metrics.peak_memory_bytes
    full = max(full, lo)
    return [("1.2x min", lo), ("mid", int(math.sqrt(lo * full))), ("full", full)]


def run_case(args: tuple[str, str, int, str, str, dict]) -> dict:
    """Plan and simulate one (model, budget, policy); one row of the comparison."""
    name, label, budget, series, policy, options = args
    prof = load_profile(PROFILE)
    wl = resolve_workload(name, "fp16")
    secs, s = timed(lambda: plan(policy, wl, prof, budget, **options), 1)
    m = simulate(s, prof, record_trace=False).metrics
    from sim.bounds import lower_bound

    lb = s.meta.get("lower_bound_s") or lower_bound(wl, prof, budget)
    return {"model": name, "budget_label": label, "budget_bytes": budget, "policy": series,
            "policy_name": policy, "feasible": m.feasible, "latency_s": m.latency_s,
            "lower_bound_s": lb, "meta.plan_time_s": secs,
            "avg_memory_bytes": m.avg_memory_bytes, "peak_memory_bytes": m.peak_memory_bytes,
            "planner": str(s.meta.get("planner") or s.meta.get("config") or
                           f"depth {s.meta.get('depth', '-')}"),
            "status": str(s.meta.get("solver_status", "-"))}


def compare(models: list[str], workers: int, opg_time_limit: float, out: Path) -> None:
    import pandas as pd

    from experiments.plots import plot_planners

    cases = []
    with ProcessPoolExecutor(workers) as pool:
        levels = dict(zip(models, pool.map(budgets, models), strict=True))
    for name in models:
        for label, b in levels[name]:
            for series, policy, opts in policies(opg_time_limit):
                cases.append((name, label, b, series, policy, opts))
    with ProcessPoolExecutor(workers) as pool:
        rows = list(pool.map(run_case, cases))
    df = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    df.to_parquet(out / "planners.parquet")
    mib = 2**20
    body = []
    for r in rows:
        body.append([r["model"], f"{r['budget_label']} ({r['budget_bytes'] / mib:.1f} MiB)",
                     r["policy"], r["planner"], r["status"], r["meta.plan_time_s"],
                     r["latency_s"] * 1e3 if r["feasible"] else "infeasible",
                     r["lower_bound_s"] * 1e3,
                     f"{(r['latency_s'] - r['lower_bound_s']) / r['latency_s']:.1%}"
                     if r["feasible"] else "-",
                     r["avg_memory_bytes"] / mib, r["peak_memory_bytes"] / mib])
    table(f"Planners on {PROFILE}, fp16 ({machine()}; flashmem-opg time limit "
          f"{opg_time_limit:g} deterministic s)",
          ["model", "budget", "policy", "planner / config", "solver", "plan s", "latency ms",
           "lower bound ms", "gap", "avg MiB", "peak MiB"], body)
    path = plot_planners(df, out / "planners.png",
                         title=f"planners on {PROFILE} (fp16): bars per model and budget")
    print(f"wrote {out / 'planners.parquet'} and {path}")


def scaling(quick: bool) -> None:
    prof = load_profile(PROFILE)
    names = ["mobilenetv2", "resnet50", "gpt2", "vit-b16", "llama-3.2-1b"]
    if not quick:
        names += ["sd15-20steps", "llama-2-7b-decode-128"]
    rows = []
    for name in names:
        wl = resolve_workload(name, "fp16")
        weights = wl.weight_bytes
        n_units = len(build_problem(wl, prof, None).units)
        for frac in (0.1, 0.3, 0.6):
            budget = int(weights * frac)
            secs, s = timed(lambda wl=wl, budget=budget: plan("flashmem", wl, prof, budget),
                            1 if n_units > 1000 else 3)
            m = s.meta
            rows.append([name, n_units, f"{frac:.0%}", m["planner"], m.get("solver_status", "-"),
                         m.get("solver_gap", float("nan")), secs])
    table(f"FlashMem planning time on {PROFILE} ({machine()})",
          ["workload", "weighted ops", "budget / weights", "planner", "solver status",
           "solver gap", "plan s"], rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--opg-time-limit", type=float, default=10.0)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("out"))
    ap.add_argument("--skip-scaling", action="store_true")
    args = ap.parse_args()
    compare(QUICK_MODELS if args.quick else MODELS, args.workers, args.opg_time_limit, args.out)
    if not args.skip_scaling:
        scaling(args.quick)
    print(f"peak RSS: {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
