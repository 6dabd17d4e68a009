"""The model zoo against published parameter counts, and its structural conventions."""

from __future__ import annotations

import math
import time
from collections import Counter

import pytest

from workloads.model import WorkloadError
from workloads.zoo import ZOO, get_model, list_models

# name -> (published parameter count, where it is published)
PUBLISHED: dict[str, tuple[int, str]] = {
    "resnet50": (25_557_032, "torchvision resnet50 model card: 25,557,032"),
    "resnet152": (60_192_808, "torchvision resnet152 model card: 60,192,808"),
    "mobilenetv2": (3_504_872, "torchvision mobilenet_v2 model card: 3,504,872"),
    "yolov4": (64_360_000, "YOLOv4 (darknet yolov4.cfg, 80 classes): ~64.36M"),
    "vit-b16": (86_567_656, "torchvision vit_b_16 model card: 86,567,656"),
    "swin-t": (28_288_354, "torchvision swin_t model card: 28,288,354"),
    "sam-vit-b-encoder": (89_670_000, "segment-anything sam_vit_b image encoder: ~89.67M"),
    "bert-base": (109_482_240, "HF bert-base-uncased BertModel with pooler: 109,482,240"),
    "gpt2": (124_439_808, "HF gpt2: 124,439,808 (lm_head tied to wte, counted once)"),
    "gpt-neo-1.3b": (1_316_000_000, "Open LLM Leaderboard EleutherAI/gpt-neo-1.3B: 1.316B"),
    "llama-2-7b": (6_738_415_616, "Llama 2 paper / HF Llama-2-7b-hf: 6,738,415,616"),
    "llama-3.2-1b": (1_235_814_400, "HF meta-llama/Llama-3.2-1B: 1.236B (tied embeddings)"),
    "mixtral-8x7b": (46_702_792_704, "HF mistralai/Mixtral-8x7B-v0.1: 46,702,792,704"),
    "sd15-text-encoder": (123_060_480, "HF CLIPTextModel clip-vit-large-patch14: 123,060,480"),
    "sd15-unet": (859_520_964, "diffusers SD1.5 UNet2DConditionModel: 859,520,964"),
    "sd15-vae-decoder": (49_490_000, "diffusers SD1.5 VAE decoder: ~49.49M"),
}


@pytest.fixture(scope="module")
def zoo():
    return {name: get_model(name) for name in list_models()}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_param_count_matches_published_figure(zoo, name):
    published, source = PUBLISHED[name]
    m = zoo[name]
    assert m.param_count == pytest.approx(published, rel=0.01), source
    assert m.published_params == pytest.approx(published, rel=0.01)
    assert m.source


def test_gpt_neo_27b_counts_weights_not_mask_buffers(zoo):
    # Open LLM Leaderboard lists 2.718B: the checkpoint also stores a 2048x2048 causal-mask
    # buffer for each of the 16 global-attention layers (not weights); HF num_parameters() of
    # GPTNeoForCausalLM (config: hidden 2560, 32 layers, vocab 50257, 2048 positions) is
    # 2,651,307,520.
    m = zoo["gpt-neo-2.7b"]
    assert m.param_count == pytest.approx(2_651_307_520, rel=0.01)
    assert m.param_count + 16 * 2048 * 2048 == pytest.approx(2_718_000_000, rel=0.01)


def test_whisper_small_split_sums_to_published_total(zoo):
    # HF openai/whisper-small: 241.7M total. The token embedding (tied with proj_out) is
    # counted once, in the decoder, which uses it; the encoder has its own 1500 positions.
    enc, dec = zoo["whisper-small-encoder"], zoo["whisper-small-decoder"]
    assert enc.param_count + dec.param_count == pytest.approx(241_700_000, rel=0.01)
    assert "whisper-small-decoder/embed_tokens.weight" in dec.tensors
    assert not any("embed_tokens" in t for t in enc.tensors)
    assert enc.published_params + dec.published_params == 241_734_912


def test_every_model_has_metadata_and_prefixed_unique_tensors(zoo):
    assert len(zoo) == 35
    all_names: set[str] = set()
    for name, m in zoo.items():
        assert m.family == ZOO[name].family and m.source and m.published_params
        assert all(t.startswith(f"{name}/") for t in m.tensors), name
        assert not all_names & set(m.tensors)
        all_names |= set(m.tensors)
        assert len({op.name for op in m.ops}) == len(m.ops)
        assert m.total_flops > 0


def test_real_op_structure(zoo):
    r50 = Counter(op.kind for op in zoo["resnet50"].ops)
    assert r50["conv"] == 53 and r50["batchnorm"] == 53 and r50["linear"] == 1
    assert r50["add"] == 16
    gpt2 = Counter(op.kind for op in zoo["gpt2"].ops)
    assert gpt2["attention_qk"] == gpt2["attention_av"] == gpt2["softmax"] == 12
    assert gpt2["layernorm"] == 25
    llama = zoo["llama-2-7b"]
    assert Counter(op.kind for op in llama.ops)["linear"] == 32 * 7 + 1
    assert llama.op("model.layers.0.self_attn.q_proj").weights[0].shape == (4096, 4096)
    unet = Counter(op.kind for op in zoo["sd15-unet"].ops)
    assert unet["attention_qk"] == 32  # 16 transformer blocks x (self + cross)
    # every linear/conv carries its own weight tensor
    for m in zoo.values():
        for op in m.ops:
            if op.kind in ("conv", "linear"):
                assert op.weights


