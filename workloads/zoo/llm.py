"""Decoder-only language models from their published configs, as a prefill of `tokens` tokens
or as one decode step attending to `past` cached tokens: the zoo's GPT-2, GPT-Neo, GPT-NeoX,
Llama, Qwen, Qwen2/3 and Gemma 3, and the Hugging Face importer's Mistral, Gemma, Phi-3, Phi,
Falcon, OPT, Mixtral and Qwen2-MoE (one builder, `decoder_lm`, for all of them).

With `cache=True` every attention layer appends its new K and V to the KV cache as persistent
state (`state_elems` on the QK^T and AV ops), so a prefill + decode workload grows the cache by
one token per layer per step; sliding-window layers with `window_cache` (Gemma 3) keep only the
last `local_window` tokens, so their cache stops growing there. Weight tensor names do not
depend on `tokens` or `past`, so the prefill and every decode step share weights. Logits are
computed for the last token only (what a generation loop needs). Rotary position embedding
FLOPs are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from workloads.model import Model, WorkloadError
from workloads.zoo.layers import ACT_FLOPS, ELEMENTWISE_FLOPS, Act, GraphBuilder
from workloads.zoo.transformer import AttnSpec, attention

# block layouts and module names (see _names); the gated ones (gate / up / down MLP) use
# RMSNorm, the others LayerNorm
GATED = ("llama", "qwen", "gemma3", "phi3", "mixtral", "qwen2_moe")
STYLES = ("gpt2", "gpt_neo", "gpt_neox", "phi", "falcon", "opt", *GATED)
# the MLP activation of each LayerNorm style when the config names none; gated styles: silu
DEFAULT_ACT = {"gpt2": "gelu", "gpt_neo": "gelu", "gpt_neox": "gelu", "phi": "gelu",
               "falcon": "gelu", "opt": "relu"}


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
    qkv_bias: bool = False  # q/k/v biases without an output-projection bias (Qwen, Qwen2)
    mlp_bias: bool = False  # biases on the MLP projections (Llama mlp_bias)
    bias: bool = True  # phi / falcon / opt: biases on every projection
    act: str = ""  # MLP activation (a key of ACT_FLOPS); "" = the style's own (see mlp_act)
    parallel: bool = False  # attention and MLP both read the block input (Phi, Falcon)
    parallel_norms: int = 1  # Falcon's new decoder: 2 = own norms for attention and MLP
    # a norm over head_dim on q and on k, of the model's own norm kind: LayerNorm q_layernorm /
    # k_layernorm with bias (Phi qk_layernorm), RMSNorm q_norm / k_norm (Qwen3, Gemma 3)
    qk_norm: bool = False
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
    window_cache: bool = False  # local layers cache only the last local_window tokens (Gemma 3)

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise WorkloadError(f"LM config {self.name!r}: unknown style {self.style!r}; "
                                f"valid styles: {', '.join(STYLES)}")

    @property
    def hd(self) -> int:
        return self.head_dim or self.hidden // self.heads

    @property
    def gated(self) -> bool:
        """Gate / up / down MLP and RMSNorm (Llama family) rather than two linears and
        LayerNorm."""
        return self.style in GATED

    @property
    def norm(self) -> str:
        """The kind of every norm in the model (the q/k head norms included)."""
        return "rmsnorm" if self.gated else "layernorm"

    @property
    def mlp_act(self) -> str:
        """The MLP (and expert) activation: `act`, else the style's default."""
        return self.act or DEFAULT_ACT.get(self.style, "silu")


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
QWEN25_05B = LMConfig("qwen2.5-0.5b", "llama", 151936, 896, 24, 14, 4864, kv_heads=2,
                      tied=True, qkv_bias=True, published_params=494_032_768,
                      source="Qwen2.5 technical report, arXiv:2412.15115; HF Qwen/Qwen2.5-0.5B "
                             "config.json (24 layers, hidden 896, 14 heads / 2 KV heads, "
                             "intermediate 4864, vocab 151936, q/k/v bias, tied): 494,032,768 "
                             "params computed from the config (llama-bench prints 494.03 M for "
                             "its GGUF; the card says 0.49B)")
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
QWEN3_17B = LMConfig("qwen3-1.7b", "llama", 151936, 2048, 28, 16, 6144, kv_heads=8,
                     head_dim=128, tied=True, qk_norm=True, published_params=1_720_574_976,
                     source="Qwen3 technical report, arXiv:2505.09388; HF Qwen/Qwen3-1.7B "
                            "config.json (28 layers, hidden 2048, 16 heads / 8 KV heads x 128, "
                            "intermediate 6144, vocab 151936, q_norm/k_norm, tied): "
                            "1,720,574,976 params computed from the config (the card says 1.7B, "
                            "1.4B non-embedding)")
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

