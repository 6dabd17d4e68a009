"""LLM-scale streaming: weights in tiles (partial kernels), embedding lookups reading their rows,
token metrics, and token-aware plans; hand-checked on the toy profile, and on real models at the
budgets the issue names."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hwprofiles import load_profile
from hwprofiles.storage import read_time
from sim import plan, simulate
from sim.bounds import lower_bound
from sim.errors import SimError
from sim.schedule import Compute, Load
from workloads import Model, Op, Tensor, Workload, chain, single
from workloads.scenarios import resolve_workload
from workloads.streaming import gather_rows, tile_op, tile_workload
from workloads.workload import Invocation

GB, MiB, GiB = 10**9, 2**20, 2**30


@pytest.fixture(scope="module")
def toy_zc():
    from conftest import DATA

    return load_profile(str(DATA / "toy.yaml"), ["transfer.zero_copy=true"])


def test_tiles_split_rows_compute_and_output_exactly():
    w = Tensor("m/w", (1001, 300), "fp16")
    b = Tensor("m/b", (1001,), "fp16")
    op = Op("fc", "linear", 2 * 1001 * 300 + 1001, (w, b), input_elems=300, output_elems=1001,
            workspace_elems=10)
    parts = tile_op(op, 4)
    assert [p.name for p in parts] == [f"fc.tile{i}of4" for i in range(4)]
    rows = [p.weights[0].shape[0] for p in parts]
    assert rows == [250, 250, 250, 251] and sum(rows) == 1001
    assert [p.weights[1].shape for p in parts] == [(r,) for r in rows]  # the bias too
    assert sum(p.flops for p in parts) == op.flops  # whole numbers, in proportion to rows
    assert sum(p.output_elems for p in parts) == op.output_elems
    assert sum(p.workspace_elems for p in parts) == op.workspace_elems
    assert all(p.input_elems == 300 for p in parts)  # every partial kernel reads the input
    assert sum(t.nbytes for p in parts for t in p.weights) == w.nbytes + b.nbytes
    # in a graph: the producer feeds every tile, every tile feeds the consumer
    model = Model("m", [Op("x", "add", 300, (), 300, 300), op,
                        Op("y", "add", 1001, (), 1001, 1001)], [("x", "fc"), ("fc", "y")])
    tiled = tile_workload(single(model), 200_000).invocations[0].model
    names = [o.name for o in tiled.ops]
    k = len(names) - 2
    assert k == 4 and names[0] == "x" and names[-1] == "y"
    assert tiled.predecessors("y") == tuple(names[1:-1])
    assert all(tiled.predecessors(n) == ("x",) for n in names[1:-1])


def test_a_tiled_layer_by_hand(toy_zc):
    """One 1 GB fp16 linear layer of 1 TFLOP on the toy profile (1 GB/s flash, 1 TFLOPS, zero
    copy): whole, it reads 1 s then computes 1 s; in four 250 MB tiles under a 600 MB budget,
    each tile's 0.25 s read hides behind the kernel before it: 0.25 + 4 x 0.25 = 1.25 s, with
    two tiles in memory at once."""
    w = Tensor("m/w", (1000, 500_000), "fp16")
    model = chain("m", [Op("fc", "linear", 10**12, (w,), 1000, 1000)])
    wl = single(model)
    whole = simulate(plan("flashmem", wl, toy_zc, None, tile="off"), toy_zc).metrics
    assert whole.latency_s == pytest.approx(2.0, rel=1e-9)
    s = plan("flashmem", wl, toy_zc, 600_000_000, tile=250_000_000)
    m = simulate(s, toy_zc).metrics
    assert [c.op for c in s.computes] == [f"fc.tile{i}of4" for i in range(4)]
    assert all(s.tensor_bytes[t] == 250_000_000 for ld in s.loads for t in ld.tensors)
    assert m.latency_s == pytest.approx(1.25, rel=1e-9)
    assert m.compute_s == pytest.approx(1.0, rel=1e-9)
    assert 500_000_000 < m.peak_memory_bytes <= 600_000_000
    assert m.peak_memory_by_category["weights"] == 500_000_000
    assert m.flash_bytes_read == GB
    # the planner chooses tiles itself where the weights exceed what the budget holds
    auto = plan("flashmem", wl, toy_zc, 600_000_000)
    assert auto.meta["tile_bytes"] <= 300_000_000
    assert simulate(auto, toy_zc).metrics.latency_s <= 1.25 * (1 + 1e-9)
    # finer tiles approach the lower bound (1 s: the read, or the compute), which holds for
    # every tile size: the op counts as divisible
    assert lower_bound(wl, toy_zc, 600_000_000) == pytest.approx(1.0, rel=1e-9)
    fine = simulate(plan("flashmem", wl, toy_zc, 600_000_000, tile=1_000_000), toy_zc).metrics
    assert fine.latency_s == pytest.approx(1.001, rel=1e-9)


def test_an_embedding_lookup_reads_only_its_rows(toy_profile):
    """A 50,000 x 1,000 fp16 table (100 MB), 4 tokens: the lookup reads 4 rows of 2,000 bytes,
    each its own request (100 us latency, one at a time): 4 x (100 us + 2 us)."""
    prof = replace(toy_profile, storage=replace(toy_profile.storage, request_latency=100e-6),
                   transfer=replace(toy_profile.transfer, zero_copy=True))
    table = Tensor("m/emb", (50_000, 1000), "fp16")
    head = Tensor("m/head", (10, 1000), "fp16")
    ops = [Op("embed", "embedding", 0, (table,), 4, 4000, attrs={"gather_rows": 4}),
           Op("head", "linear", 80_000, (head,), 4000, 40)]
    wl = single(chain("m", ops))
    s = plan("flashmem", wl, prof, None)
    rows = [ld for ld in s.loads if ld.tensors == ("m/emb.rows@m",)]
    assert len(rows) == 1 and rows[0].bytes == 8000 and rows[0].request_bytes == 2000
    assert "m/emb" not in s.tensor_bytes  # the table is never loaded
    r = simulate(s, prof)
    read = next(i for i in r.trace.intervals if i.step == rows[0].id)
    assert read.end - read.start == pytest.approx(4 * (100e-6 + 2000 / GB), rel=1e-9)
    assert read_time(prof.storage, 8000, request_size=2000) == pytest.approx(408e-6)
    assert r.metrics.flash_bytes_read == 8000 + head.nbytes
    # the whole table, as the baselines (and embedding="table") read it
    t = simulate(plan("flashmem", wl, prof, None, embedding="table"), prof).metrics
    assert t.flash_bytes_read == table.nbytes + head.nbytes
    # a tied LM head keeps the table, which it then reads in tiles under a tight budget
    tied = single(chain("t", [ops[0], Op("lm_head", "linear", 4 * 10**8, (table,), 4000,
                                         200_000)]))
    assert {t.name for t in gather_rows(tied).tensors.values()} == {"m/emb.rows@t", "m/emb"}
    s = plan("flashmem", tied, prof, 60_000_000)
    assert simulate(s, prof).metrics.feasible
    assert sum("m/emb.tile" in t for t in s.tensor_bytes) >= 2


def test_gathered_rows_are_never_read_in_a_batch(toy_profile):
    """A load takes one piece size for all it reads, so flashmem reads a gathered lookup alone
    and merges only contiguous tensors: 4 rows of 2,000 bytes (4 requests of 100 us + 2 us),
    then the two linear layers' 20,000 + 200 bytes as one read (100 us + 20.2 us). Merged with
    the rows, the whole 28,200 bytes would be read 2,000 at a time (15 requests)."""
    prof = replace(toy_profile, storage=replace(toy_profile.storage, request_latency=100e-6),
                   transfer=replace(toy_profile.transfer, zero_copy=True))
    table = Tensor("m/emb", (50_000, 1000), "fp16")
    head, out = Tensor("m/head", (10, 1000), "fp16"), Tensor("m/out", (10, 10), "fp16")
    ops = [Op("embed", "embedding", 0, (table,), 4, 4000, attrs={"gather_rows": 4}),
           Op("head", "linear", 80_000, (head,), 4000, 40),
           Op("out", "linear", 800, (out,), 40, 40)]
    s = plan("flashmem", single(chain("m", ops)), prof, None)
    loads = s.loads
    assert [ld.tensors for ld in loads] == [("m/emb.rows@m",), ("m/head", "m/out")]
    assert loads[0].request_bytes == 2000 and loads[1].request_bytes is None
    r = simulate(s, prof)
    reads = [i.end - i.start for i in r.trace.intervals if i.resource == "storage"]
    assert reads == pytest.approx([4 * (100e-6 + 2000 / GB), 100e-6 + 20_200 / GB], rel=1e-9)
    assert r.metrics.latency_s == pytest.approx(s.meta["estimated_latency_s"], rel=1e-12)


def test_gpt2_at_40_mib_and_llama2_7b_at_64_mib():
    """The budgets below the largest tensor that whole-tensor streaming refused (gpt2's 74 MiB
    tied embedding; llama-2-7b's 250 MiB embedding and LM head, 86 MiB MLP weights)."""
    prof = load_profile("snapdragon-8-gen-3")
    for name, budget in (("gpt2", 40 * MiB), ("llama-2-7b", 64 * MiB)):
        wl = resolve_workload(name)
        off = simulate(plan("flashmem", wl, prof, budget, tile="off", embedding="table"),
                       prof, record_trace=False).metrics
        assert not off.feasible, name
        s = plan("flashmem", wl, prof, budget)
        m = simulate(s, prof, record_trace=False).metrics
        assert m.feasible and m.peak_memory_bytes <= budget, (name, m.error)
        assert m.flash_bytes_read < 1.05 * wl.weight_bytes  # each weight read once
        assert s.meta["tiled_ops"] >= 1


def test_token_metrics_by_hand(toy_profile):
    """Prefill then two decode steps, everything resident: TTFT is the prefill's end, the time
    per output token the decode steps' mean."""
    from helpers import linear_chain

    model = linear_chain(2).invocations[0].model
    wl = Workload("gen", (Invocation(model, "prefill"), Invocation(model, "decode[0]"),
                          Invocation(model, "decode[1]")))
    m = simulate(plan("preload", wl, toy_profile), toy_profile).metrics
    lat = m.invocation_latencies_s
    assert m.ttft_s == pytest.approx(lat[0]) and m.tpot_s == pytest.approx((lat[1] + lat[2]) / 2)
    assert m.tokens_per_s == pytest.approx(2 / (lat[1] + lat[2]))
    assert m.tpot_p99_s == pytest.approx(max(lat[1:]), rel=1e-2)
    assert simulate(plan("preload", single(model), toy_profile), toy_profile).metrics.ttft_s \
        is None


def per_invocation_reads(s) -> list[int]:
    """Bytes each invocation's loads read (a load counts for the first kernel that uses it)."""
    out = [0] * len(s.invocations)
    pending: dict[str, Load] = {}
    for st in s.steps:
        if isinstance(st, Load):
            for t in st.tensors:
                pending[t] = st
        elif isinstance(st, Compute):
            for t in st.weights:
                ld = pending.get(t)
                if ld is not None:
                    out[st.invocation] += ld.bytes
                    for u in ld.tensors:
                        pending.pop(u, None)
    return out


def test_token_aware_plan_on_gpt_neo_27b():
    """gpt-neo-2.7b, prefill 128 + decode 8 on a Snapdragon 8 Gen 3: where preloading fits,
    the token-aware plan is never slower; at 1 GiB it keeps what it can resident across
    tokens and re-reads per token within 10% of the least any plan must read."""
    from sim.bounds import token_read_bound
    from sim.policies.flashmem import streamed_workload

    prof = load_profile("snapdragon-8-gen-3")
    wl = resolve_workload("gpt-neo-2.7b-p128-d8")
    for budget in (6 * GiB, None):
        fm = simulate(plan("flashmem", wl, prof, budget), prof, record_trace=False).metrics
        pre = simulate(plan("preload", wl, prof, budget), prof, record_trace=False).metrics
        assert pre.feasible and fm.latency_s <= pre.latency_s * (1 + 1e-9)
        assert fm.tokens_per_s >= pre.tokens_per_s * (1 - 1e-9)
    s = plan("flashmem", wl, prof, GiB)
    m = simulate(s, prof, record_trace=False).metrics
    assert m.feasible and m.peak_memory_bytes <= GiB
    bound = token_read_bound(streamed_workload(wl)[0], GiB)
    reads = per_invocation_reads(s)
    decode = reads[1:]
    assert all(r >= bound * (1 - 1e-9) for r in decode)
    assert max(decode) <= 1.10 * bound, (max(decode), bound)


def moe_model(tokens: int = 1) -> Model:
    """x -> router -> a 2-expert MoE layer (1 expert per token), each expert three 1 MB
    matrices (d 500, f 1000) -> y."""
    d, f = 500, 1000
    experts = [tuple(Tensor(f"m/e{j}.{w}", (f, d) if w != "w2" else (d, f), "fp16")
                     for w in ("w1", "w3", "w2")) for j in range(2)]
    per_token = 6 * d * f
    ops = [Op("x", "add", tokens * d, (), tokens * d, tokens * d),
           Op("router", "linear", 2 * tokens * d * 2, (Tensor("m/gate", (2, d), "fp16"),),
              tokens * d, tokens * 2),
           Op("moe", "moe", tokens * (per_token + 2 * d + 10), sum(experts, ()),
              tokens * (d + 2), tokens * d,
              attrs={"num_experts": 2, "experts_per_token": 1,
                     "expert_tensors": tuple(tuple(t.name for t in e) for e in experts),
                     "expert_flops_per_token": per_token, "tokens": tokens}),
           Op("y", "add", tokens * d, (), tokens * d, tokens * d)]
    return Model("m", ops, [("x", "router"), ("x", "moe"), ("router", "moe"), ("moe", "y")])


def gate_reads(s) -> int:
    return sum(ld.bytes for ld in s.loads if ld.tensors == ("m/gate",))


def test_a_two_expert_moe_streams_the_routed_expert_and_caches_it(toy_zc):
    """Three tokens, each routed (skew 60: all but surely) to the same expert: only that
    expert's 3 MB are read, once; its kernel does one token's expert FLOPs; the first token
    misses it, the next two find it resident: hit rate 2/3."""
    from workloads.routing import Routing

    model = moe_model()
    wl = Workload("moe", tuple(Invocation(model, f"decode[{i}]") for i in range(3)))
    top = int(Routing(60.0, 7).popularity(2, "moe").argmax())
    s = plan("flashmem", wl, toy_zc, None, routing="skewed:60", routing_seed=7)
    experts = [c for c in s.computes if c.kind == "moe_expert"]
    assert [c.op for c in experts] == [f"moe.expert{top}"] * 3
    assert all(c.flops == 6 * 500 * 1000 for c in experts)
    loaded = {t for ld in s.loads for t in ld.tensors}
    assert {t for t in loaded if "/e" in t} == {f"m/e{top}.{w}" for w in ("w1", "w3", "w2")}
    m = simulate(s, toy_zc).metrics
    # (the 2 kB router gate may be read again per token: that plan ends a few ns sooner)
    assert m.flash_bytes_read - gate_reads(s) == 3 * 1_000_000
    assert m.expert_hit_rate == pytest.approx(2 / 3)
    # whole (routing off): every expert is read, as the MoE op's weights
    s_whole = plan("flashmem", wl, toy_zc, None)
    whole = simulate(s_whole, toy_zc).metrics
    assert whole.flash_bytes_read - gate_reads(s_whole) == 6 * 1_000_000
    assert whole.expert_hit_rate is None
    # uniform routing of 4 tokens: each expert runs its tokens' FLOPs, the total is the layer's
    wl4 = single(moe_model(4))
    s4 = plan("flashmem", wl4, toy_zc, None, routing="uniform", routing_seed=3)
    counts = Routing(0.0, 3).draw(2, 1, 4, "moe", 0)
    got = {c.op: c.flops for c in s4.computes if c.kind == "moe_expert"}
    assert got == {f"moe.expert{j}": int(n) * 3_000_000 for j, n in enumerate(counts) if n}
    assert s4.total_flops == wl4.total_flops


def test_a_sparse_ffn_with_a_known_hit_rate(toy_zc):
    """A gated MLP block (f = 256 neurons, d = 64) in 4 bundles of 64 neurons, half active per
    token (2 bundles), skew 60: four tokens activate the same two bundles: 4 misses on the
    first token... each bundle read once (3 x 64 x 64 x 2 bytes, one request each), 6 of the 8
    bundle kernels find theirs resident."""
    from workloads.zoo.layers import GraphBuilder

    b = GraphBuilder("s", "fp16")
    x = b.op("x", "add", [], (1, 64), 64)
    g = b.linear(x, "mlp.gate_proj", 256, bias=False, act="silu")
    u = b.linear(x, "mlp.up_proj", 256, bias=False)
    h = b.elementwise("mlp.gate_mul", "mul", [g, u])
    b.linear(h, "mlp.down_proj", 64, bias=False)
    model = b.build()
    wl = Workload("s", tuple(Invocation(model, f"decode[{i}]") for i in range(4)))
    s = plan("flashmem", wl, toy_zc, None, sparsity=0.5, bundle=64, routing="skewed:60",
             predictor_rank=8)
    bundles = [c for c in s.computes if c.kind == "ffn_bundle"]
    assert len(bundles) == 8 and len({c.op for c in bundles}) == 2
    reads = [ld for ld in s.loads if any(".bundle" in t for t in ld.tensors)]
    assert all(ld.request_bytes == 3 * 64 * 64 * 2 for ld in reads)
    assert sum(ld.bytes for ld in reads) == 2 * 3 * 64 * 64 * 2
    m = simulate(s, toy_zc).metrics
    assert m.neuron_hit_rate == pytest.approx(6 / 8)
    dense = simulate(plan("flashmem", wl, toy_zc, None), toy_zc).metrics
    assert m.flash_bytes_read < dense.flash_bytes_read
    assert sum(c.flops for c in bundles) == 4 * sum(
        op.flops for op in model.ops if op.name.startswith("mlp.")) // 2


def kv_workload(prompt: int = 4, decode: int = 2, e: int = 1000) -> Workload:
    """Prefill of `prompt` tokens then `decode` steps through one attention layer (QK^T and AV,
    each caching `e` fp16 elements per token), negligible compute."""
    def step(past: int, n: int, label: str) -> Invocation:
        kv = {"kv_token_elems": e, "past_tokens": past}
        ops = [Op("x", "add", n, (), n, n * e),
               Op("qk", "attention_qk", n, (), n * e + past * e, n, state_elems=n * e,
                  attrs=kv),
               Op("av", "attention_av", n, (), n + past * e, n * e, state_elems=n * e,
                  attrs=kv)]
        return Invocation(chain("m", ops), label)

    invs = [step(0, prompt, "prefill")]
    invs += [step(prompt + i, 1, f"decode[{i}]") for i in range(decode)]
    return Workload("kv", tuple(invs))


def test_kv_spill_by_hand(toy_profile):
    """4 prompt tokens + 2 decode steps, a 2-token window, 1-token read requests (100 us + 2 us
    each at 1 GB/s): the prefill writes 2 tokens per op (K and V: 2 x 2 x 2,000 bytes); decode
    step 0 reads back 2 tokens per op and writes 1, step 1 reads back 3 and writes 1. Read
    back: 2 x (2 + 3) x 2,000 = 20,000 bytes in 10 requests (1.02 ms, the run's length); written
    16,000; the KV in memory stays at 2 tokens x 2 ops x 2,000 = 8,000 bytes (24,000 without)."""
    prof = replace(toy_profile, storage=replace(toy_profile.storage, request_latency=100e-6),
                   transfer=replace(toy_profile.transfer, zero_copy=True))
    wl = kv_workload()
    s = plan("flashmem", wl, prof, None, kv_spill=2, kv_block=1)
    spilled = {t: s.tensor_bytes[t] for ld in s.loads for t in ld.tensors}
    assert spilled == {"qk.kv@decode[0]": 4000, "av.kv@decode[0]": 4000,
                       "qk.kv@decode[1]": 6000, "av.kv@decode[1]": 6000}
    assert all(ld.request_bytes == 2000 for ld in s.loads)
    m = simulate(s, prof).metrics
    assert m.kv_bytes_read == m.flash_bytes_read == 20_000
    assert m.kv_bytes_written == 16_000
    assert m.peak_memory_by_category["kv"] == 8000
    assert m.latency_s == pytest.approx(10 * (100e-6 + 2e-6), rel=1e-4)
    e = simulate(s, prof, engine="simpy").metrics
    assert (e.latency_s, e.peak_memory_bytes, e.kv_bytes_read) == (
        m.latency_s, m.peak_memory_bytes, m.kv_bytes_read)
    # no spill: everything stays in memory, nothing is read
    off = simulate(plan("flashmem", wl, prof, None), prof).metrics
    assert off.peak_memory_by_category["kv"] == 24_000 and off.flash_bytes_read == 0
    assert off.kv_bytes_read is None
    # auto keeps all of it while it is at most a quarter of the budget (24,000 of 100,000)...
    auto = plan("flashmem", wl, prof, 100_000, kv_spill="auto", kv_block=1)
    assert "kv_window_tokens" not in auto.meta
    # ... else the most recent whole blocks that fit in that quarter: 20,000 bytes = 5 tokens
    # (the last step pushes one token per op out, which no later step reads back)
    auto = plan("flashmem", wl, prof, 80_000, kv_spill="auto", kv_block=1)
    assert auto.meta["kv_window_tokens"] == 5
    a = simulate(auto, prof).metrics
    assert (a.kv_bytes_read, a.kv_bytes_written, a.peak_memory_by_category["kv"]) == (
        0, 2 * 2000, 20_000)
    # a workload without a growing KV cache cannot spill one
    with pytest.raises(SimError, match="no growing KV cache"):
        plan("flashmem", single(chain("m", [Op("x", "add", 1, (), 1, 1)])), prof, None,
             kv_spill=2)


def test_mixtral_streams_its_routed_experts_under_8_gib():
    """Mixtral-8x7B (q4_0, 24 GiB of weights), prefill 16 + decode 4 at 8 GiB on a Snapdragon
    8 Gen 3: routed, it reads only the experts its tokens chose, keeps some across tokens
    (hit rate between 0 and 1), stays within the budget and decodes faster than the dense plan
    that must read every expert of every layer per token; the same routing seed gives the same
    run."""
    prof = load_profile("snapdragon-8-gen-3")
    wl = resolve_workload("mixtral-8x7b-p16-d4", "q4_0")
    budget = 8 * GiB
    dense = simulate(plan("flashmem", wl, prof, budget), prof, record_trace=False).metrics
    s = plan("flashmem", wl, prof, budget, routing="skewed:1.5", routing_seed=1)
    m = simulate(s, prof, record_trace=False).metrics
    assert dense.feasible and m.feasible and m.peak_memory_bytes <= budget
    assert 0 < m.expert_hit_rate < 1
    assert m.flash_bytes_read < dense.flash_bytes_read
    assert m.tokens_per_s > dense.tokens_per_s
    # per token, each MoE layer runs the FLOPs of its 2 chosen experts, not the 8
    again = simulate(plan("flashmem", wl, prof, budget, routing="skewed:1.5", routing_seed=1),
                     prof, record_trace=False).metrics
    assert again.latency_s == m.latency_s and again.flash_bytes_read == m.flash_bytes_read
    assert s.total_flops == wl.total_flops
