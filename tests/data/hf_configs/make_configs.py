"""Write the config.json files of real checkpoints with transformers' own config classes, and
print each model's parameter count as transformers builds it (on the meta device, no weights).

Run by hand (needs `pip install torch transformers`; CI does not run it):
    python tests/data/hf_configs/make_configs.py
The values are those of the published config.json of each checkpoint named below.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import transformers as tf

HERE = Path(__file__).parent

# file stem -> (config class, model class, checkpoint, architectures, values)
CHECKPOINTS = {
    "mistral-7b": ("MistralConfig", "AutoModelForCausalLM", "mistralai/Mistral-7B-v0.1",
                   ["MistralForCausalLM"],
                   dict(vocab_size=32000, hidden_size=4096, intermediate_size=14336,
                        num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                        max_position_embeddings=32768, rms_norm_eps=1e-5, rope_theta=10000.0,
                        sliding_window=4096, tie_word_embeddings=False)),
    "qwen2.5-0.5b": ("Qwen2Config", "AutoModelForCausalLM", "Qwen/Qwen2.5-0.5B",
                     ["Qwen2ForCausalLM"],
                     dict(vocab_size=151936, hidden_size=896, intermediate_size=4864,
                          num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                          max_position_embeddings=32768, max_window_layers=24,
                          rope_theta=1000000.0, sliding_window=32768, use_sliding_window=False,
                          rms_norm_eps=1e-6, tie_word_embeddings=True)),
    "gemma-2b": ("GemmaConfig", "AutoModelForCausalLM", "google/gemma-2b", ["GemmaForCausalLM"],
                 dict(vocab_size=256000, hidden_size=2048, intermediate_size=16384,
                      num_hidden_layers=18, num_attention_heads=8, num_key_value_heads=1,
                      head_dim=256, max_position_embeddings=8192, rms_norm_eps=1e-6,
                      hidden_activation="gelu_pytorch_tanh")),
    "phi-2": ("PhiConfig", "AutoModelForCausalLM", "microsoft/phi-2", ["PhiForCausalLM"],
              dict(vocab_size=51200, hidden_size=2560, intermediate_size=10240,
                   num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
                   max_position_embeddings=2048, partial_rotary_factor=0.4, qk_layernorm=False,
                   hidden_act="gelu_new", layer_norm_eps=1e-5, tie_word_embeddings=False)),
    "phi-3-mini-4k": ("Phi3Config", "AutoModelForCausalLM", "microsoft/Phi-3-mini-4k-instruct",
                      ["Phi3ForCausalLM"],
                      dict(vocab_size=32064, hidden_size=3072, intermediate_size=8192,
                           num_hidden_layers=32, num_attention_heads=32,
                           num_key_value_heads=32, max_position_embeddings=4096,
                           original_max_position_embeddings=4096, sliding_window=2047,
                           rms_norm_eps=1e-5, tie_word_embeddings=False)),
    "falcon-7b": ("FalconConfig", "AutoModelForCausalLM", "tiiuae/falcon-7b",
                  ["FalconForCausalLM"],
                  dict(vocab_size=65024, hidden_size=4544, num_hidden_layers=32,
                       num_attention_heads=71, multi_query=True, new_decoder_architecture=False,
                       parallel_attn=True, bias=False, alibi=False)),
    "falcon-40b": ("FalconConfig", "AutoModelForCausalLM", "tiiuae/falcon-40b",
                   ["FalconForCausalLM"],
                   dict(vocab_size=65024, hidden_size=8192, num_hidden_layers=60,
                        num_attention_heads=128, num_kv_heads=8, new_decoder_architecture=True,
                        parallel_attn=True, bias=False, alibi=False)),
    "mixtral-8x7b": ("MixtralConfig", "AutoModelForCausalLM", "mistralai/Mixtral-8x7B-v0.1",
                     ["MixtralForCausalLM"],
                     dict(vocab_size=32000, hidden_size=4096, intermediate_size=14336,
                          num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                          num_local_experts=8, num_experts_per_tok=2,
                          max_position_embeddings=32768, rope_theta=1000000.0,
                          sliding_window=None, tie_word_embeddings=False)),
    "qwen1.5-moe-a2.7b": ("Qwen2MoeConfig", "AutoModelForCausalLM", "Qwen/Qwen1.5-MoE-A2.7B",
                          ["Qwen2MoeForCausalLM"],
                          dict(vocab_size=151936, hidden_size=2048, intermediate_size=5632,
                               moe_intermediate_size=1408,
                               shared_expert_intermediate_size=5632, num_experts=60,
                               num_experts_per_tok=4, num_hidden_layers=24,
                               num_attention_heads=16, num_key_value_heads=16,
                               decoder_sparse_step=1, max_position_embeddings=8192,
                               max_window_layers=21, use_sliding_window=False,
                               sliding_window=32768, tie_word_embeddings=False)),
    "opt-125m": ("OPTConfig", "AutoModelForCausalLM", "facebook/opt-125m", ["OPTForCausalLM"],
                 dict(vocab_size=50272, hidden_size=768, num_hidden_layers=12, ffn_dim=3072,
                      num_attention_heads=12, max_position_embeddings=2048,
                      do_layer_norm_before=True, word_embed_proj_dim=768,
                      activation_function="relu")),
    "opt-350m": ("OPTConfig", "AutoModelForCausalLM", "facebook/opt-350m", ["OPTForCausalLM"],
                 dict(vocab_size=50272, hidden_size=1024, num_hidden_layers=24, ffn_dim=4096,
                      num_attention_heads=16, max_position_embeddings=2048,
                      do_layer_norm_before=False, word_embed_proj_dim=512,
                      activation_function="relu")),
    "t5-small": ("T5Config", "AutoModelForSeq2SeqLM", "google-t5/t5-small",
                 ["T5ForConditionalGeneration"],
                 dict(vocab_size=32128, d_model=512, d_kv=64, d_ff=2048, num_layers=6,
                      num_heads=8, relative_attention_num_buckets=32,
                      feed_forward_proj="relu")),
    "distilbert-base-uncased": ("DistilBertConfig", "AutoModel", "distilbert-base-uncased",
                                ["DistilBertForMaskedLM"],
                                dict(vocab_size=30522, dim=768, n_layers=6, n_heads=12,
                                     hidden_dim=3072, max_position_embeddings=512)),
    "whisper-small": ("WhisperConfig", "AutoModelForSpeechSeq2Seq", "openai/whisper-small",
                      ["WhisperForConditionalGeneration"],
                      dict(vocab_size=51865, num_mel_bins=80, d_model=768, encoder_layers=12,
                           decoder_layers=12, encoder_attention_heads=12,
                           decoder_attention_heads=12, encoder_ffn_dim=3072,
                           decoder_ffn_dim=3072, max_source_positions=1500,
                           max_target_positions=448)),
}


def main() -> None:
    counts = {}
    for stem, (cfg_cls, model_cls, ckpt, archs, values) in CHECKPOINTS.items():
        cfg = getattr(tf, cfg_cls)(architectures=archs, **values)
        cfg._name_or_path = ckpt
        (HERE / f"{stem}.json").write_text(cfg.to_json_string(use_diff=True))
        with torch.device("meta"):
            model = getattr(tf, model_cls).from_config(cfg)
        counts[stem] = model.num_parameters()
        print(f"{stem:<26} {ckpt:<36} {counts[stem]:>16,}")
    (HERE / "transformers_counts.json").write_text(json.dumps(
        {"transformers": tf.__version__, "num_parameters": counts}, indent=1) + "\n")


if __name__ == "__main__":
    main()