MIXTRAL_8X7B = LMConfig("mixtral-8x7b", "mixtral", 32000, 4096, 32, 32, 14336, kv_heads=8,
                        head_dim=128, tied=False, act="silu", experts=8, experts_per_token=2,
                        published_params=46_702_792_704,
                        source="Jiang et al. 2024, arXiv:2401.04088; HF "
                               "mistralai/Mixtral-8x7B-v0.1 config.json (32 layers, hidden "
                               "4096, 32 heads / 8 KV heads, 8 experts of intermediate 14336, 2 "
                               "per token, vocab 32000, untied): 46,702,792,704 params computed "
                               "from the config, equal to transformers' MixtralForCausalLM "
                               "num_parameters() (the paper: 46.7B, 12.9B active per token)")

CONFIGS: dict[str, LMConfig] = {c.name: c for c in (
    GPT2, GPT_NEO_125M, GPT_NEO_13, GPT_NEO_27, LLAMA2_7B, LLAMA32_1B, QWEN25_05B, QWEN2_15B,
    QWEN_7B, QWEN3_17B, QWEN3_4B, GEMMA3_1B, REDPAJAMA_3B, MIXTRAL_8X7B)}


def _names(style: str) -> dict[str, str]:
    """Module names per family, so weight names match the Hugging Face checkpoints."""
    if style in ("gpt2", "gpt_neo", "qwen"):
        attn = "attn.attention" if style == "gpt_neo" else "attn"
        return {"emb": "transformer.wte", "pos": "transformer.wpe", "layer": "transformer.h.{i}",
                "ln1": "ln_1", "ln2": "ln_2", "attn": attn, "mlp": "mlp",
                "lnf": "transformer.ln_f"}
    if style == "gpt_neox":
        return {"emb": "gpt_neox.embed_in", "layer": "gpt_neox.layers.{i}",
                "ln1": "input_layernorm", "ln2": "post_attention_layernorm",
                "attn": "attention", "mlp": "mlp", "lnf": "gpt_neox.final_layer_norm",
                "head": "embed_out"}
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
    # the Llama layout: llama, gemma3, phi3, mixtral, qwen2_moe
    n = {"emb": "model.embed_tokens", "layer": "model.layers.{i}",
         "ln1": "input_layernorm", "ln2": "post_attention_layernorm",
         "attn": "self_attn", "mlp": "mlp",
         "moe": "block_sparse_moe" if style == "mixtral" else "mlp", "lnf": "model.norm"}
    if style == "gemma3":  # norms before and after both attention and MLP
        n |= {"ln2": "pre_feedforward_layernorm", "post_attn": "post_attention_layernorm",
              "post_mlp": "post_feedforward_layernorm"}
    return n


def _spec(cfg: LMConfig) -> AttnSpec:
    """The attention layer's shape and names; q/k head norms (`qk_norm`) in the model's norm."""
    return replace(_projections(cfg), qk_norm=cfg.norm if cfg.qk_norm else "")


def _projections(cfg: LMConfig) -> AttnSpec:
    if cfg.style == "gpt2":
        return AttnSpec(cfg.heads, cfg.hd, names=("", "", "", "c_proj"), fused="c_attn")
    if cfg.style == "gpt_neo":
        return AttnSpec(cfg.heads, cfg.hd, bias=(False, False, False, True))
    if cfg.style == "qwen":
        return AttnSpec(cfg.heads, cfg.hd, names=("", "", "", "c_proj"), fused="c_attn",
                        bias=(cfg.qkv_bias,) * 3 + (False,))
    if cfg.style == "gpt_neox":
        return AttnSpec(cfg.heads, cfg.hd, names=("", "", "", "dense"), fused="query_key_value")
    if cfg.style == "phi":
        return AttnSpec(cfg.heads, cfg.hd, cfg.kv_heads, names=("q_proj", "k_proj", "v_proj",
                                                               "dense"),
                        bias=(cfg.bias,) * 4)
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
               cache: bool = False, untie: bool = False) -> Model:
    """`tokens` new tokens through every layer, attending to themselves and `past` cached ones.

    `untie` gives a tied model's LM head its own weight (`lm_head.weight`, a copy of the
    embedding), as converters that do not share tensors export it.
    """
    b = GraphBuilder(cfg.name, dtype)
    n, d = _names(cfg.style), cfg.hidden
    norm, nbias = cfg.norm, not cfg.gated
    spec = _spec(cfg)
    emb = cfg.embed_dim or d
    table = b.tensor(f"{n['emb']}.weight", cfg.vocab, emb)
    x = b.embedding(n["emb"], table, tokens)
    if cfg.style == "gemma3":  # embeddings are scaled by sqrt(hidden)
        x = b.elementwise("embed_scale", "mul", [x])
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
        y = attention(b, y, f"{p}.{n['attn']}", spec, past=past, cache=cache, window=window,
                      window_cache=cfg.window_cache)
        if "post_attn" in n:
            y = b.norm(y, f"{p}.{n['post_attn']}", norm, bias=nbias)
        x = b.add(f"{p}.attn_add", x, y)
        if not cfg.pre_norm:
            x = b.norm(x, f"{p}.{n['ln1']}", norm, bias=nbias)
        y = b.norm(x, f"{p}.{n['ln2']}", norm, bias=nbias) if cfg.pre_norm else x
        y = _ffn(b, y, p, n, cfg, i)
        if "post_mlp" in n:
            y = b.norm(y, f"{p}.{n['post_mlp']}", norm, bias=nbias)
        x = b.add(f"{p}.mlp_add", x, y)
        if not cfg.pre_norm:
            x = b.norm(x, f"{p}.{n['ln2']}", norm, bias=nbias)
    if tokens > 1:
        x = b.op("last_token", "slice", [x], (1, d), 0)
    if cfg.final_norm:
        x = b.norm(x, n["lnf"], norm, bias=nbias)
    if cfg.embed_dim:
        x = b.linear(x, f"{n['proj']}_out", cfg.embed_dim, bias=False)
    own_head = untie or not cfg.tied
    b.linear(x, n.get("head", "lm_head"), cfg.vocab, bias=cfg.lm_head_bias,
             weight=None if own_head else table)
    published, source = cfg.published_params, cfg.source
    if untie and cfg.tied:
        published = published and published + cfg.vocab * emb
        source += (f"; untied: lm_head has its own {cfg.vocab}x{emb} weight "
                   f"(+{cfg.vocab * emb:,} params), as exporters that do not share tensors "
                   "write it")
    what = f"decode step at context {past + tokens}" if past else f"prefill of {tokens} tokens"
    return b.build(family="llm", published_params=published, source=source,
                   description=f"{cfg.name} {what}" + (" (lm_head untied)" if untie else ""))


