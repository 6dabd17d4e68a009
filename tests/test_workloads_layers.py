"""Hand-checked FLOPs, shapes and activation sizes of the zoo's layer builder."""

from __future__ import annotations

from workloads.zoo.layers import Act, GraphBuilder
from workloads.zoo.transformer import AttnSpec, attention


def test_conv_flops_weights_and_activations():
    b = GraphBuilder("t")
    y = b.conv2d(Act(None, (3, 8, 8)), "c", 4, 3, stride=1)  # pad 1 keeps 8x8
    op = b.ops[0]
    assert y.shape == (4, 8, 8)
    assert [w.shape for w in op.weights] == [(4, 3, 3, 3), (4,)]
    # 2 * (4*8*8 outputs) * (3*3*3 MACs each) + 4*8*8 bias adds
    assert op.flops == 2 * 256 * 27 + 256 == 14080
    assert op.input_elems == 192 and op.output_elems == 256
    assert op.weights[0].name == "t/c.weight"


def test_strided_depthwise_conv():
    b = GraphBuilder("t")
    y = b.conv2d(Act(None, (8, 16, 16)), "dw", 8, 3, stride=2, groups=8, bias=False)
    assert y.shape == (8, 8, 8)
    assert b.ops[0].weights[0].shape == (8, 1, 3, 3)
    assert b.ops[0].flops == 2 * 8 * 8 * 8 * 9


def test_linear_flops():
    b = GraphBuilder("t")
    y = b.linear(Act(None, (5, 10)), "fc", 7)
    assert y.shape == (5, 7)
    assert b.ops[0].flops == 2 * 5 * 10 * 7 + 5 * 7 == 735
    b.linear(y, "fc2", 3, bias=False)
    assert b.ops[1].flops == 2 * 5 * 7 * 3 and len(b.ops[1].weights) == 1
    m = b.build()
    assert m.param_count == 10 * 7 + 7 + 7 * 3
    assert list(m.graph.edges) == [("fc", "fc2")]


def test_attention_ops_and_flops():
    b = GraphBuilder("t")
    spec = AttnSpec(heads=2, head_dim=4)
    attention(b, Act(None, (6, 8)), "attn", spec)
    ops = {op.name: op for op in b.ops}
    assert list(ops) == ["attn.q_proj", "attn.k_proj", "attn.v_proj", "attn.qk", "attn.softmax",
                         "attn.av", "attn.out_proj"]
    assert ops["attn.qk"].flops == 2 * 2 * 6 * 6 * 4  # heads * q * k * head_dim, x2
    assert ops["attn.qk"].output_elems == 2 * 6 * 6
    assert ops["attn.av"].flops == 2 * 2 * 6 * 6 * 4
    assert ops["attn.softmax"].flops == 5 * 72
    assert ops["attn.qk"].state_elems == 0
    m = b.build()
    assert set(m.predecessors("attn.qk")) == {"attn.q_proj", "attn.k_proj"}
    assert set(m.predecessors("attn.av")) == {"attn.softmax", "attn.v_proj"}


def test_attention_with_kv_cache_appends_state_and_reads_past():
    b = GraphBuilder("t")
    spec = AttnSpec(heads=4, head_dim=8, kv_heads=2)  # grouped-query: kv dim 16
    attention(b, Act(None, (1, 32)), "attn", spec, past=10, cache=True)
    ops = {op.name: op for op in b.ops}
    qk, av = ops["attn.qk"], ops["attn.av"]
    assert qk.flops == av.flops == 2 * 4 * 1 * 11 * 8
    assert qk.state_elems == av.state_elems == 16  # one token's K (and V)
    assert qk.input_elems == 32 + 16 + 10 * 16  # q, new k, cached k
    assert ops["attn.k_proj"].weights[0].shape == (16, 32)


def test_shared_tensor_by_name():
    b = GraphBuilder("t")
    t1 = b.tensor("w", 3, 4)
    assert b.tensor("w", 3, 4) is t1
