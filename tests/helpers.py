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
