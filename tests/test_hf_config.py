"""Hugging Face config.json import: real configs give the zoo's architectures and counts."""

from __future__ import annotations

import json

import pytest

from workloads.hf_config import load_hf_config
from workloads.model import WorkloadError
from workloads.zoo import get_model

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
    with pytest.raises(WorkloadError, match="unsupported model_type 't5'.*llama"):
        load_hf_config({"model_type": "t5"})
    with pytest.raises(WorkloadError, match="lacks hidden_size"):
        load_hf_config({"model_type": "llama", "vocab_size": 10})
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    with pytest.raises(WorkloadError, match="not valid JSON"):
        load_hf_config(bad)
    with pytest.raises(WorkloadError, match="not found"):
        load_hf_config(tmp_path / "nope.json")