def _parallel_block(b: GraphBuilder, x: Act, p: str, i: int, n: dict[str, str],
                    cfg: LMConfig, spec: AttnSpec, past: int, cache: bool, window: int) -> Act:
    """x + attn(LN(x)) + MLP(LN(x)) (Phi, Falcon); Falcon's new decoder has two LNs."""
    if cfg.parallel_norms == 2:  # Falcon new decoder architecture: ln_attn and ln_mlp
        ya, ym = b.norm(x, f"{p}.ln_attn"), b.norm(x, f"{p}.ln_mlp")
    else:
        ya = ym = b.norm(x, f"{p}.{n['ln1']}")
    a = attention(b, ya, f"{p}.{n['attn']}", spec, past=past, cache=cache, window=window,
                  window_cache=cfg.window_cache)
    m = _ffn(b, ym, p, n, cfg, i)
    return b.op(f"{p}.residual_add", "add", [x, a, m], x.shape, 2 * x.numel)


def _ffn(b: GraphBuilder, x: Act, p: str, n: dict[str, str], cfg: LMConfig, layer: int) -> Act:
    """The layer's MLP, or its mixture of experts in a sparse layer of an MoE model."""
    if cfg.experts and layer not in cfg.dense_layers:
        return _moe(b, x, f"{p}.{n['moe']}", cfg)
    return _mlp(b, x, f"{p}.{n['mlp']}" if n["mlp"] else p, cfg)


def _mlp(b: GraphBuilder, x: Act, p: str, cfg: LMConfig, inter: int = 0) -> Act:
    inter = inter or cfg.intermediate
    act = cfg.mlp_act
    if cfg.style == "phi3":  # one fused gate|up projection, then act(gate) * up
        gu = b.linear(x, f"{p}.gate_up_proj", 2 * inter, bias=cfg.mlp_bias)
        h = b.op(f"{p}.gate_mul", "mul", [gu], (*x.shape[:-1], inter),
                 (ACT_FLOPS[act] + 1) * (gu.numel // 2))
        return b.linear(h, f"{p}.down_proj", cfg.hidden, bias=cfg.mlp_bias)
    if cfg.gated:  # act(gate(x)) * up(x) -> down
        gate, up, down = (("w2", "w1", "c_proj") if cfg.style == "qwen"
                          else ("gate_proj", "up_proj", "down_proj"))
        g = b.linear(x, f"{p}.{gate}", inter, bias=cfg.mlp_bias, act=act)
        u = b.linear(x, f"{p}.{up}", inter, bias=cfg.mlp_bias)
        h = b.elementwise(f"{p}.gate_mul", "mul", [g, u])
        return b.linear(h, f"{p}.{down}", cfg.hidden, bias=cfg.mlp_bias)
    names = {"gpt2": ("c_fc", "c_proj"), "gpt_neo": ("c_fc", "c_proj"),
             "gpt_neox": ("dense_h_to_4h", "dense_4h_to_h"),
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
    expert_flops = 6 * d * f + (ACT_FLOPS[cfg.mlp_act] + 1) * f  # gate, up, down, act(g) * up
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
    """A zoo constructor `(dtype, tokens=128, past=0, cache=False, untie=False) -> Model`."""
    def build(dtype: str = "fp16", tokens: int = 128, past: int = 0,
              cache: bool = False, untie: bool = False) -> Model:
        return decoder_lm(cfg, dtype, tokens, past, cache, untie)
    build.__doc__ = f"{cfg.name}: decoder-only LM ({cfg.source})."
    return build
