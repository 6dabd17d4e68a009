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
from workloads.zoo.layers import ACT_FLOPS, ELEMENTWISE_FLOPS, Act, GraphBuilder
from workloads.zoo.transformer import AttnSpec, attention


@dataclass(frozen=True)
class LMConfig:
    """The architecture hyper-parameters of a decoder-only LM (Hugging Face config names).

    The fields after `source` describe the Hugging Face families beyond GPT-2 / GPT-Neo /
    Llama; their defaults leave those three unchanged."""

    name: str
    style: str  # module naming and block layout: one of STYLES
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
    mlp_bias: bool = False  # biases on the MLP projections (Llama mlp_bias)
    bias: bool = True  # phi / falcon / opt: biases on every projection
    act: str = ""  # MLP activation (a key of ACT_FLOPS); "" = the style's own
    parallel: bool = False  # attention and MLP both read the block input (Phi, Falcon)
    parallel_norms: int = 1  # Falcon's new decoder: 2 = own norms for attention and MLP
    qk_norm: bool = False  # Phi qk_layernorm: a LayerNorm over head_dim on q and on k
    lm_head_bias: bool = False  # Phi
    pre_norm: bool = True  # False: post-norm blocks (OPT-350m)
    final_norm: bool = True
    pos_offset: int = 0  # OPT: the learned position table has 2 extra leading rows
    embed_dim: int = 0  # OPT word_embed_proj_dim when it differs from hidden (project in/out)
    experts: int = 0  # mixture of experts: experts per sparse layer
    experts_per_token: int = 0
    expert_intermediate: int = 0  # 0 = intermediate
    shared_expert_intermediate: int = 0  # Qwen2-MoE: an always-run expert with a sigmoid gate
    dense_layers: tuple[int, ...] = ()  # MoE models: layers with a dense MLP instead

    @property
    def hd(self) -> int:
        return self.head_dim or self.hidden // self.heads

    @property
    def gated(self) -> bool:
        """Gate / up / down MLP (Llama family) rather than two linears."""
        return self.style in GATED


# styles and their Hugging Face module names; the llama-like ones use RMSNorm and gated MLPs
GATED = ("llama", "phi3", "mixtral", "qwen2_moe")
STYLES = ("gpt2", "gpt_neo", "phi", "falcon", "opt", *GATED)
DEFAULT_ACT = {"gpt2": "gelu", "gpt_neo": "gelu", "phi": "gelu", "falcon": "gelu", "opt": "relu"}


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
    if style in GATED:
        moe = "block_sparse_moe" if style == "mixtral" else "mlp"
        return {"emb": "model.embed_tokens", "layer": "model.layers.{i}",
                "ln1": "input_layernorm", "ln2": "post_attention_layernorm",
                "attn": "self_attn", "mlp": "mlp", "moe": moe, "lnf": "model.norm"}
    if style == "phi":
        return {"emb": "model.embed_tokens", "layer": "model.layers.{i}",
                "ln1": "input_layernorm", "attn": "self_attn", "mlp": "mlp",
                "lnf": "model.final_layernorm"}
    if style == "falcon":
        return {"emb": "transformer.word_embeddings", "layer": "transformer.h.{i}",
                "ln1": "input_layernorm", "ln2": "post_attention_layernorm",
                "attn": "self_attention", "mlp": "mlp", "lnf": "transformer.ln_f"}
    if style == "opt":
        return {"emb": "model.decoder.embed_tokens", "pos": "model.decoder.embed_positions",
                "layer": "model.decoder.layers.{i}", "ln1": "self_attn_layer_norm",
                "ln2": "final_layer_norm", "attn": "self_attn", "mlp": "",
                "lnf": "model.decoder.final_layer_norm", "proj": "model.decoder.project"}
    attn = "attn.attention" if style == "gpt_neo" else "attn"
    return {"emb": "transformer.wte", "pos": "transformer.wpe", "layer": "transformer.h.{i}",
            "ln1": "ln_1", "ln2": "ln_2", "attn": attn, "mlp": "mlp", "lnf": "transformer.ln_f"}


