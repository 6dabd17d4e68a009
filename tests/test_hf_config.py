"""Hugging Face config.json import: real configs give the zoo's architectures and counts, every
supported family gives its checkpoint's published parameter count exactly, and configs that
contradict their family are refused."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from workloads.hf_config import load_hf_config
from workloads.model import WorkloadError
from workloads.zoo import get_model
from workloads.zoo.layers import ELEMENTWISE_FLOPS

# values from the published config.json files on the Hugging Face hub
GPT2 = {"activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2", "n_ctx": 1024, "n_embd": 768, "n_head": 12, "n_layer": 12,
        "n_positions": 1024, "vocab_size": 50257, "layer_norm_epsilon": 1e-05}
LLAMA_32_1B = {"architectures": ["LlamaForCausalLM"], "attention_bias": False, "head_dim": 64,
               "hidden_act": "silu", "hidden_size": 2048, "intermediate_size": 8192,
               "max_position_embeddings": 131072, "mlp_bias": False, "model_type": "llama",
               "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8,
               "rms_norm_eps": 1e-05, "rope_theta": 500000.0, "tie_word_embeddings": True,
               "vocab_size": 128256, "_name_or_path": "meta-llama/Llama-3.2-1B"}
LLAMA_2_7B = {"architectures": ["LlamaForCausalLM"], "hidden_size": 4096,
              "intermediate_size": 11008, "max_position_embeddings": 4096, "model_type": "llama",
              "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 32,
              "rms_norm_eps": 1e-05, "vocab_size": 32000}
GPT_NEO_13 = {"model_type": "gpt_neo", "hidden_size": 2048, "num_layers": 24, "num_heads": 16,
              "intermediate_size": None, "vocab_size": 50257, "max_position_embeddings": 2048,
              "window_size": 256, "attention_layers": ["global", "local"] * 12}
BERT = {"architectures": ["BertForMaskedLM"], "hidden_size": 768, "intermediate_size": 3072,
        "max_position_embeddings": 512, "model_type": "bert", "num_attention_heads": 12,
        "num_hidden_layers": 12, "type_vocab_size": 2, "vocab_size": 30522}
VIT = {"architectures": ["ViTForImageClassification"], "hidden_size": 768, "image_size": 224,
       "intermediate_size": 3072, "model_type": "vit", "num_attention_heads": 12,
       "num_channels": 3, "num_hidden_layers": 12, "patch_size": 16, "qkv_bias": True,
       "id2label": {str(i): f"class{i}" for i in range(1000)}}


def _write(tmp_path, cfg, folder="model"):
    d = tmp_path / folder
    d.mkdir()
    (d / "config.json").write_text(json.dumps(cfg))
    return d / "config.json"


@pytest.mark.parametrize("cfg,zoo_name,params", [
    (GPT2, "gpt2", 124_439_808),
    (LLAMA_32_1B, "llama-3.2-1b", 1_235_814_400),
    (LLAMA_2_7B, "llama-2-7b", 6_738_415_616),
    (GPT_NEO_13, "gpt-neo-1.3b", 1_315_575_808),
    (BERT, "bert-base", 109_482_240),
    (VIT, "vit-b16", 86_567_656),
])
def test_config_matches_zoo_model(tmp_path, cfg, zoo_name, params):
    m = load_hf_config(_write(tmp_path, cfg))
    zoo = get_model(zoo_name)
    assert m.param_count == zoo.param_count == params
    assert m.total_flops == zoo.total_flops
    assert len(m.ops) == len(zoo.ops)


def test_name_from_config_or_folder(tmp_path):
    assert load_hf_config(LLAMA_32_1B).name == "Llama-3.2-1B"
    path = _write(tmp_path, GPT2, "my-gpt2")
    m = load_hf_config(path)
    assert m.name == "my-gpt2" and all(t.startswith("my-gpt2/") for t in m.tensors)
    assert load_hf_config(tmp_path / "my-gpt2").name == "my-gpt2"  # a folder works too


def test_dtype_and_tokens(tmp_path):
    m = load_hf_config(GPT2, dtype="int4", tokens=16)
    assert m.dtypes == {"int4", "fp16"}  # biases and norms stay fp16
    assert m.total_flops < load_hf_config(GPT2).total_flops


def test_bad_configs(tmp_path):
    with pytest.raises(WorkloadError, match="unsupported model_type 'gemma3'.*llama.*whisper"):
        load_hf_config({"model_type": "gemma3"})
    with pytest.raises(WorkloadError, match="lacks hidden_size"):
        load_hf_config({"model_type": "llama", "vocab_size": 10})
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    with pytest.raises(WorkloadError, match="not valid JSON"):
        load_hf_config(bad)
    with pytest.raises(WorkloadError, match="not found"):
        load_hf_config(tmp_path / "nope.json")


# config.json files written by transformers' own config classes with the values of the real
# checkpoints (tests/data/hf_configs/make_configs.py); the counts are the published ones, and
# transformers_counts.json holds transformers' own num_parameters() for the same files
HF = Path(__file__).parent / "data" / "hf_configs"
PUBLISHED = {
    # file: (checkpoint, published parameter count, what the count is)
    "mistral-7b": ("mistralai/Mistral-7B-v0.1", 7_241_732_096, "HF model card 7.24B"),
    "qwen2.5-0.5b": ("Qwen/Qwen2.5-0.5B", 494_032_768, "HF model card 0.49B"),
    "gemma-2b": ("google/gemma-2b", 2_506_172_416, "HF model card 2.51B"),
    "phi-2": ("microsoft/phi-2", 2_779_683_840, "HF model card 2.78B"),
    "phi-3-mini-4k": ("microsoft/Phi-3-mini-4k-instruct", 3_821_079_552, "HF 3.82B"),
    "falcon-7b": ("tiiuae/falcon-7b", 6_921_720_704, "HF model card 6.92B"),
    "mixtral-8x7b": ("mistralai/Mixtral-8x7B-v0.1", 46_702_792_704, "HF model card 46.7B"),
    "qwen1.5-moe-a2.7b": ("Qwen/Qwen1.5-MoE-A2.7B", 14_315_784_192, "model card 14.3B total"),
    "opt-125m": ("facebook/opt-125m", 125_239_296, "HF model card 125M"),
    "opt-350m": ("facebook/opt-350m", 331_196_416, "HF model card 331M"),
    "t5-small": ("google-t5/t5-small", 60_506_624, "HF model card 60.5M"),
    "distilbert-base-uncased": ("distilbert-base-uncased", 66_362_880,
                                "DistilBertModel, HF model card 66M"),
    "whisper-small": ("openai/whisper-small", 241_734_912, "HF model card 242M"),
    "falcon-40b": ("tiiuae/falcon-40b", 41_303_293_952, "transformers num_parameters()"),
}


def hf(stem: str) -> dict:
    return json.loads((HF / f"{stem}.json").read_text())


@pytest.mark.parametrize("stem", list(PUBLISHED))
def test_real_checkpoint_configs_give_published_counts(stem):
    _, published, _ = PUBLISHED[stem]
    m = load_hf_config(HF / f"{stem}.json")
    assert m.param_count == published
    counted = json.loads((HF / "transformers_counts.json").read_text())["num_parameters"]
    assert counted[stem] == published  # transformers builds the same count from the same file
    assert m.name == stem and not m.warnings  # named after the file
    assert m.total_flops > 2 * 128 * (m.param_count * 0.01)  # every family computes


def _tensor(m, suffix):
    (name,) = [t for t in m.tensors if t.endswith(suffix)]
    return m.tensors[name]


def test_family_details_match_the_checkpoints():
    q = load_hf_config(hf("qwen2.5-0.5b"))  # q/k/v biases, no o_proj bias, tied embeddings
    assert _tensor(q, "layers.0.self_attn.k_proj.bias").shape == (128,)
    assert not [t for t in q.tensors if t.endswith("o_proj.bias")]
    assert q.op("lm_head").weights[0].name.endswith("model.embed_tokens.weight")
    g = load_hf_config(hf("gemma-2b"))  # head_dim 256 with 8 heads and 1 kv head
    assert _tensor(g, "layers.0.self_attn.q_proj.weight").shape == (2048, 2048)
    assert _tensor(g, "layers.0.self_attn.k_proj.weight").shape == (256, 2048)
    assert g.op("model.layers.0.mlp.gate_proj").attrs["act"] == "gelu"
    f = load_hf_config(hf("falcon-7b"))  # multi-query: q (4544) + one k and one v head (64)
    assert _tensor(f, "h.0.self_attention.query_key_value.weight").shape == (4544 + 128, 4544)
    f40 = load_hf_config(hf("falcon-40b"))  # new decoder: 8 kv heads, ln_attn + ln_mlp
    assert _tensor(f40, "h.0.self_attention.query_key_value.weight").shape == (
        (128 + 2 * 8) * 64, 8192)
    assert f40.op("transformer.h.0.ln_mlp").kind == "layernorm"
    p = load_hf_config(hf("phi-2"))  # parallel block: the residual add reads attention and MLP
    assert set(p.predecessors("model.layers.0.residual_add")) == {
        "model.embed_tokens", "model.layers.0.self_attn.dense",
        "model.layers.0.mlp.fc2"}
    assert _tensor(p, "lm_head.bias").shape == (51200,)
    o = load_hf_config(hf("opt-350m"))  # 512-wide embeddings projected to 1024, post-LN
    assert o.op("model.decoder.project_in").weights[0].shape == (1024, 512)
    assert _tensor(o, "embed_positions.weight").shape == (2050, 1024)
    assert "model.decoder.final_layer_norm" not in o.graph


def test_phi_qk_layernorm_is_a_layernorm_with_bias_over_head_dim():
    # the zoo's one q/k-norm mechanism in the model's norm kind: LayerNorm for Phi (Qwen3 and
    # Gemma 3 get RMSNorm q_norm / k_norm, tests/test_zoo_more.py)
    base = load_hf_config(hf("phi-2"), tokens=4)
    qk = load_hf_config(hf("phi-2") | {"qk_layernorm": True}, tokens=4)
    assert qk.param_count - base.param_count == 32 * 2 * 2 * 80  # layers x q, k x w, b x 80
    for name in ("q_layernorm", "k_layernorm"):
        op = qk.op(f"model.layers.0.self_attn.{name}")
        assert op.kind == "layernorm" and [t.shape for t in op.weights] == [(80,), (80,)]
        assert op.output_elems == 4 * 32 * 80  # 4 tokens x 32 heads x head_dim 80
    assert qk.total_flops - base.total_flops == 32 * 2 * ELEMENTWISE_FLOPS["layernorm"] * (
        4 * 32 * 80)
    assert ("model.layers.0.self_attn.q_layernorm", "model.layers.0.self_attn.qk") in \
        qk.graph.edges


def test_sliding_window_limits_attention_only_past_the_window():
    short = load_hf_config(hf("mistral-7b"), tokens=64)
    cfg = hf("mistral-7b") | {"sliding_window": 16}
    windowed = load_hf_config(cfg, tokens=64)
    assert windowed.param_count == short.param_count
    qk = "model.layers.0.self_attn.qk"
    assert short.op(qk).flops == 2 * 32 * 64 * 64 * 128
    assert windowed.op(qk).flops == 2 * 32 * 64 * 16 * 128
    # Qwen2: only layers from max_window_layers on use the window, when use_sliding_window
    q = hf("qwen2.5-0.5b") | {"use_sliding_window": True, "max_window_layers": 20,
                              "sliding_window": 8, "layer_types": None}
    m = load_hf_config(q, tokens=32)
    assert m.op("model.layers.19.self_attn.qk").flops == 2 * 14 * 32 * 32 * 64
    assert m.op("model.layers.20.self_attn.qk").flops == 2 * 14 * 32 * 8 * 64


def test_mixtral_experts_are_own_tensors_with_routing_metadata():
    m = load_hf_config(hf("mixtral-8x7b"), tokens=16)
    op = m.op("model.layers.3.block_sparse_moe.experts")
    assert op.kind == "moe" and len(op.weights) == 8 * 3
    assert op.attrs["num_experts"] == 8 and op.attrs["experts_per_token"] == 2
    e5 = op.attrs["expert_tensors"][5]
    assert [n.split("experts.5.")[1] for n in e5] == ["w1.weight", "w3.weight", "w2.weight"]
    assert all(m.tensors[n].shape in ((14336, 4096), (4096, 14336)) for n in e5)
    assert op.attrs["router"] == "model.layers.3.block_sparse_moe.gate"
    assert m.predecessors(op.name) == ("model.layers.3.post_attention_layernorm", op.attrs["router"])
    # FLOPs: the 2 experts each token runs (gate, up, down, SiLU 4 + mul 1), the weighted sum
    # of their outputs, and the router's softmax over 8 experts
    per_expert = 6 * 4096 * 14336 + 5 * 14336
    assert op.attrs["expert_flops_per_token"] == per_expert
    assert op.flops == 16 * (2 * per_expert + 2 * 2 * 4096 + 5 * 8)
    # a dense model of the same shape runs every token through one MLP of that size
    dense = load_hf_config(hf("mistral-7b") | {"vocab_size": 32000}, tokens=16)
    mlp = sum(dense.op(f"model.layers.3.mlp.{n}").flops
              for n in ("gate_proj", "up_proj", "down_proj", "gate_mul"))
    assert mlp == 16 * per_expert


def test_qwen2_moe_shared_expert_and_dense_layers():
    m = load_hf_config(hf("qwen1.5-moe-a2.7b"), tokens=4)
    op = m.op("model.layers.0.mlp.experts")
    assert op.attrs["num_experts"] == 60 and op.attrs["experts_per_token"] == 4
    assert _tensor(m, "layers.0.mlp.shared_expert.down_proj.weight").shape == (2048, 5632)
    assert _tensor(m, "layers.0.mlp.shared_expert_gate.weight").shape == (1, 2048)
    cfg = hf("qwen1.5-moe-a2.7b") | {"mlp_only_layers": [0], "decoder_sparse_step": 2}
    sparse = load_hf_config(cfg, tokens=4)
    moe = [op.name for op in sparse.ops if op.kind == "moe"]
    assert moe == [f"model.layers.{i}.mlp.experts" for i in range(1, 24, 2)]
    assert _tensor(sparse, "layers.0.mlp.down_proj.weight").shape == (2048, 5632)


def test_encoder_decoders_and_encoders():
    t = load_hf_config(HF / "t5-small.json", tokens=16)
    # relative position bias tables in the first block of each stack, on the QK^T op
    qk = t.op("encoder.block.0.layer.0.SelfAttention.qk")
    assert [w.shape for w in qk.weights] == [(32, 8)]
    assert qk.flops == 2 * 8 * 16 * 16 * 64 + 8 * 16 * 16
    assert t.op("lm_head").weights[0].name == "t5-small/shared.weight"
    cross_k = "decoder.block.2.layer.1.EncDecAttention.k"
    assert t.predecessors(cross_k) == ("encoder.final_layer_norm",)
    v11 = load_hf_config(hf("t5-small") | {"feed_forward_proj": "gated-gelu",
                                            "tie_word_embeddings": False})
    assert v11.param_count == 60_506_624 + 12 * 2048 * 512 + 32128 * 512
    w = load_hf_config(hf("whisper-small"), tokens=8)
    assert w.op("model.encoder.conv2").output_elems == 1500 * 768  # 3000 frames, stride 2
    assert w.predecessors("model.decoder.layers.0.encoder_attn.k_proj") == (
        "model.encoder.layer_norm",)
    d = load_hf_config(hf("distilbert-base-uncased"), tokens=32)
    assert _tensor(d, "transformer.layer.5.ffn.lin2.weight").shape == (768, 3072)
    assert math.isclose(d.total_flops / 32, 2 * (66_362_880 - 23_440_896 - 393_216), rel_tol=0.1)


@pytest.mark.parametrize("stem,key,value", [
    ("mixtral-8x7b", "model_type", "llama"),        # experts ignored: -84.5%
    ("qwen2.5-0.5b", "model_type", "llama"),        # q/k/v biases lost
    ("phi-2", "model_type", "llama"),               # +30%
    ("falcon-7b", "model_type", "llama"),           # +38%
    ("mistral-7b", "model_type", "llama"),
])
def test_relabelled_configs_are_refused(stem, key, value):
    cfg = hf(stem) | {key: value}
    with pytest.raises(WorkloadError, match="architectures names .* set model_type to"):
        load_hf_config(cfg)
    cfg.pop("architectures")
    with pytest.raises(WorkloadError, match="llama has no such field.*Set model_type"):
        load_hf_config(cfg)


def test_contradicting_fields_and_bad_sizes_are_refused():
    with pytest.raises(WorkloadError, match="sets num_local_experts = 8.*only mixtral"):
        load_hf_config(LLAMA_2_7B | {"num_local_experts": 8})
    with pytest.raises(WorkloadError, match="exceeds the 8 experts"):
        load_hf_config(hf("mixtral-8x7b") | {"num_experts_per_tok": 9})
    with pytest.raises(WorkloadError, match="num_hidden_layers must be a whole number >= 1"):
        load_hf_config(hf("phi-2") | {"num_hidden_layers": -2})
    with pytest.raises(WorkloadError, match="not a multiple of 3 key/value heads"):
        load_hf_config(LLAMA_2_7B | {"num_key_value_heads": 3})
    with pytest.raises(WorkloadError, match="lacks num_local_experts"):
        load_hf_config({k: v for k, v in hf("mixtral-8x7b").items() if k != "num_local_experts"})
    with pytest.raises(WorkloadError, match="2048 tokens exceed the model's 1024 learned"):
        load_hf_config(GPT2, tokens=2048)


def test_llama_biases_and_quantized_checkpoints_flagged():
    m = load_hf_config(LLAMA_32_1B | {"mlp_bias": True, "attention_bias": True})
    extra = 16 * ((2048 + 2 * 512 + 2048) + (2 * 8192 + 2048))  # q, k, v, o; gate, up, down
    assert m.param_count == 1_235_814_400 + extra
    q = load_hf_config(LLAMA_32_1B | {"quantization_config": {"quant_method": "gptq",
                                                               "bits": 4}})
    assert q.param_count == 1_235_814_400
    assert len(q.warnings) == 1 and "quantized (gptq, 4 bits)" in q.warnings[0]
    odd = load_hf_config(LLAMA_32_1B | {"hidden_act": "xielu"})
    assert "activation 'xielu' is not known" in odd.warnings[0]
