"""Small synthetic models for hand-checked tests."""

from __future__ import annotations

from workloads import Op, Tensor, chain, single


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
