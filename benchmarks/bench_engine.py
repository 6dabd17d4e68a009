"""Engine throughput: simulated events per second and microseconds per simulated op, for small
and large workloads, and how the cost grows with model size and with decoded tokens.

    python benchmarks/bench_engine.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, peak_rss_mib, table, timed  # noqa: E402

from hwprofiles import load_profile  # noqa: E402
from sim import plan, simulate  # noqa: E402
from workloads.scenarios import resolve_workload  # noqa: E402
from workloads.workload import repeated  # noqa: E402
from workloads.zoo import get_model  # noqa: E402

PROFILE = "snapdragon-8-gen-3"


def run_case(name: str, wl, policy: str, budget: int | None, repeat: int) -> list:
    prof = load_profile(PROFILE)
    sched = plan(policy, wl, prof, budget)
    secs, res = timed(lambda: simulate(sched, prof, record_trace=False), repeat)
    m = res.metrics
    ops = len(sched.computes)
    return [name, policy, ops, len(sched.steps), m.sim_events, secs, m.sim_events / secs,
            secs / ops * 1e6]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller cases (CI smoke run)")
    args = ap.parse_args()
    repeat = 1 if args.quick else 3
    tokens = 16 if args.quick else 128
    headers = ["workload", "policy", "ops", "steps", "events", "sim s", "events/s", "us/op"]
    rows = []
    gib = 2**30
    for name, wl, budget in [
        ("resnet50", resolve_workload("resnet50", "fp16"), 64 * 2**20),
        ("gpt2", resolve_workload("gpt2", "fp16"), 256 * 2**20),
        (f"llama-2-7b decode {tokens}", resolve_workload(f"llama-2-7b-decode-{tokens}", "fp16")
         if not args.quick else resolve_workload("llama-3.2-1b-p128-d32", "fp16"), 2 * gib),
    ]:
        for policy in ("sequential", "pipeline", "flashmem"):
            rows.append(run_case(name, wl, policy, budget, repeat))
    table(f"Engine throughput ({machine()})", headers, rows)

    # growth with model size (repeats of one model) and with tokens: cost per op should be flat
    base = get_model("gpt2", "fp16")
    rows = []
    for n in (1, 4, 16) if args.quick else (1, 4, 16, 64):
        rows.append(run_case(f"gpt2 x{n}", repeated(base, n), "pipeline", 256 * 2**20, repeat))
    table("Scaling with workload size (us/op should stay flat)", headers, rows)
    print(f"peak RSS: {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