def _spec(cfg: LMConfig) -> AttnSpec:
    if cfg.style == "gpt2":
        return AttnSpec(cfg.heads, cfg.hd, names=("", "", "", "c_proj"), fused="c_attn")
    if cfg.style == "gpt_neo":
        return AttnSpec(cfg.heads, cfg.hd, bias=(False, False, False, True))
    if cfg.style == "phi":
        return AttnSpec(cfg.heads, cfg.hd, cfg.kv_heads, names=("q_proj", "k_proj", "v_proj",
                                                               "dense"),
                        bias=(cfg.bias,) * 4, qk_norm="layernorm" if cfg.qk_norm else "")
    if cfg.style == "falcon":
        return AttnSpec(cfg.heads, cfg.hd, cfg.kv_heads, names=("", "", "", "dense"),
                        fused="query_key_value", bias=(cfg.bias,) * 4)
    if cfg.style == "opt":
        return AttnSpec(cfg.heads, cfg.hd, names=("q_proj", "k_proj", "v_proj", "out_proj"),
                        bias=(cfg.bias,) * 4)
    qkv = cfg.attn_bias or cfg.qkv_bias
    return AttnSpec(cfg.heads, cfg.hd, cfg.kv_heads,
                    names=("q_proj", "k_proj", "v_proj", "o_proj"),
                    fused="qkv_proj" if cfg.style == "phi3" else "",
                    bias=(qkv, qkv, qkv, cfg.attn_bias))


def decoder_lm(cfg: LMConfig, dtype: str = "fp16", tokens: int = 128, past: int = 0,
               cache: bool = False) -> Model:
    """`tokens` new tokens through every layer, attending to themselves and `past` cached ones."""
    b = GraphBuilder(cfg.name, dtype)
    n, d = _names(cfg.style), cfg.hidden
    norm = "rmsnorm" if cfg.gated else "layernorm"
    nbias = not cfg.gated
    spec = _spec(cfg)
    table = b.tensor(f"{n['emb']}.weight", cfg.vocab, cfg.embed_dim or d)
    x = b.embedding(n["emb"], table, tokens)
    if cfg.embed_dim:
        x = b.linear(x, f"{n['proj']}_in", d, bias=False)
    if cfg.max_positions:
        pos = b.embedding(n["pos"], b.tensor(f"{n['pos']}.weight",
                                             cfg.max_positions + cfg.pos_offset, d), tokens)
        x = b.add("embed_add", x, pos)
    for i in range(cfg.layers):
        p = n["layer"].format(i=i)
        window = cfg.local_window if i in cfg.local_layers else 0
        if cfg.parallel:
            x = _parallel_block(b, x, p, i, n, cfg, spec, past, cache, window)
            continue
        y = b.norm(x, f"{p}.{n['ln1']}", norm, bias=nbias) if cfg.pre_norm else x
        y = attention(b, y, f"{p}.{n['attn']}", spec, past=past, cache=cache, window=window)
        x = b.add(f"{p}.attn_add", x, y)
        if not cfg.pre_norm:
            x = b.norm(x, f"{p}.{n['ln1']}", norm, bias=nbias)
        y = b.norm(x, f"{p}.{n['ln2']}", norm, bias=nbias) if cfg.pre_norm else x
        y = _ffn(b, y, p, n, cfg, i)
        x = b.add(f"{p}.mlp_add", x, y)
        if not cfg.pre_norm:
            x = b.norm(x, f"{p}.{n['ln2']}", norm, bias=nbias)
    if tokens > 1:
        x = b.op("last_token", "slice", [x], (1, d), 0)
    if cfg.final_norm:
        x = b.norm(x, n["lnf"], norm, bias=nbias)
    if cfg.embed_dim:
        x = b.linear(x, f"{n['proj']}_out", cfg.embed_dim, bias=False)
    b.linear(x, "lm_head", cfg.vocab, bias=cfg.lm_head_bias, weight=table if cfg.tied else None)
    what = f"decode step at context {past + tokens}" if past else f"prefill of {tokens} tokens"
    return b.build(family="llm", published_params=cfg.published_params, source=cfg.source,
                   description=f"{cfg.name} {what}")


def _parallel_block(b: GraphBuilder, x: Act, p: str, i: int, n: dict[str, str],
                    cfg: LMConfig, spec: AttnSpec, past: int, cache: bool, window: int) -> Act:
    """x + attn(LN(x)) + MLP(LN(x)) (Phi, Falcon); Falcon's new decoder has two LNs."""
    if cfg.parallel_norms == 2:  # Falcon new decoder architecture: ln_attn and ln_mlp
        ya, ym = b.norm(x, f"{p}.ln_attn"), b.norm(x, f"{p}.ln_mlp")
    else:
        ya = ym = b.norm(x, f"{p}.{n['ln1']}")
    a = attention(b, ya, f"{p}.{n['attn']}", spec, past=past, cache=cache, window=window)
    m = _ffn(b, ym, p, n, cfg, i)
    return b.op(f"{p}.residual_add", "add", [x, a, m], x.shape, 2 * x.numel)


