"""Small synthetic models for hand-checked tests."""

from __future__ import annotations

import random

from workloads import Model, Op, Tensor, Workload, chain, single
from workloads.workload import Invocation


def linear_chain(n: int = 3, weight_elems: int = 500_000_000, flops: int = 10**9,
                 name: str = "m"):
    """`n` fp16 linear layers of `weight_elems` weights (2 bytes each) and `flops` FLOPs."""
    ops = [Op(f"l{i}", "linear", flops=flops,
              weights=(Tensor(f"{name}/w{i}", (weight_elems // 1000, 1000), "fp16"),),
              input_elems=1000, output_elems=1000) for i in range(n)]
    return single(chain(name, ops))


def fatal_chain(n: int = 3, weight_elems: int = 5_000_000, flops: int = 10**9,
                name: str = "fatal", die: bool = True):
    """A workload factory whose process dies while building it (as a crash in native code or
    the OOM killer would): the sweep must record the run as an error and go on."""
    if die:
        import os

        os._exit(13)
    return linear_chain(n, weight_elems, flops, name)


def slow_chain(n: int = 3, weight_elems: int = 5_000_000, flops: int = 10**9,
               name: str = "slow", delay_s: float = 0.0):
    """`linear_chain` that takes `delay_s` seconds (plus $WEIGHTSTREAM_TEST_DELAY_S) to build:
    a run slow enough to interrupt. The delay is not part of the run's key, so a sweep slowed
    down in a subprocess and its fast in-process resume compute the same runs."""
    import os
    import time

    time.sleep(delay_s + float(os.environ.get("WEIGHTSTREAM_TEST_DELAY_S", 0)))
    return linear_chain(n, weight_elems, flops, name)


def flaky_chain(marker: str, name: str = "flaky"):
    """A workload factory that raises while the file `marker` exists (a cause later fixed)."""
    from pathlib import Path

    if Path(marker).exists():
        raise RuntimeError(f"flaky: {marker} exists")
    return linear_chain(3, 5_000_000, 10**9, name)


def random_workload(seed: int, n: int, repeats: int = 1) -> Workload:
    """A random DAG of `n` ops: random weights (some shared), FLOPs, activations."""
    rng = random.Random(seed)
    ops, edges = [], []
    shared = Tensor(f"r{seed}/shared", (rng.randint(1, 64), 1024), "fp16")
    for i in range(n):
        weights: tuple[Tensor, ...] = ()
        roll = rng.random()
        if roll < 0.7:
            weights = (Tensor(f"r{seed}/w{i}", (rng.randint(1, 256), 4096),
                              rng.choice(["fp16", "fp32", "int8", "int4"])),)
        elif roll < 0.8:
            weights = (shared,)
        ops.append(Op(f"op{i}", "linear", flops=rng.randint(0, 10**9), weights=weights,
                      input_elems=rng.randint(0, 10**5), output_elems=rng.randint(1, 10**5),
                      workspace_elems=rng.randint(0, 10**4), state_elems=rng.choice([0, 0, 512])))
        for j in range(max(0, i - 3), i):
            if rng.random() < 0.5 or j == i - 1:
                edges.append((f"op{j}", f"op{i}"))
    model = Model(f"r{seed}", ops, edges)
    return Workload(model.name, tuple(Invocation(model, f"run[{k}]") for k in range(repeats)))