def test_tied_embedding_counted_once(zoo):
    gpt2 = zoo["gpt2"]
    wte = gpt2.tensors["gpt2/transformer.wte.weight"]
    assert gpt2.op("lm_head").weights[0] is wte
    assert sum(1 for op in gpt2.ops for t in op.weights if t.name == wte.name) == 2
    assert "llama-2-7b/lm_head.weight" in get_model("llama-2-7b").tensors


def test_build_is_deterministic():
    a, b = get_model("swin-t"), get_model("swin-t")
    assert a.order == b.order
    assert [(o.name, o.flops, o.output_elems) for o in a.ops] == \
           [(o.name, o.flops, o.output_elems) for o in b.ops]
    assert list(a.tensors) == list(b.tensors)


def test_execution_order_follows_the_architecture(zoo):
    order = zoo["resnet50"].order
    assert order[0] == "conv1" and order[-1] == "fc"
    assert order.index("layer1.0.conv3") < order.index("layer1.0.add") < \
        order.index("layer1.1.conv1")


def test_llama_2_7b_builds_fast():
    t = time.perf_counter()
    m = get_model("llama-2-7b")
    assert time.perf_counter() - t < 1.0
    assert m.param_count == 6_738_415_616


@pytest.mark.parametrize("dtype,bytes_per", [("fp32", 4), ("fp16", 2)])
def test_float_dtype_bytes(zoo, dtype, bytes_per):
    m = get_model("resnet50", dtype)
    assert m.weight_bytes == m.param_count * bytes_per
    assert {op.dtype for op in m.ops} == {dtype}


def test_int4_and_int8_bytes_include_scales():
    m = get_model("gpt2", "int4")
    expect = sum(math.ceil(t.numel / 2) + 2 * math.ceil(t.numel / 128) if len(t.shape) > 1
                 else 2 * t.numel for t in m.tensors.values())  # vectors stay fp16
    assert m.weight_bytes == expect
    q = m.op("transformer.h.0.attn.c_attn").weights[0]
    assert q.shape == (2304, 768) and q.nbytes == 2304 * 768 // 2 + 2 * (2304 * 768 // 128)
    m8 = get_model("gpt2", "int8")
    w = m8.op("transformer.h.0.mlp.c_fc").weights[0]
    assert w.nbytes == 3072 * 768 + 2 * 3072  # one fp16 scale per output row


def test_per_tensor_dtype_override():
    name = "llama-3.2-1b/model.embed_tokens.weight"
    m = get_model("llama-3.2-1b", "int4", tensor_dtypes={name: "fp16"})
    assert m.tensors[name].dtype == "fp16"
    assert m.tensors[name].nbytes == 128256 * 2048 * 2
    assert m.tensors["llama-3.2-1b/model.layers.0.mlp.up_proj.weight"].dtype == "int4"
    assert m.dtypes == {"int4", "fp16"}
    with pytest.raises(WorkloadError, match="no tensor"):
        get_model("gpt2", "int4", tensor_dtypes={"gpt2/nope": "fp16"})


def test_sequence_length_and_image_size_args():
    short, long = get_model("bert-base", tokens=64), get_model("bert-base", tokens=128)
    assert short.param_count == long.param_count
    assert long.total_flops > 2 * short.total_flops * 0.99
    assert get_model("bert-base").total_flops == long.total_flops  # default 128 tokens
    small = get_model("resnet50", image=112)
    assert small.total_flops < get_model("resnet50").total_flops / 3.5


def test_unknown_names_and_options_rejected():
    with pytest.raises(WorkloadError, match="valid models: resnet50"):
        get_model("resnet51")
    with pytest.raises(WorkloadError, match="does not take seq"):
        get_model("gpt2", seq=3)
    with pytest.raises(WorkloadError, match="valid formats"):
        get_model("gpt2", "bf16")


def test_resnet50_flops_match_published_gmacs(zoo):
    # torchvision: ResNet-50 4.09 GFLOPS (multiply-adds), ViT-B/16 17.56, Swin-T 4.49
    for name, gmacs in (("resnet50", 4.09), ("vit-b16", 17.56), ("swin-t", 4.49)):
        assert zoo[name].total_flops / 2e9 == pytest.approx(gmacs, rel=0.05), name


def test_quantization_keeps_vectors_in_fp16():
    """int8/int4 quantize matrices and kernels; biases and norm scales stay fp16 (as GPTQ/AWQ)."""
    m = get_model("gpt2", "int4")
    vectors = [t for t in m.tensors.values() if len(t.shape) == 1]
    matrices = [t for t in m.tensors.values() if len(t.shape) >= 2]
    assert vectors and all(t.dtype == "fp16" for t in vectors)
    assert all(t.dtype == "int4" for t in matrices)
    fp16 = get_model("gpt2", "fp16").weight_bytes
    assert fp16 / 4 < m.weight_bytes < fp16 / 3.5  # ~4.1 bits per weight with group scales


def test_mixtral_zoo_entry_equals_its_config_import():
    """The zoo's Mixtral-8x7B is the model its config.json imports to: same parameters (the
    transformers count), ops and FLOPs."""
    from pathlib import Path

    from workloads.hf_config import load_hf_config

    cfg = Path(__file__).parent / "data" / "hf_configs" / "mixtral-8x7b.json"
    z, h = get_model("mixtral-8x7b", tokens=16), load_hf_config(cfg, tokens=16)
    assert z.param_count == h.param_count == 46_702_792_704
    assert [(o.name, o.kind, o.flops) for o in z.ops] == [(o.name, o.kind, o.flops) for o in h.ops]
