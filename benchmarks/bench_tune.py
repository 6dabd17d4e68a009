"""Tune quality and cost: on the shipped `gpt2-mixed-precision` space (256 configurations, a
known optimum: every layer group in q6_k), how close TPE, random search and the grid of the
same number of evaluations get to the optimum, over many seeds; and trials per second.

    python benchmarks/bench_tune.py [--seeds 10] [--trials 24]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, table  # noqa: E402

from experiments.tune import config_of, evaluate, run_tune  # noqa: E402
from experiments.tune_spec import builtin_tunes, parse_tune  # noqa: E402

GROUPS = ("embeddings", "attention", "ffn", "lm_head")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--trials", type=int, default=24)
    args = ap.parse_args()
    data = yaml.safe_load(builtin_tunes()["gpt2-mixed-precision"].read_text())
    data["trials"] = args.trials
    spec = parse_tune(data)
    optimum = evaluate(spec, config_of(spec, {f"formats.{g}": "q6_k" for g in GROUPS}))[0]
    opt = optimum["latency_s"]
    ratios: dict[str, list[float]] = {"tpe": [], "grid": [], "random": []}
    trials = 0
    secs = 0.0
    for seed in range(args.seeds):
        for sampler in ("tpe", "random"):
            s = parse_tune({**data, "seed": seed, "sampler": sampler, "grid": sampler == "tpe"})
            with tempfile.TemporaryDirectory() as out:
                t0 = time.perf_counter()
                res = run_tune(s, out)
                secs += time.perf_counter() - t0
            trials += sum(res.executed.values())
            ratios[sampler].append((res.best_value("search") or float("inf")) / opt)
            if sampler == "tpe":
                ratios["grid"].append((res.best_value("grid") or float("inf")) / opt)
    rows = []
    for name, r in ratios.items():
        rows.append([name, args.trials, sum(x <= 1 + 1e-9 for x in r),
                     f"{statistics.mean(r):.3f}", f"{max(r):.3f}"])
    table(f"best latency found / known optimum over {args.seeds} seeds ({machine()})",
          ["search", "evaluations", "seeds at the optimum", "mean ratio", "worst ratio"], rows)
    cmp = [(t, g) for t, g in zip(ratios["tpe"], ratios["grid"], strict=True)]
    wins = sum(t < g - 1e-12 for t, g in cmp)
    ties = sum(abs(t - g) <= 1e-12 for t, g in cmp)
    table("TPE vs grid of equal evaluations, per seed", ["TPE better", "tie", "grid better"],
          [[wins, ties, len(cmp) - wins - ties]])
    print(f"{trials} trials in {secs:.1f} s: {trials / secs:.1f} trials/s (storage, sampler and "
          "simulation; one process)")


if __name__ == "__main__":
    main()
