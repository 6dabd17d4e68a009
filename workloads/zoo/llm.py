"""Decoder-only language models (GPT-2, GPT-Neo, GPT-NeoX, Llama, Qwen, Qwen2/3, Gemma 3) from
their published configs, as a prefill of `tokens` tokens or as one decode step attending to
`past` cached tokens.

With `cache=True` every attention layer appends its new K and V to the KV cache as persistent
state (`state_elems` on the QK^T and AV ops), so a prefill + decode workload grows the cache by
one token per layer per step; sliding-window layers with `window_cache` (Gemma 3) keep only the
last `local_window` tokens, so their cache stops growing there. Weight tensor names do not
depend on `tokens` or `past`, so the prefill and every decode step share weights. Logits are
computed for the last token only (what a generation loop needs). Rotary position embedding
FLOPs are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

from workloads.model import Model
from workloads.zoo.layers import Act, GraphBuilder
from workloads.zoo.transformer import AttnSpec, attention

# block layouts and module names (see _names); the RMSNorm ones have gated (gate/up/down) MLPs
RMS_STYLES = ("llama", "qwen", "gemma3")
STYLES = ("gpt2", "gpt_neo", "gpt_neox", *RMS_STYLES)


@dataclass(frozen=True)
class LMConfig:
    """The architecture hyper-parameters of a decoder-only LM (Hugging Face config names)."""

    name: str
    style: str  # one of STYLES: module naming and block layout
    vocab: int
    hidden: int
    layers: int
    heads: int
    intermediate: int
    kv_heads: int = 0
    head_dim: int = 0
    max_positions: int = 0  # learned absolute position table; 0 = rotary (no table)
    tied: bool = True
    local_window: int = 0  # local / sliding-window attention: each query sees this many keys
    local_layers: tuple[int, ...] = ()  # which layers use local attention
    attn_bias: bool = False  # Llama-style q/k/v/o biases (HF attention_bias)
    published_params: int | None = None
    source: str = ""
    qkv_bias: bool = False  # q/k/v biases without an output-projection bias (Qwen2)
    qk_norm: bool = False  # an RMSNorm over head_dim on q and on k (Qwen3, Gemma 3)
    act: str = ""  # MLP activation (a key of ACT_FLOPS); "" = silu for RMS_STYLES, else gelu
    window_cache: bool = False  # local layers cache only the last local_window tokens

    @property
    def hd(self) -> int:
        return self.head_dim or self.hidden // self.heads


GPT2 = LMConfig("gpt2", "gpt2", 50257, 768, 12, 12, 3072, max_positions=1024,
                published_params=124_439_808,
                source="Radford et al. 2019; HF openai-community/gpt2 (124,439,808 params, "
                       "lm_head tied to wte)")
GPT_NEO_125M = LMConfig("gpt-neo-125m", "gpt_neo", 50257, 768, 12, 12, 3072,
                        max_positions=2048, local_window=256, local_layers=tuple(range(1, 12, 2)),
                        published_params=125_198_592,
                        source="Black et al. 2021; HF EleutherAI/gpt-neo-125M config.json (12 "
                               "layers, hidden 768, 12 heads, local attention window 256 on odd "
                               "layers, vocab 50257, 2048 positions, lm_head tied): 125,198,592 "
                               "params computed from the config, equal to transformers' "
                               "GPTNeoForCausalLM num_parameters() (the card says 125M)")
GPT_NEO_13 = LMConfig("gpt-neo-1.3b", "gpt_neo", 50257, 2048, 24, 16, 8192, max_positions=2048,
                      local_window=256, local_layers=tuple(range(1, 24, 2)),
                      published_params=1_315_575_808,
                      source="Black et al. 2021; HF EleutherAI/gpt-neo-1.3B (1,315,575,808 "
                             "params, lm_head tied)")
GPT_NEO_27 = LMConfig("gpt-neo-2.7b", "gpt_neo", 50257, 2560, 32, 20, 10240, max_positions=2048,
                      local_window=256, local_layers=tuple(range(1, 32, 2)),
                      published_params=2_651_307_520,
                      source="Black et al. 2021; HF EleutherAI/gpt-neo-2.7B: 2,651,307,520 "
                             "params (the 2.718B on the Open LLM Leaderboard also counts 16 "
                             "causal-mask buffers of 2048x2048 stored in the checkpoint)")
LLAMA2_7B = LMConfig("llama-2-7b", "llama", 32000, 4096, 32, 32, 11008, tied=False,
                     published_params=6_738_415_616,
                     source="Touvron et al. 2023, arXiv:2307.09288; HF meta-llama/Llama-2-7b-hf "
                            "(6,738,415,616 params)")
LLAMA32_1B = LMConfig("llama-3.2-1b", "llama", 128256, 2048, 16, 32, 8192, kv_heads=8,
                      head_dim=64, tied=True, published_params=1_235_814_400,
                      source="Meta Llama 3.2 model card; HF meta-llama/Llama-3.2-1B "
                             "(1,235,814,400 params, tied embeddings)")
QWEN2_15B = LMConfig("qwen2-1.5b", "llama", 151936, 1536, 28, 12, 8960, kv_heads=2, tied=True,
                     qkv_bias=True, published_params=1_543_714_304,
                     source="Yang et al. 2024, arXiv:2407.10671; HF Qwen/Qwen2-1.5B config.json "
                            "(28 layers, hidden 1536, 12 heads / 2 KV heads, intermediate 8960, "
                            "vocab 151936, q/k/v bias, tied, no sliding window): 1,543,714,304 "
                            "params computed from the config, equal to transformers' "
                            "Qwen2ForCausalLM num_parameters() (the card says 1.5B)")
QWEN_7B = LMConfig("qwen-7b", "qwen", 151936, 4096, 32, 32, 11008, tied=False, qkv_bias=True,
                   published_params=7_721_324_544,
                   source="Bai et al. 2023, arXiv:2309.16609; HF Qwen/Qwen-7B (v1) config.json "
                          "(32 layers, hidden 4096, 32 heads x kv_channels 128, intermediate_size "
                          "22016 = w1 + w2 of 11008 each, vocab 151936, bias on c_attn only, "
                          "untied): 7,721,324,544 params computed from the config and "
                          "modeling_qwen.py's modules (the card says 7.7B)")
QWEN3_4B = LMConfig("qwen3-4b", "llama", 151936, 2560, 36, 32, 9728, kv_heads=8, head_dim=128,
                    tied=True, qk_norm=True, published_params=4_022_468_096,
                    source="Qwen3 technical report, arXiv:2505.09388; HF Qwen/Qwen3-4B "
                           "config.json (36 layers, hidden 2560, 32 heads / 8 KV heads x 128, "
                           "intermediate 9728, vocab 151936, q_norm/k_norm, tied): 4,022,468,096 "
                           "params computed from the config, equal to transformers' "
                           "Qwen3ForCausalLM num_parameters() (the card says 4.0B, 3.6B "
                           "non-embedding)")
GEMMA3_1B = LMConfig("gemma3-1b", "gemma3", 262144, 1152, 26, 4, 6912, kv_heads=1, head_dim=256,
                     tied=True, qk_norm=True, act="gelu", local_window=512,
                     local_layers=tuple(i for i in range(26) if (i + 1) % 6),
                     window_cache=True, published_params=999_885_952,
                     source="Gemma 3 technical report, arXiv:2503.19786; HF google/gemma-3-1b-pt "
                            "config.json (26 layers, hidden 1152, 4 heads / 1 KV head x 256, "
                            "intermediate 6912, gelu_pytorch_tanh, vocab 262144, tied, q/k norm, "
                            "4 norms per layer, sliding window 512 on 5 of every 6 layers): "
                            "999,885,952 params computed from the config, equal to "
                            "transformers' Gemma3ForCausalLM num_parameters() (the report: 302M "
                            "embedding + 698M non-embedding)")
REDPAJAMA_3B = LMConfig("redpajama-incite-3b", "gpt_neox", 50432, 2560, 32, 32, 10240,
                        tied=False, published_params=2_775_864_320,
                        source="Together 2023; HF togethercomputer/RedPajama-INCITE-Base-3B-v1 "
                               "config.json (GPT-NeoX: 32 layers, hidden 2560, 32 heads, "
                               "intermediate 10240, vocab 50432, untied embed_out, "
                               "use_parallel_residual false): 2,775,864,320 params computed from "
                               "the config, equal to transformers' GPTNeoXForCausalLM "
                               "num_parameters() (the card says 2.8B)")

CONFIGS: dict[str, LMConfig] = {c.name: c for c in (
    GPT2, GPT_NEO_125M, GPT_NEO_13, GPT_NEO_27, LLAMA2_7B, LLAMA32_1B, QWEN2_15B, QWEN_7B,
    QWEN3_4B, GEMMA3_1B, REDPAJAMA_3B)}


def _names(style: str) -> dict[str, str]:
    """Module names per family, so weight names match the Hugging Face checkpoints."""
    if style in ("llama", "gemma3"):
        n = {"emb": "model.embed_tokens", "layer": "model.layers.{i}",
             "ln1": "input_layernorm", "ln2": "post_attention_layernorm",
             "attn": "self_attn", "mlp": "mlp", "lnf": "model.norm"}
        if style == "gemma3":  # norms before and after both attention and MLP
            n |= {"ln2": "pre_feedforward_layernorm", "post_attn": "post_attention_layernorm",
                  "post_mlp": "post_feedforward_layernorm"}
        return n
    if style == "gpt_neox":
        return {"emb": "gpt_neox.embed_in", "layer": "gpt_neox.layers.{i}",
                "ln1": "input_layernorm", "ln2": "post_attention_layernorm",
                "attn": "attention", "mlp": "mlp", "lnf": "gpt_neox.final_layer_norm",
                "head": "embed_out"}
    attn = {"gpt_neo": "attn.attention", "gpt2": "attn", "qwen": "attn"}[style]
    return {"emb": "transformer.wte", "pos": "transformer.wpe", "layer": "transformer.h.{i}",
            "ln1": "ln_1", "ln2": "ln_2", "attn": attn, "mlp": "mlp", "lnf": "transformer.ln_f"}


def _spec(cfg: LMConfig) -> AttnSpec:
    if cfg.style == "gpt2":
        return AttnSpec(cfg.heads, cfg.hd, names=("", "", "", "c_proj"), fused="c_attn")
    if cfg.style == "gpt_neo":
        return AttnSpec(cfg.heads, cfg.hd, bias=(False, False, False, True))
    if cfg.style == "qwen":
        return AttnSpec(cfg.heads, cfg.hd, names=("", "", "", "c_proj"), fused="c_attn",
                        bias=(cfg.qkv_bias,) * 3 + (False,))
    if cfg.style == "gpt_neox":
        return AttnSpec(cfg.heads, cfg.hd, names=("", "", "", "dense"), fused="query_key_value")
    qkv = cfg.attn_bias or cfg.qkv_bias
    return AttnSpec(cfg.heads, cfg.hd, cfg.kv_heads,
                    names=("q_proj", "k_proj", "v_proj", "o_proj"),
                    bias=(qkv, qkv, qkv, cfg.attn_bias), qk_norm="rmsnorm" if cfg.qk_norm else "")


def decoder_lm(cfg: LMConfig, dtype: str = "fp16", tokens: int = 128, past: int = 0,
               cache: bool = False, untie: bool = False) -> Model:
    """`tokens` new tokens through every layer, attending to themselves and `past` cached ones.

    `untie` gives a tied model's LM head its own weight (`lm_head.weight`, a copy of the
    embedding), as converters that do not share tensors export it.
    """
    b = GraphBuilder(cfg.name, dtype)
    n, d = _names(cfg.style), cfg.hidden
    norm = "rmsnorm" if cfg.style in RMS_STYLES else "layernorm"
    nbias = norm == "layernorm"
    spec = _spec(cfg)
    table = b.tensor(f"{n['emb']}.weight", cfg.vocab, d)
    x = b.embedding(n["emb"], table, tokens)
    if cfg.style == "gemma3":  # embeddings are scaled by sqrt(hidden)
        x = b.elementwise("embed_scale", "mul", [x])
    if cfg.max_positions:
        pos = b.embedding(n["pos"], b.tensor(f"{n['pos']}.weight", cfg.max_positions, d), tokens)
        x = b.add("embed_add", x, pos)
    for i in range(cfg.layers):
        p = n["layer"].format(i=i)
        y = b.norm(x, f"{p}.{n['ln1']}", norm, bias=nbias)
        window = cfg.local_window if i in cfg.local_layers else 0
        y = attention(b, y, f"{p}.{n['attn']}", spec, past=past, cache=cache, window=window,
                      window_cache=cfg.window_cache)
        if "post_attn" in n:
            y = b.norm(y, f"{p}.{n['post_attn']}", norm, bias=nbias)
        x = b.add(f"{p}.attn_add", x, y)
        y = b.norm(x, f"{p}.{n['ln2']}", norm, bias=nbias)
        y = _mlp(b, y, f"{p}.{n['mlp']}", cfg)
        if "post_mlp" in n:
            y = b.norm(y, f"{p}.{n['post_mlp']}", norm, bias=nbias)
        x = b.add(f"{p}.mlp_add", x, y)
    if tokens > 1:
        x = b.op("last_token", "slice", [x], (1, d), 0)
    x = b.norm(x, n["lnf"], norm, bias=nbias)
    own_head = untie or not cfg.tied
    b.linear(x, n.get("head", "lm_head"), cfg.vocab, bias=False,
             weight=None if own_head else table)
    published, source = cfg.published_params, cfg.source
    if untie and cfg.tied:
        published = published and published + cfg.vocab * d
        source += (f"; untied: lm_head has its own {cfg.vocab}x{d} weight "
                   f"(+{cfg.vocab * d:,} params), as exporters that do not share tensors write it")
    what = f"decode step at context {past + tokens}" if past else f"prefill of {tokens} tokens"
    return b.build(family="llm", published_params=published, source=source,
                   description=f"{cfg.name} {what}" + (" (lm_head untied)" if untie else ""))


def _mlp(b: GraphBuilder, x: Act, p: str, cfg: LMConfig) -> Act:
    if cfg.style in RMS_STYLES:  # act(gate(x)) * up(x) -> down
        gate, up, down = (("w2", "w1", "c_proj") if cfg.style == "qwen"
                          else ("gate_proj", "up_proj", "down_proj"))
        g = b.linear(x, f"{p}.{gate}", cfg.intermediate, bias=False, act=cfg.act or "silu")
        u = b.linear(x, f"{p}.{up}", cfg.intermediate, bias=False)
        h = b.elementwise(f"{p}.gate_mul", "mul", [g, u])
        return b.linear(h, f"{p}.{down}", cfg.hidden, bias=False)
    fc, proj = ("dense_h_to_4h", "dense_4h_to_h") if cfg.style == "gpt_neox" else ("c_fc",
                                                                                 "c_proj")
    y = b.linear(x, f"{p}.{fc}", cfg.intermediate, act=cfg.act or "gelu")
    return b.linear(y, f"{p}.{proj}", cfg.hidden)


def lm_builder(cfg: LMConfig):
    """A zoo constructor `(dtype, tokens=128, past=0, cache=False, untie=False) -> Model`."""
    def build(dtype: str = "fp16", tokens: int = 128, past: int = 0,
              cache: bool = False, untie: bool = False) -> Model:
        return decoder_lm(cfg, dtype, tokens, past, cache, untie)
    build.__doc__ = f"{cfg.name}: decoder-only LM ({cfg.source})."
    return build
