"""Decoder-only language models (GPT-2, GPT-Neo, Llama) from their published configs, as a
prefill of `tokens` tokens or as one decode step attending to `past` cached tokens.

With `cache=True` every attention layer appends its new K and V to the KV cache as persistent
state (`state_elems` on the QK^T and AV ops), so a prefill + decode workload grows the cache by
one token per layer per step. Weight tensor names do not depend on `tokens` or `past`, so the
prefill and every decode step share weights. Logits are computed for the last token only (what
a generation loop needs). Rotary position embedding FLOPs (Llama) are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

from workloads.model import Model
from workloads.zoo.layers import Act, GraphBuilder
from workloads.zoo.transformer import AttnSpec, attention


@dataclass(frozen=True)
class LMConfig:
    """The architecture hyper-parameters of a decoder-only LM (Hugging Face config names)."""

    name: str
    style: str  # gpt2 | gpt_neo | llama: module naming and block layout
    vocab: int
    hidden: int
    layers: int
    heads: int
    intermediate: int
    kv_heads: int = 0
    head_dim: int = 0
    max_positions: int = 0  # learned absolute position table; 0 = rotary (no table)
    tied: bool = True
    local_window: int = 0  # GPT-Neo local attention: each query sees this many keys
    local_layers: tuple[int, ...] = ()  # which layers use local attention
    attn_bias: bool = False  # Llama-style q/k/v/o biases (HF attention_bias)
    published_params: int | None = None
    source: str = ""

    @property
    def hd(self) -> int:
        return self.head_dim or self.hidden // self.heads


GPT2 = LMConfig("gpt2", "gpt2", 50257, 768, 12, 12, 3072, max_positions=1024,
                published_params=124_439_808,
                source="Radford et al. 2019; HF openai-community/gpt2 (124,439,808 params, "
                       "lm_head tied to wte)")
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

CONFIGS: dict[str, LMConfig] = {c.name: c for c in (GPT2, GPT_NEO_13, GPT_NEO_27, LLAMA2_7B,
                                                     LLAMA32_1B)}


def _names(style: str) -> dict[str, str]:
    """Module names per family, so weight names match the Hugging Face checkpoints."""
    if style == "llama":
        return {"emb": "model.embed_tokens", "layer": "model.layers.{i}",
                "ln1": "input_layernorm", "ln2": "post_attention_layernorm",
                "attn": "self_attn", "mlp": "mlp", "lnf": "model.norm"}
    attn = "attn.attention" if style == "gpt_neo" else "attn"
    return {"emb": "transformer.wte", "pos": "transformer.wpe", "layer": "transformer.h.{i}",
            "ln1": "ln_1", "ln2": "ln_2", "attn": attn, "mlp": "mlp", "lnf": "transformer.ln_f"}


def _spec(cfg: LMConfig) -> AttnSpec:
    if cfg.style == "gpt2":
        return AttnSpec(cfg.heads, cfg.hd, names=("", "", "", "c_proj"), fused="c_attn")
    if cfg.style == "gpt_neo":
        return AttnSpec(cfg.heads, cfg.hd, bias=(False, False, False, True))
    return AttnSpec(cfg.heads, cfg.hd, cfg.kv_heads,
                    names=("q_proj", "k_proj", "v_proj", "o_proj"), bias=(cfg.attn_bias,) * 4)


def decoder_lm(cfg: LMConfig, dtype: str = "fp16", tokens: int = 128, past: int = 0,
               cache: bool = False) -> Model:
    """`tokens` new tokens through every layer, attending to themselves and `past` cached ones."""
    b = GraphBuilder(cfg.name, dtype)
    n, d = _names(cfg.style), cfg.hidden
    norm = "rmsnorm" if cfg.style == "llama" else "layernorm"
    nbias = cfg.style != "llama"
    spec = _spec(cfg)
    table = b.tensor(f"{n['emb']}.weight", cfg.vocab, d)
    x = b.embedding(n["emb"], table, tokens)
    if cfg.max_positions:
        pos = b.embedding(n["pos"], b.tensor(f"{n['pos']}.weight", cfg.max_positions, d), tokens)
        x = b.add("embed_add", x, pos)
    for i in range(cfg.layers):
        p = n["layer"].format(i=i)
        y = b.norm(x, f"{p}.{n['ln1']}", norm, bias=nbias)
        window = cfg.local_window if i in cfg.local_layers else 0
        y = attention(b, y, f"{p}.{n['attn']}", spec, past=past, cache=cache, window=window)
        x = b.add(f"{p}.attn_add", x, y)
        y = b.norm(x, f"{p}.{n['ln2']}", norm, bias=nbias)
        y = _mlp(b, y, f"{p}.{n['mlp']}", cfg)
        x = b.add(f"{p}.mlp_add", x, y)
    if tokens > 1:
        x = b.op("last_token", "slice", [x], (1, d), 0)
    x = b.norm(x, n["lnf"], norm, bias=nbias)
    b.linear(x, "lm_head", cfg.vocab, bias=False, weight=table if cfg.tied else None)
    what = f"decode step at context {past + tokens}" if past else f"prefill of {tokens} tokens"
    return b.build(family="llm", published_params=cfg.published_params, source=cfg.source,
                   description=f"{cfg.name} {what}")


def _mlp(b: GraphBuilder, x: Act, p: str, cfg: LMConfig) -> Act:
    if cfg.style == "llama":
        g = b.linear(x, f"{p}.gate_proj", cfg.intermediate, bias=False, act="silu")
        u = b.linear(x, f"{p}.up_proj", cfg.intermediate, bias=False)
        h = b.elementwise(f"{p}.gate_mul", "mul", [g, u])
        return b.linear(h, f"{p}.down_proj", cfg.hidden, bias=False)
    y = b.linear(x, f"{p}.c_fc", cfg.intermediate, act="gelu")
    return b.linear(y, f"{p}.c_proj", cfg.hidden)


def lm_builder(cfg: LMConfig):
    """A zoo constructor `(dtype, tokens=128, past=0, cache=False) -> Model` for `cfg`."""
    def build(dtype: str = "fp16", tokens: int = 128, past: int = 0,
              cache: bool = False) -> Model:
        return decoder_lm(cfg, dtype, tokens, past, cache)
    build.__doc__ = f"{cfg.name}: decoder-only LM ({cfg.source})."
    return build
