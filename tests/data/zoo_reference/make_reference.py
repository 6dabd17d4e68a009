"""Reference parameter counts and FLOPs of zoo models from the libraries that implement them.

Run where torch, transformers, timm, torchvision and opencv are installed (not in CI):
    python tests/data/zoo_reference/make_reference.py OUT.json
Each Hugging Face model is built from its checkpoint's config.json values (written out below;
no download) with random weights; parameters are `num_parameters()`; FLOPs are
torch.utils.flop_counter's count (matmuls, convolutions and attention, 2 per multiply-add) of
one forward pass on the zoo model's default input (LLMs: prefill of 128 tokens, logits of the
last token only).
tests/test_zoo_more.py compares the zoo's builders with the JSON this writes.
"""

from __future__ import annotations

import json
import sys
import traceback

import torch
from torch.utils.flop_counter import FlopCounterMode

DEV = "cuda" if torch.cuda.is_available() else "cpu"
TOKENS = 128

GEMMA3_LAYERS = ["sliding_attention" if (i + 1) % 6 else "full_attention" for i in range(26)]
LLMS = {  # zoo name -> (config class, config.json values of the HF checkpoint)
    "gpt-neo-125m": ("GPTNeoConfig", dict(
        vocab_size=50257, hidden_size=768, num_layers=12, num_heads=12, intermediate_size=None,
        max_position_embeddings=2048, window_size=256, activation_function="gelu_new",
        attention_types=[[["global", "local"], 6]], tie_word_embeddings=True)),
    "qwen2-1.5b": ("Qwen2Config", dict(
        vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
        num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=131072,
        tie_word_embeddings=True, use_sliding_window=False, hidden_act="silu")),
    "qwen3-4b": ("Qwen3Config", dict(
        vocab_size=151936, hidden_size=2560, intermediate_size=9728, num_hidden_layers=36,
        num_attention_heads=32, num_key_value_heads=8, head_dim=128, attention_bias=False,
        max_position_embeddings=40960, tie_word_embeddings=True, hidden_act="silu")),
    "gemma3-1b": ("Gemma3TextConfig", dict(
        vocab_size=262144, hidden_size=1152, intermediate_size=6912, num_hidden_layers=26,
        num_attention_heads=4, num_key_value_heads=1, head_dim=256, sliding_window=512,
        layer_types=GEMMA3_LAYERS, hidden_activation="gelu_pytorch_tanh",
        query_pre_attn_scalar=256, max_position_embeddings=32768, tie_word_embeddings=True)),
    "redpajama-incite-3b": ("GPTNeoXConfig", dict(
        vocab_size=50432, hidden_size=2560, intermediate_size=10240, num_hidden_layers=32,
        num_attention_heads=32, rotary_pct=1.0, max_position_embeddings=2048,
        use_parallel_residual=False, hidden_act="gelu", tie_word_embeddings=False)),
    # already in the zoo: references for the builders the new models share
    "gpt2": ("GPT2Config", dict(vocab_size=50257, n_embd=768, n_layer=12, n_head=12,
                                n_positions=1024)),
    "llama-3.2-1b": ("LlamaConfig", dict(
        vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
        num_attention_heads=32, num_key_value_heads=8, head_dim=64, tie_word_embeddings=True,
        max_position_embeddings=131072)),
}
WHISPER = {"whisper-small": dict(d_model=768, encoder_layers=12, decoder_layers=12,
                                 encoder_attention_heads=12, decoder_attention_heads=12,
                                 encoder_ffn_dim=3072, decoder_ffn_dim=3072),
           "whisper-medium": dict(d_model=1024, encoder_layers=24, decoder_layers=24,
                                  encoder_attention_heads=16, decoder_attention_heads=16,
                                  encoder_ffn_dim=4096, decoder_ffn_dim=4096)}


def flops(fn) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        fn()
    return int(fc.get_total_flops())


def nparams(module) -> int:
    return sum(p.numel() for p in module.parameters())


def llm(name: str, cls: str, values: dict) -> dict:
    import transformers
    cfg = getattr(transformers, cls)(**values)
    with torch.device(DEV):
        # eager attention: the flop counter cannot count grouped-query sdpa
        model = transformers.AutoModelForCausalLM.from_config(
            cfg, attn_implementation="eager").to(torch.bfloat16).eval()
    ids = torch.randint(0, 1000, (1, TOKENS), device=DEV)

    def prefill():  # all layers on every token, the LM head on the last one
        h = model.base_model(input_ids=ids, use_cache=False).last_hidden_state
        model.get_output_embeddings()(h[:, -1:])
    return {"params": model.num_parameters(), "prefill_flops": flops(prefill), "tokens": TOKENS,
            "class": type(model).__name__}


def whisper(name: str, values: dict) -> dict:
    import transformers
    cfg = transformers.WhisperConfig(vocab_size=51865, num_mel_bins=80,
                                     max_source_positions=1500, max_target_positions=448,
                                     **values)
    with torch.device(DEV):
        model = transformers.WhisperForConditionalGeneration(cfg).to(torch.bfloat16)
    model.eval()
    enc, dec = model.model.encoder, model.model.decoder
    feats = torch.randn(1, 80, 3000, device=DEV, dtype=torch.bfloat16)
    out = {}
    f_enc = flops(lambda: out.setdefault("h", enc(feats).last_hidden_state))
    ids = torch.randint(0, 1000, (1, 32), device=DEV)

    def decode():
        h = dec(input_ids=ids, encoder_hidden_states=out["h"], use_cache=False).last_hidden_state
        model.proj_out(h[:, -1:])
    return {"params": model.num_parameters(), "encoder_params": nparams(enc),
            "decoder_params": nparams(dec), "encoder_flops": f_enc,
            "decoder_flops": flops(decode), "decoder_tokens": 32}


def vit() -> dict:
    import timm
    import torchvision
    import transformers
    cfg = transformers.ViTConfig(image_size=384, patch_size=32, hidden_size=768,
                                 num_hidden_layers=12, num_attention_heads=12,
                                 intermediate_size=3072, num_labels=1000)
    hf = transformers.ViTForImageClassification(cfg).to(DEV).eval()
    tm = timm.create_model("vit_base_patch32_384", pretrained=False).to(DEV).eval()
    tv = torchvision.models.vit_b_32().to(DEV).eval()
    x = torch.randn(1, 3, 384, 384, device=DEV)
    return {"hf_params": hf.num_parameters(), "hf_flops": flops(lambda: hf(pixel_values=x)),
            "timm_params": nparams(tm), "timm_flops": flops(lambda: tm(x)),
            "torchvision_vit_b_32_params": nparams(tv)}


def main(path: str) -> None:
    import transformers
    res: dict = {"torch": torch.__version__, "transformers": transformers.__version__}
    jobs = [(n, lambda n=n, c=c, v=v: llm(n, c, v)) for n, (c, v) in LLMS.items()]
    jobs += [(n, lambda n=n, v=v: whisper(n, v)) for n, v in WHISPER.items()]
    jobs += [("vit-b32-384", vit)]
    for name, job in jobs:
        try:
            res[name] = job()
        except Exception:  # record and go on: one broken reference must not lose the others
            res[name] = {"error": traceback.format_exc(limit=3)}
        print(name, {k: v for k, v in res[name].items() if k != "blobs"}, flush=True)
        torch.cuda.empty_cache() if DEV == "cuda" else None
    with open(path, "w") as fh:
        json.dump(res, fh, indent=1, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1])