def _ffn(b: GraphBuilder, x: Act, p: str, n: dict[str, str], cfg: LMConfig, layer: int) -> Act:
    """The layer's MLP, or its mixture of experts in a sparse layer of an MoE model."""
    if cfg.experts and layer not in cfg.dense_layers:
        return _moe(b, x, f"{p}.{n['moe']}", cfg)
    return _mlp(b, x, f"{p}.{n['mlp']}" if n["mlp"] else p, cfg)


def _mlp(b: GraphBuilder, x: Act, p: str, cfg: LMConfig, inter: int = 0) -> Act:
    inter = inter or cfg.intermediate
    act = cfg.act or DEFAULT_ACT.get(cfg.style, "silu")
    if cfg.style == "phi3":  # one fused gate|up projection, then act(gate) * up
        gu = b.linear(x, f"{p}.gate_up_proj", 2 * inter, bias=cfg.mlp_bias)
        h = b.op(f"{p}.gate_mul", "mul", [gu], (*x.shape[:-1], inter),
                 (ACT_FLOPS[act] + 1) * (gu.numel // 2))
        return b.linear(h, f"{p}.down_proj", cfg.hidden, bias=cfg.mlp_bias)
    if cfg.gated:
        g = b.linear(x, f"{p}.gate_proj", inter, bias=cfg.mlp_bias, act=act)
        u = b.linear(x, f"{p}.up_proj", inter, bias=cfg.mlp_bias)
        h = b.elementwise(f"{p}.gate_mul", "mul", [g, u])
        return b.linear(h, f"{p}.down_proj", cfg.hidden, bias=cfg.mlp_bias)
    names = {"gpt2": ("c_fc", "c_proj"), "gpt_neo": ("c_fc", "c_proj"),
             "falcon": ("dense_h_to_4h", "dense_4h_to_h")}.get(cfg.style, ("fc1", "fc2"))
    bias = cfg.bias if cfg.style in ("phi", "falcon", "opt") else True
    y = b.linear(x, f"{p}.{names[0]}", inter, bias=bias, act=act)
    return b.linear(y, f"{p}.{names[1]}", cfg.hidden, bias=bias)


def _moe(b: GraphBuilder, x: Act, p: str, cfg: LMConfig) -> Act:
    """A sparse MoE layer: router, then one op holding every expert's own weight tensors.

    FLOPs count the `experts_per_token` experts each token runs (plus the router's softmax /
    top-k and the weighted sum); the weights are all experts'. `attrs` carry the routing
    metadata: num_experts, experts_per_token, the tensor names of each expert, the router op.
    """
    d, f = cfg.hidden, cfg.expert_intermediate or cfg.intermediate
    e, k = cfg.experts, cfg.experts_per_token
    tokens = x.numel // d
    router = b.linear(x, f"{p}.gate", e, bias=False)
    names = ("w1", "w3", "w2") if cfg.style == "mixtral" else ("gate_proj", "up_proj",
                                                               "down_proj")
    weights, per_expert = [], []
    for j in range(e):
        ts = (b.tensor(f"{p}.experts.{j}.{names[0]}.weight", f, d),
              b.tensor(f"{p}.experts.{j}.{names[1]}.weight", f, d),
              b.tensor(f"{p}.experts.{j}.{names[2]}.weight", d, f))
        weights += ts
        per_expert.append(tuple(t.name for t in ts))
    act = cfg.act or "silu"
    expert_flops = 6 * d * f + (ACT_FLOPS[act] + 1) * f  # gate, up, down, act(gate) * up
    flops = tokens * (k * expert_flops + 2 * k * d + ELEMENTWISE_FLOPS["softmax"] * e)
    y = b.op(f"{p}.experts", "moe", [x, router], x.shape, flops, weights,
             workspace=tokens * k * 2 * f, num_experts=e, experts_per_token=k,
             expert_tensors=tuple(per_expert), router=router.src,
             expert_flops_per_token=expert_flops, tokens=tokens)
    if not cfg.shared_expert_intermediate:
        return y
    s = _mlp(b, x, f"{p}.shared_expert", cfg, cfg.shared_expert_intermediate)
    g = b.linear(x, f"{p}.shared_expert_gate", 1, bias=False, act="sigmoid")
    return b.op(f"{p}.shared_add", "add", [y, s, g], x.shape, 2 * x.numel)


def lm_builder(cfg: LMConfig):
    """A zoo constructor `(dtype, tokens=128, past=0, cache=False) -> Model` for `cfg`."""
    def build(dtype: str = "fp16", tokens: int = 128, past: int = 0,
              cache: bool = False) -> Model:
        return decoder_lm(cfg, dtype, tokens, past, cache)
    build.__doc__ = f"{cfg.name}: decoder-only LM ({cfg.source})."
    return build
