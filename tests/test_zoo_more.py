"""Zoo models that published phone measurements name: exact parameter counts, FLOPs against
reference implementations and published figures, structure, and LLM prefill + decode."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from hwprofiles import load_profile
from sim import plan, simulate
from workloads.model import WorkloadError
from workloads.scenarios import get_workload, llm_generate
from workloads.zoo import LLM_CONFIGS, get_model
from workloads.zoo.layers import ELEMENTWISE_FLOPS, Act, GraphBuilder
from workloads.zoo.llm import LMConfig
from workloads.zoo.transformer import AttnSpec, attention

# name -> exact parameter count, and where it comes from
EXACT: dict[str, tuple[int, str]] = {
    "gpt-neo-125m": (125_198_592, "HF EleutherAI/gpt-neo-125M, tied lm_head"),
    "whisper-medium-encoder": (307_216_384, "HF openai/whisper-medium model.encoder"),
    "whisper-medium-decoder": (456_641_536, "HF openai/whisper-medium model.decoder"),
    "yolov4-tiny": (6_056_606, "darknet yolov4-tiny.cfg, BN scale+shift counted (~6.06M)"),
    "vit-b32-384": (88_297_192, "HF google/vit-base-patch32-384 / timm vit_base_patch32_384"),
    "qwen2-1.5b": (1_543_714_304, "HF Qwen/Qwen2-1.5B (1.5B on the card)"),
    "qwen-7b": (7_721_324_544, "HF Qwen/Qwen-7B v1 (7.7B on the card)"),
    "qwen3-4b": (4_022_468_096, "HF Qwen/Qwen3-4B (4.0B on the card)"),
    "qwen2.5-0.5b": (494_032_768, "HF Qwen/Qwen2.5-0.5B (0.49B on the card; llama-bench "
                                  "prints 494.03 M for its GGUF, llama.cpp issue #12669)"),
    "qwen3-1.7b": (1_720_574_976, "HF Qwen/Qwen3-1.7B (1.7B on the card, 1.4B "
                                  "non-embedding)"),
    "gemma3-1b": (999_885_952, "HF google/gemma-3-1b-pt (302M embedding + 698M)"),
    "redpajama-incite-3b": (2_775_864_320, "HF RedPajama-INCITE-Base-3B-v1 (2.8B on the card)"),
}
NEW_LLMS = ["gpt-neo-125m", "qwen2-1.5b", "qwen-7b", "qwen3-4b", "gemma3-1b",
            "redpajama-incite-3b"]
# num_parameters() and torch.utils.flop_counter FLOPs of the transformers / timm
# implementations built from the checkpoints' configs (make_reference.py writes it)
REFERENCE = json.loads((Path(__file__).parent / "data" / "zoo_reference" /
                        "reference.json").read_text())


@pytest.mark.parametrize("name", sorted(EXACT))
def test_exact_parameter_counts(name):
    count, source = EXACT[name]
    m = get_model(name)
    assert m.param_count == count, source
    assert m.published_params == count and m.source


@pytest.mark.parametrize("names,published,rel", [
    (["qwen2-1.5b"], 1.5e9, 0.034),  # model card "1.5B"
    (["qwen-7b"], 7.7e9, 0.0065),  # "7.7B"
    (["qwen3-4b"], 4.0e9, 0.0125),  # "4.0B" (3.6B non-embedding: below)
    (["qwen2.5-0.5b"], 0.49e9, 0.011),  # "0.49B"
    (["qwen3-1.7b"], 1.7e9, 0.03),  # "1.7B" (1.4B non-embedding: below)
    (["gemma3-1b"], 1.0e9, 0.0005),  # Gemma 3 report: 302M embedding + 698M non-embedding
    (["redpajama-incite-3b"], 2.8e9, 0.018),  # "2.8B"
    (["whisper-medium-encoder", "whisper-medium-decoder"], 769e6, 0.0075),  # paper: 769M
    (["gpt-neo-125m"], 125e6, 0.004),  # "125M"
])
def test_rounded_published_figures(names, published, rel):
    """The exact counts agree with the rounded figures on the cards (to their rounding)."""
    assert sum(get_model(n).param_count for n in names) == pytest.approx(published, rel=rel)


def test_embedding_split_of_qwen3_and_gemma3():
    q3, g3 = get_model("qwen3-4b"), get_model("gemma3-1b")
    assert (q3.param_count - 151936 * 2560) / 1e9 == pytest.approx(3.6, abs=0.05)
    q17 = get_model("qwen3-1.7b")
    assert (q17.param_count - 151936 * 2048) / 1e9 == pytest.approx(1.4, abs=0.05)
    assert 262144 * 1152 / 1e6 == pytest.approx(302, abs=0.5)
    assert (g3.param_count - 262144 * 1152) / 1e6 == pytest.approx(698, abs=0.5)


def test_llm_params_and_prefill_flops_match_transformers():
    # reference FLOPs count matmuls and attention only; the zoo also counts biases, norms,
    # softmax and activations (under 0.5% of the total for these models at 128 tokens)
    for name in [*NEW_LLMS, "gpt2", "llama-3.2-1b"]:
        if name == "qwen-7b":  # remote code, not in transformers: see the hand count below
            continue
        ref = REFERENCE[name]
        m = get_model(name, tokens=ref["tokens"])
        assert m.param_count == ref["params"], name
        assert m.total_flops == pytest.approx(ref["prefill_flops"], rel=0.01), name
        assert m.total_flops >= ref["prefill_flops"], name


def test_qwen_7b_by_hand():
    # per layer: c_attn 4096 -> 3x4096 with bias, c_proj 4096^2, w1 and w2 4096 -> 11008,
    # mlp c_proj 11008 -> 4096, RMSNorms ln_1 and ln_2; wte and lm_head 151936 x 4096; ln_f
    d, f, v, layers = 4096, 11008, 151936, 32
    mats = 3 * d * d + d * d + 3 * d * f
    assert get_model("qwen-7b").param_count == layers * (mats + 3 * d + 2 * d) + 2 * v * d + d
    t = 128  # prefill: 2 FLOPs per weight per token, QK^T and AV over t x t, last-token head
    hand = 2 * t * layers * mats + layers * 4 * t * t * d + 2 * d * v
    assert get_model("qwen-7b", tokens=t).total_flops == pytest.approx(hand, rel=0.005)


def test_whisper_medium_split_matches_transformers():
    ref = REFERENCE["whisper-medium"]
    enc, dec = get_model("whisper-medium-encoder"), get_model("whisper-medium-decoder")
    assert enc.param_count == ref["encoder_params"]
    assert dec.param_count == ref["decoder_params"]
    assert enc.param_count + dec.param_count == ref["params"] == 763_857_920  # "769M" rounded
    assert enc.total_flops == pytest.approx(ref["encoder_flops"], rel=0.01)
    assert dec.total_flops == pytest.approx(ref["decoder_flops"], rel=0.01)
    assert not any("embed_tokens" in t for t in enc.tensors)
    assert dec.op("proj_out").weights[0].name == "whisper-medium-decoder/embed_tokens.weight"


def test_whisper_encoders_run_1500_positions():
    # 3000 mel frames -> conv2 (stride 2) -> 1500 positions, for both sizes; and FLOPs agree
    # with transformers' encoder on the same input (small: 344.2 GFLOPs)
    for name, d in (("whisper-small-encoder", 768), ("whisper-medium-encoder", 1024)):
        m = get_model(name)
        assert m.op("embed_add").output_elems == 1500 * d
        assert m.op("layers.0.self_attn.qk").output_elems == (d // 64) * 1500 * 1500
    small = REFERENCE["whisper-small"]
    assert get_model("whisper-small-encoder").total_flops == \
        pytest.approx(small["encoder_flops"], rel=0.01)


def test_vit_b32_384_against_timm_and_torchvision():
    ref = REFERENCE["vit-b32-384"]
    m = get_model("vit-b32-384")
    assert m.param_count == ref["hf_params"] == ref["timm_params"]
    assert m.total_flops == pytest.approx(ref["timm_flops"], rel=0.01)
    assert m.op("encoder.layers.encoder_layer_0.self_attention.qk").output_elems == \
        12 * 145 * 145
    # at 224x224 it is torchvision's vit_b_32: 88,224,232 params, 4.41 GFLOPS (multiply-adds)
    small = get_model("vit-b32-384", image=224)
    assert small.param_count == ref["torchvision_vit_b_32_params"] == 88_224_232
    assert small.total_flops / 2e9 == pytest.approx(4.41, rel=0.02)


def test_yolov4_tiny_layers_and_published_bflops():
    m = get_model("yolov4-tiny")
    kinds = Counter(op.kind for op in m.ops)
    assert kinds["conv"] == 21 and kinds["batchnorm"] == 19 and kinds["maxpool"] == 3
    assert kinds["upsample"] == 1 and kinds["concat"] == 7
    heads = [op for op in m.ops if op.kind == "conv" and len(op.weights) == 2]
    assert [op.output_elems for op in heads] == [255 * 13 * 13, 255 * 26 * 26]
    # the second head reads the upsampled 128 channels + cfg layer 23's 256 channels at 26x26
    assert m.op(heads[1].name).input_elems == 256 * 26 * 26
    assert [t.shape for t in m.op("conv35").weights] == [(256, 384, 3, 3)]
    # darknet reports 6.9 BFLOPs for yolov4-tiny at 416 (2 per multiply-add, convs only)
    conv = sum(op.flops for op in m.ops if op.kind == "conv")
    assert conv / 1e9 == pytest.approx(6.91, rel=0.01)
    assert get_model("yolov4-tiny", image=608).total_flops > 2 * m.total_flops


def test_untie_gives_the_lm_head_its_own_weight():
    tied, untied = get_model("gpt-neo-125m"), get_model("gpt-neo-125m", untie=True)
    table = 50257 * 768
    assert untied.param_count == tied.param_count + table == 163_795_968  # FlashMem "164 M"
    assert untied.published_params == 163_795_968 and "untied" in untied.source
    head = untied.op("lm_head").weights[0]
    assert head.name == "gpt-neo-125m/lm_head.weight" and head.shape == (50257, 768)
    assert tied.op("lm_head").weights[0].name == "gpt-neo-125m/transformer.wte.weight"
    assert untied.total_flops == tied.total_flops
    assert untied.weight_bytes == tied.weight_bytes + 2 * table
    # default unchanged everywhere; an untied checkpoint has nothing to untie
    assert get_model("gpt2").param_count == 124_439_808
    assert get_model("qwen-7b", untie=True).param_count == 7_721_324_544


def test_block_layouts_follow_the_checkpoints():
    qwen = get_model("qwen-7b", tokens=4)
    p = "transformer.h.0"
    assert [t.shape for t in qwen.op(f"{p}.attn.c_attn").weights] == [(12288, 4096), (12288,)]
    assert [t.shape for t in qwen.op(f"{p}.attn.c_proj").weights] == [(4096, 4096)]
    assert qwen.op(f"{p}.mlp.w2").attrs["act"] == "silu"  # a1 * silu(a2)
    assert qwen.op(f"{p}.mlp.c_proj").weights[0].shape == (4096, 11008)
    q2 = get_model("qwen2-1.5b", tokens=4)
    assert [len(q2.op(f"model.layers.0.self_attn.{x}_proj").weights) for x in "qkvo"] == \
        [2, 2, 2, 1]
    q3 = get_model("qwen3-4b", tokens=4)
    assert q3.op("model.layers.0.self_attn.q_norm").weights[0].shape == (128,)
    assert q3.op("model.layers.0.self_attn.q_norm").output_elems == 4 * 32 * 128
    assert q3.op("model.layers.0.self_attn.k_norm").output_elems == 4 * 8 * 128
    g = get_model("gemma3-1b", tokens=4)
    norms = [op.name for op in g.ops if op.kind == "rmsnorm" and ".layers.0." in op.name]
    assert norms == [f"model.layers.0.{n}" for n in (
        "input_layernorm", "self_attn.q_norm", "self_attn.k_norm", "post_attention_layernorm",
        "pre_feedforward_layernorm", "post_feedforward_layernorm")]
    assert g.op("model.layers.0.mlp.gate_proj").attrs["act"] == "gelu"
    rp = get_model("redpajama-incite-3b", tokens=4)
    assert "redpajama-incite-3b/embed_out.weight" in rp.tensors  # untied head
    # use_parallel_residual false: the MLP's norm reads the sum after attention
    assert ("gpt_neox.layers.0.attn_add", "gpt_neox.layers.0.post_attention_layernorm") in \
        rp.graph.edges


def test_gemma3_sliding_window_layers_cap_attention_and_cache():
    glob = [5, 11, 17, 23]
    assert [i for i in range(26) if i not in LLM_CONFIGS["gemma3-1b"].local_layers] == glob
    m = get_model("gemma3-1b", tokens=1, past=1000, cache=True)
    qk = {i: m.op(f"model.layers.{i}.self_attn.qk") for i in range(26)}
    kv = 256  # one KV head of 256
    for i, op in qk.items():
        seen = 1001 if i in glob else 512
        assert op.flops == 2 * 4 * seen * 256, i
        assert op.input_elems == 4 * 256 + kv + (1000 if i in glob else 512) * kv, i
        assert op.state_elems == (kv if i in glob else 0), i  # the window cache is full
    # the cache of a sliding layer grows to 512 tokens, then stops
    wl = llm_generate("gemma3-1b", prompt=510, new_tokens=4)
    grown = [inv.model.op("model.layers.0.self_attn.qk").state_elems // kv
             for inv in wl.invocations]
    assert grown == [510, 1, 1, 0, 0]
    assert [inv.model.op("model.layers.5.self_attn.qk").state_elems // kv
            for inv in wl.invocations] == [510, 1, 1, 1, 1]
    # GPT-Neo's local layers keep every token (transformers caches them all)
    neo = get_model("gpt-neo-125m", tokens=1, past=1000, cache=True)
    assert neo.op("transformer.h.1.attn.attention.qk").state_elems == 768


@pytest.mark.parametrize("name", NEW_LLMS)
def test_new_llms_prefill_then_decode(name):
    cfg = LLM_CONFIGS[name]
    wl = get_workload(f"{name}-p8-d2")
    assert [i.label for i in wl.invocations] == ["prefill", "decode[0]", "decode[1]"]
    kv_per_token = 2 * cfg.layers * (cfg.kv_heads or cfg.heads) * cfg.hd
    state = [sum(op.state_elems for op in inv.model.ops) for inv in wl.invocations]
    assert state == [8 * kv_per_token, kv_per_token, kv_per_token]
    names = list(wl.invocations[0].model.tensors)
    assert all(list(inv.model.tensors) == names for inv in wl.invocations)
    assert wl.weight_bytes == get_model(name).weight_bytes
    step = wl.invocations[1].model
    assert step.op(step.order[-1]).output_elems == cfg.vocab  # logits of the one new token
    assert len(get_workload(f"{name}-decode-1").invocations) == 2


def test_new_llm_decode_simulates_within_physics():
    profile = load_profile("snapdragon-8-gen-3")
    wl = get_workload("qwen2-1.5b-p8-d2", "int4")
    res = simulate(plan("preload", wl, profile, None), profile, record_trace=False).metrics
    assert res.feasible
    assert res.latency_s >= wl.weight_bytes / profile.storage.read_bandwidth
    kv_cache = 2 * 28 * 2 * 128 * 10 * 2  # K and V, 28 layers x 2 KV heads x 128, 10 tokens
    assert res.peak_memory_bytes >= wl.weight_bytes + kv_cache


def test_head_norm_kinds_name_their_weights_like_the_checkpoints():
    # RMSNorm over head_dim: q_norm / k_norm, weight only (Qwen3, Gemma 3); LayerNorm: Phi's
    # q_layernorm / k_layernorm with weight and bias
    for kind, names, n_weights in (("rmsnorm", ("q_norm", "k_norm"), 1),
                                   ("layernorm", ("q_layernorm", "k_layernorm"), 2)):
        b = GraphBuilder("m", "fp16")
        attention(b, Act(None, (3, 64)), "attn", AttnSpec(4, 16, 2, qk_norm=kind))
        m = b.build()
        for name, heads in zip(names, (4, 2), strict=True):
            op = m.op(f"attn.{name}")
            assert op.kind == kind and op.output_elems == 3 * heads * 16
            assert [t.shape for t in op.weights] == [(16,)] * n_weights
            assert op.flops == ELEMENTWISE_FLOPS[kind] * 3 * heads * 16
        assert ("attn.q_proj", f"attn.{names[0]}") in m.graph.edges
        assert (f"attn.{names[0]}", "attn.qk") in m.graph.edges


def test_lm_config_refuses_an_unknown_style_naming_the_valid_ones():
    with pytest.raises(WorkloadError, match="unknown style 'gpt3'; valid styles: gpt2, gpt_neo"):
        LMConfig("x", "gpt3", 100, 64, 1, 4, 256)
