"""Transformer building blocks (attention with QK^T and AV as their own ops, MLPs) and the
encoder models built from them: BERT-base, CLIP ViT-L/14 text encoder (Stable Diffusion 1.5),
and Whisper's (small, medium) encoder and decoder.

Attention FLOPs count the full score matrix (QK^T and AV are each 2*heads*q*k*head_dim), also
for causal masks, as unfused kernels compute it. Softmax is its own op.
"""

from __future__ import annotations

from dataclasses import dataclass

from workloads.model import Model, Tensor
from workloads.zoo.layers import ELEMENTWISE_FLOPS, Act, GraphBuilder


@dataclass(frozen=True)
class AttnSpec:
    """Shape and weight naming of one attention layer (names follow the Hugging Face modules)."""

    heads: int
    head_dim: int
    kv_heads: int = 0  # 0 = heads (multi-head); fewer = grouped-query attention
    names: tuple[str, str, str, str] = ("q_proj", "k_proj", "v_proj", "out_proj")
    fused: str = ""  # name of a fused q|k|v projection (GPT-2 c_attn, ViT qkv); "" = separate
    bias: tuple[bool, bool, bool, bool] = (True, True, True, True)  # q, k, v, out
    qk_norm: str = ""  # a norm kind over head_dim on q and k: rmsnorm (q_norm, k_norm: Qwen3,
    # Gemma 3) or layernorm with bias (q_layernorm, k_layernorm: Phi); "" = none

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return (self.kv_heads or self.heads) * self.head_dim


def attention_core(b: GraphBuilder, p: str, q: Act, k: Act, v: Act, spec: AttnSpec, *,
                   q_len: int, kv_len: int, groups: int = 1, past: int = 0, cache: bool = False,
                   extra_weights: tuple[Tensor, ...] = (), extra_flops: int = 0,
                   cache_tokens: int | None = None) -> Act:
    """QK^T -> softmax -> AV for `groups` independent windows of q_len queries x kv_len keys.

    `extra_weights`/`extra_flops` add a position bias to the scores (Swin, SAM). `past`
    keys/values come from the KV cache (read, not recomputed); with `cache` the QK^T op
    appends this call's K and the AV op its V as persistent state (`state_elems`): all of
    this call's tokens, or `cache_tokens` of them (a sliding-window cache that is full).
    """
    h, hd = spec.heads, spec.head_dim
    kept = k.numel if cache_tokens is None else cache_tokens * spec.kv_dim
    new_kv = kept if cache else 0
    cached = past * spec.kv_dim
    flops = 2 * groups * h * q_len * kv_len * hd
    # a full, growing self-attention cache (every past token read): elements per token, so
    # its older blocks can go to flash (workloads.kvcache)
    full = cache and cache_tokens is None and kv_len == past + q_len
    grows = {"kv_token_elems": spec.kv_dim} if full else {}
    scores = b.op(f"{p}.qk", "attention_qk", [q, k], (groups * h, q_len, kv_len),
                  flops + extra_flops, extra_weights,
                  input_elems=q.numel + k.numel + cached, state=new_kv, past_tokens=past,
                  **grows)
    probs = b.elementwise(f"{p}.softmax", "softmax", [scores])
    return b.op(f"{p}.av", "attention_av", [probs, v], (q.shape[0], spec.q_dim), flops,
                input_elems=probs.numel + v.numel + cached, state=new_kv,
                past_tokens=past, **grows)


def attention(b: GraphBuilder, x: Act, p: str, spec: AttnSpec, *, kv_src: Act | None = None,
              past: int = 0, cache: bool = False, window: int = 0,
              window_cache: bool = False) -> Act:
    """A full attention layer on x (tokens, dim): projections, QK^T, softmax, AV, output.

    `kv_src` makes it cross-attention; `window` > 0 limits each query to that many keys (local
    attention, GPT-Neo; sliding window, Gemma 3); with `window_cache` the layer's KV cache
    holds only the last `window` tokens (it reads at most `window` and stops growing there).
    """
    qn, kn, vn, on = spec.names
    qb, kb, vb, ob = spec.bias
    tokens = x.shape[0]
    if spec.fused:
        qkv = b.linear(x, f"{p}.{spec.fused}", spec.q_dim + 2 * spec.kv_dim, bias=qb)
        # q, k and v are slices of the fused output: the core reads each slice once
        q = Act(qkv.src, (tokens, spec.q_dim))
        k = Act(qkv.src, (tokens, spec.kv_dim))
        v = Act(qkv.src, (tokens, spec.kv_dim))
    else:
        src = kv_src or x
        q = b.linear(x, f"{p}.{qn}", spec.q_dim, bias=qb)
        k = b.linear(src, f"{p}.{kn}", spec.kv_dim, bias=kb)
        v = b.linear(src, f"{p}.{vn}", spec.kv_dim, bias=vb)
    if spec.qk_norm:
        suffix = "_layernorm" if spec.qk_norm == "layernorm" else "_norm"
        q, k = (_head_norm(b, a, f"{p}.{w}{suffix}", spec) for a, w in ((q, "q"), (k, "k")))
    kv_len = (kv_src.shape[0] if kv_src is not None else tokens) + past
    keep = None
    if window:
        kv_len = min(kv_len, window)
        if window_cache:
            keep = min(past + tokens, window) - min(past, window)
            past = min(past, window)
    o = attention_core(b, p, q, k, v, spec, q_len=tokens, kv_len=kv_len, past=past, cache=cache,
                       cache_tokens=keep)
    return b.linear(o, f"{p}.{on}", x.shape[-1], bias=ob)


def _head_norm(b: GraphBuilder, x: Act, name: str, spec: AttnSpec) -> Act:
    """A norm over each head's head_dim features, one weight of head_dim shared by all heads."""
    ws = [b.tensor(f"{name}.weight", spec.head_dim)]
    if spec.qk_norm == "layernorm":
        ws.append(b.tensor(f"{name}.bias", spec.head_dim))
    return b.op(name, spec.qk_norm, [x], x.shape, ELEMENTWISE_FLOPS[spec.qk_norm] * x.numel, ws)


def mlp(b: GraphBuilder, x: Act, p: str, hidden: int, act: str = "gelu",
        names: tuple[str, str] = ("fc1", "fc2"), bias: bool = True) -> Act:
    """Two-layer MLP with the activation fused into the first linear."""
    y = b.linear(x, f"{p}.{names[0]}", hidden, bias=bias, act=act)
    return b.linear(y, f"{p}.{names[1]}", x.shape[-1], bias=bias)


def pre_ln_block(b: GraphBuilder, x: Act, p: str, spec: AttnSpec, ffn: int, *, act: str = "gelu",
                 ln: tuple[str, str] = ("layer_norm1", "layer_norm2"), attn: str = "self_attn",
                 mlp_names: tuple[str, str] = ("mlp.fc1", "mlp.fc2")) -> Act:
    """x + attn(LN(x)), then x + MLP(LN(x)) (ViT, CLIP, Whisper encoder)."""
    y = b.norm(x, f"{p}.{ln[0]}")
    y = attention(b, y, f"{p}.{attn}", spec)
    x = b.add(f"{p}.attn_add", x, y)
    y = b.norm(x, f"{p}.{ln[1]}")
    y = mlp(b, y, p, ffn, act, mlp_names)
    return b.add(f"{p}.mlp_add", x, y)


def bert(name: str = "bert-base", dtype: str = "fp16", tokens: int = 128, *, vocab: int = 30522,
         hidden: int = 768, layers: int = 12, heads: int = 12, ffn: int = 3072,
         max_positions: int = 512, type_vocab: int = 2) -> GraphBuilder:
    """A post-LN BERT encoder with pooler (HF BertModel layout)."""
    b = GraphBuilder(name, dtype)
    d = hidden
    spec = AttnSpec(heads, d // heads, names=("query", "key", "value", "output.dense"))
    e = "embeddings"
    word = b.embedding(f"{e}.word_embeddings",
                       b.tensor(f"{e}.word_embeddings.weight", vocab, d), tokens)
    pos = b.embedding(f"{e}.position_embeddings",
                      b.tensor(f"{e}.position_embeddings.weight", max_positions, d), tokens)
    typ = b.embedding(f"{e}.token_type_embeddings",
                      b.tensor(f"{e}.token_type_embeddings.weight", type_vocab, d), tokens)
    x = b.op(f"{e}.sum", "add", [word, pos, typ], (tokens, d), 2 * tokens * d)
    x = b.norm(x, f"{e}.LayerNorm")
    for i in range(layers):
        p = f"encoder.layer.{i}"
        y = attention(b, x, f"{p}.attention.self", spec)
        x = b.norm(b.add(f"{p}.attention.add", x, y), f"{p}.attention.output.LayerNorm")
        y = b.linear(x, f"{p}.intermediate.dense", ffn, act="gelu")
        y = b.linear(y, f"{p}.output.dense", d)
        x = b.norm(b.add(f"{p}.output.add", x, y), f"{p}.output.LayerNorm")
    cls = b.op("pooler.select", "slice", [x], (1, d), 0)
    b.linear(cls, "pooler.dense", d, act="tanh")
    return b


def bert_base(dtype: str = "fp16", tokens: int = 128) -> Model:
    """BERT-base uncased with pooler: 109,482,240 params (HF bert-base-uncased)."""
    return bert("bert-base", dtype, tokens).build(
        family="transformer", published_params=109_482_240,
        source="Devlin et al. 2019, arXiv:1810.04805; HF bert-base-uncased (109,482,240 params "
               "incl. pooler)",
        description=f"BERT-base encoder, {tokens} tokens")


def clip_text(dtype: str = "fp16", tokens: int = 77) -> Model:
    """CLIP ViT-L/14 text encoder as used by Stable Diffusion 1.5: 123,060,480 params."""
    b = GraphBuilder("sd15-text-encoder", dtype)
    d = 768
    spec = AttnSpec(12, 64)
    tok = b.embedding("embeddings.token_embedding",
                      b.tensor("embeddings.token_embedding.weight", 49408, d), tokens)
    pos = b.embedding("embeddings.position_embedding",
                      b.tensor("embeddings.position_embedding.weight", 77, d), tokens)
    x = b.add("embeddings.add", tok, pos)
    for i in range(12):
        x = pre_ln_block(b, x, f"encoder.layers.{i}", spec, 3072, act="quick_gelu")
    b.norm(x, "final_layer_norm")
    return b.build(family="diffusion", published_params=123_060_480,
                   source="Radford et al. 2021, arXiv:2103.00020; HF openai/clip-vit-large-"
                          "patch14 CLIPTextModel, SD1.5 text_encoder (123,060,480 params)",
                   description=f"CLIP ViT-L/14 text encoder, {tokens} tokens")


@dataclass(frozen=True)
class WhisperConfig:
    """Whisper's sizes (Hugging Face WhisperConfig names); the default is whisper-small."""

    d_model: int = 768
    encoder_layers: int = 12
    decoder_layers: int = 12
    encoder_heads: int = 12
    decoder_heads: int = 12
    encoder_ffn: int = 3072
    decoder_ffn: int = 3072
    mels: int = 80
    source_positions: int = 1500  # audio positions after the stride-2 conv (30 s)
    target_positions: int = 448
    vocab: int = 51865
    tied: bool = True  # proj_out shares embed_tokens

    def spec(self, heads: int) -> AttnSpec:
        return AttnSpec(heads, self.d_model // heads, bias=(True, False, True, True))


@dataclass(frozen=True)
class WhisperZoo:
    """A Whisper checkpoint in the zoo: its sizes and the published encoder / decoder split."""

    name: str  # zoo names: NAME-encoder, NAME-decoder
    title: str
    cfg: WhisperConfig
    encoder_params: int  # HF model.encoder num_parameters()
    decoder_params: int  # HF model.decoder (embed_tokens, tied with proj_out, counted here)
    source: str


_WHISPER_SPLIT = ("the token embedding, tied with the output projection, is counted once, in "
                  "the decoder")
WHISPER_SMALL = WhisperConfig()
WHISPER_MEDIUM = WhisperConfig(d_model=1024, encoder_layers=24, decoder_layers=24,
                               encoder_heads=16, decoder_heads=16, encoder_ffn=4096,
                               decoder_ffn=4096)
WHISPER_SOURCE = ("Radford et al. 2022, arXiv:2212.04356; HF openai/whisper-small "
                  f"(241.7M params total = encoder + decoder; {_WHISPER_SPLIT})")
WHISPER_TOTAL = 241_734_912  # HF openai/whisper-small num_parameters()
WHISPER_ENCODER, WHISPER_DECODER = 88_154_112, 153_580_800  # model.encoder / model.decoder
WHISPERS = (
    WhisperZoo("whisper-small", "Whisper-small", WHISPER_SMALL, WHISPER_ENCODER, WHISPER_DECODER,
               WHISPER_SOURCE),
    WhisperZoo("whisper-medium", "Whisper-medium", WHISPER_MEDIUM, 307_216_384, 456_641_536,
               "Radford et al. 2022, arXiv:2212.04356 (769M in the paper's table); HF "
               "openai/whisper-medium config.json (d_model 1024, 24 + 24 layers, 16 heads, ffn "
               "4096, vocab 51865, 80 mel bins, 1500 audio / 448 text positions): 763,857,920 "
               "params computed from the config, equal to transformers' "
               "WhisperForConditionalGeneration num_parameters(), = encoder + decoder; "
               f"{_WHISPER_SPLIT}"),
)


def whisper_encoder_layers(b: GraphBuilder, cfg: WhisperConfig, frames: int,
                           prefix: str = "") -> Act:
    """The audio encoder on `frames` mel frames: 2 convs (the second stride 2), positions,
    pre-LN layers, final LayerNorm; returns its (positions, d_model) output."""
    d = cfg.d_model
    # 1-D convs: k=3 expressed as (k x 1) 2-D convs over (C, T, 1)
    x = _conv1d(b, Act(None, (cfg.mels, frames)), f"{prefix}conv1", d, 3, 1)
    x = _conv1d(b, x, f"{prefix}conv2", d, 3, 2, transpose=True)
    t = x.shape[0]
    pos = b.embedding(f"{prefix}embed_positions",
                      b.tensor(f"{prefix}embed_positions.weight", cfg.source_positions, d), t)
    x = b.op(f"{prefix}embed_add", "add", [x, pos], (t, d), t * d)
    for i in range(cfg.encoder_layers):
        x = pre_ln_block(b, x, f"{prefix}layers.{i}", cfg.spec(cfg.encoder_heads),
                         cfg.encoder_ffn, ln=("self_attn_layer_norm", "final_layer_norm"),
                         mlp_names=("fc1", "fc2"))
    return b.norm(x, f"{prefix}layer_norm")


def _conv1d(b: GraphBuilder, x: Act, name: str, cout: int, k: int, stride: int,
            transpose: bool = False) -> Act:
    """1-D conv (+ GELU) on (C, T) with weight (cout, cin, k) and bias; output (cout, T'), or
    (T', cout) with `transpose` (the layout the transformer layers read)."""
    cin, t = x.shape
    to = (t + 2 * (k // 2) - k) // stride + 1
    w, bias = b.tensor(f"{name}.weight", cout, cin, k), b.tensor(f"{name}.bias", cout)
    flops = 2 * cout * to * cin * k + cout * to + 8 * cout * to
    shape = (to, cout) if transpose else (cout, to)
    return b.op(name, "conv", [x], shape, flops, [w, bias], kernel=k, stride=stride, act="gelu")


def whisper_decoder_layers(b: GraphBuilder, cfg: WhisperConfig, tokens: int, enc: Act,
                           past: int = 0, cache: bool = False, prefix: str = "",
                           head: str = "proj_out") -> Act:
    """The text decoder on `tokens` tokens with cross-attention to `enc`; logits of the last
    token through `head` (tied to embed_tokens when cfg.tied)."""
    d = cfg.d_model
    table = b.tensor(f"{prefix}embed_tokens.weight", cfg.vocab, d)
    tok = b.embedding(f"{prefix}embed_tokens", table, tokens)
    pos = b.embedding(f"{prefix}embed_positions",
                      b.tensor(f"{prefix}embed_positions.weight", cfg.target_positions, d),
                      tokens)
    x = b.add(f"{prefix}embed_add", tok, pos)
    spec = cfg.spec(cfg.decoder_heads)
    for i in range(cfg.decoder_layers):
        p = f"{prefix}layers.{i}"
        y = b.norm(x, f"{p}.self_attn_layer_norm")
        y = attention(b, y, f"{p}.self_attn", spec, past=past, cache=cache)
        x = b.add(f"{p}.self_attn_add", x, y)
        y = b.norm(x, f"{p}.encoder_attn_layer_norm")
        y = attention(b, y, f"{p}.encoder_attn", spec, kv_src=enc)
        x = b.add(f"{p}.encoder_attn_add", x, y)
        y = b.norm(x, f"{p}.final_layer_norm")
        y = mlp(b, y, p, cfg.decoder_ffn, "gelu")
        x = b.add(f"{p}.mlp_add", x, y)
    x = b.norm(x, f"{prefix}layer_norm")
    last = b.op(f"{prefix}last_token", "slice", [x], (1, d), 0)
    return b.linear(last, head, cfg.vocab, bias=False, weight=table if cfg.tied else None)


def whisper_encoder_builder(w: WhisperZoo):
    """A zoo constructor `(dtype, frames=3000) -> Model` for `w`'s audio encoder."""
    def build(dtype: str = "fp16", frames: int = 3000) -> Model:
        b = GraphBuilder(f"{w.name}-encoder", dtype)
        x = whisper_encoder_layers(b, w.cfg, frames)
        return b.build(family="audio", published_params=w.encoder_params, source=w.source,
                       description=f"{w.title} encoder, {frames} mel frames "
                                   f"({x.shape[0]} positions)")
    build.__doc__ = (f"{w.title} audio encoder: 2 convs, {w.cfg.source_positions} positions, "
                     f"{w.cfg.encoder_layers} pre-LN layers ({w.encoder_params:,} params).")
    return build


def whisper_decoder_builder(w: WhisperZoo):
    """A zoo constructor `(dtype, tokens=32, audio_positions=1500, past=0, cache=False)` for
    `w`'s text decoder (self- and cross-attention; logits of the last token)."""
    def build(dtype: str = "fp16", tokens: int = 32, audio_positions: int = 1500,
              past: int = 0, cache: bool = False) -> Model:
        b = GraphBuilder(f"{w.name}-decoder", dtype)
        enc = Act(None, (audio_positions, w.cfg.d_model))
        whisper_decoder_layers(b, w.cfg, tokens, enc, past, cache)
        return b.build(family="audio", published_params=w.decoder_params, source=w.source,
                       description=f"{w.title} decoder, {tokens} tokens attending to "
                                   f"{audio_positions} audio positions")
    build.__doc__ = (f"{w.title} text decoder: {w.cfg.decoder_layers} layers with self- and "
                     f"cross-attention ({w.decoder_params:,} params).")
    return build


whisper_encoder = whisper_encoder_builder(WHISPERS[0])
whisper_decoder = whisper_decoder_builder(WHISPERS[0])


def distilbert(name: str, dtype: str = "fp16", tokens: int = 128, *, vocab: int = 30522,
               dim: int = 768, layers: int = 6, heads: int = 12, hidden_dim: int = 3072,
               max_positions: int = 512, act: str = "gelu") -> GraphBuilder:
    """A DistilBERT encoder (HF DistilBertModel: post-LN, no token types, no pooler)."""
    b = GraphBuilder(name, dtype)
    e = "embeddings"
    word = b.embedding(f"{e}.word_embeddings",
                       b.tensor(f"{e}.word_embeddings.weight", vocab, dim), tokens)
    pos = b.embedding(f"{e}.position_embeddings",
                      b.tensor(f"{e}.position_embeddings.weight", max_positions, dim), tokens)
    x = b.norm(b.add(f"{e}.add", word, pos), f"{e}.LayerNorm")
    spec = AttnSpec(heads, dim // heads, names=("q_lin", "k_lin", "v_lin", "out_lin"))
    for i in range(layers):
        p = f"transformer.layer.{i}"
        y = attention(b, x, f"{p}.attention", spec)
        x = b.norm(b.add(f"{p}.attention.add", x, y), f"{p}.sa_layer_norm")
        y = mlp(b, x, f"{p}.ffn", hidden_dim, act, ("lin1", "lin2"))
        x = b.norm(b.add(f"{p}.ffn.add", x, y), f"{p}.output_layer_norm")
    return b


@dataclass(frozen=True)
class T5Config:
    """T5's sizes (Hugging Face T5Config names); the default is t5-small."""

    vocab: int = 32128
    d_model: int = 512
    d_kv: int = 64
    d_ff: int = 2048
    layers: int = 6
    decoder_layers: int = 6
    heads: int = 8
    buckets: int = 32  # relative_attention_num_buckets
    act: str = "relu"
    gated: bool = False  # feed_forward_proj "gated-gelu" (T5 v1.1, mT5): wi_0 and wi_1
    tied: bool = True  # lm_head shares the `shared` embedding


def t5(name: str, cfg: T5Config, dtype: str = "fp16", tokens: int = 128,
       decoder_tokens: int = 128) -> GraphBuilder:
    """A T5 encoder-decoder (HF T5ForConditionalGeneration): the encoder on `tokens` tokens,
    then the decoder on `decoder_tokens` tokens with cross-attention; logits of the last one.

    Norms are T5LayerNorm (RMS, no bias); the relative position bias is a (buckets, heads)
    table in the first block of each stack, added to every layer's scores."""
    b = GraphBuilder(name, dtype)
    shared = b.tensor("shared.weight", cfg.vocab, cfg.d_model)
    x = b.embedding("encoder.embed_tokens", shared, tokens)
    for i in range(cfg.layers):
        p = f"encoder.block.{i}"
        x = _t5_attention(b, x, f"{p}.layer.0", "SelfAttention", cfg, bias_table=i == 0)
        x = _t5_ffn(b, x, f"{p}.layer.1", cfg)
    enc = b.norm(x, "encoder.final_layer_norm", "rmsnorm", bias=False)
    x = b.embedding("decoder.embed_tokens", shared, decoder_tokens)
    for i in range(cfg.decoder_layers):
        p = f"decoder.block.{i}"
        x = _t5_attention(b, x, f"{p}.layer.0", "SelfAttention", cfg, bias_table=i == 0)
        x = _t5_attention(b, x, f"{p}.layer.1", "EncDecAttention", cfg, kv_src=enc)
        x = _t5_ffn(b, x, f"{p}.layer.2", cfg)
    x = b.norm(x, "decoder.final_layer_norm", "rmsnorm", bias=False)
    if decoder_tokens > 1:
        x = b.op("last_token", "slice", [x], (1, cfg.d_model), 0)
    b.linear(x, "lm_head", cfg.vocab, bias=False, weight=shared if cfg.tied else None)
    return b


def _t5_attention(b: GraphBuilder, x: Act, p: str, kind: str, cfg: T5Config, *,
                  bias_table: bool = False, kv_src: Act | None = None) -> Act:
    """x + attention(RMSNorm(x)); self-attention adds the relative position bias to its
    scores (the table's weights sit on the first block's QK^T op)."""
    spec = AttnSpec(cfg.heads, cfg.d_kv, names=("q", "k", "v", "o"), bias=(False,) * 4)
    y = b.norm(x, f"{p}.layer_norm", "rmsnorm", bias=False)
    a = f"{p}.{kind}"
    src = kv_src or y
    q = b.linear(y, f"{a}.q", spec.q_dim, bias=False)
    k = b.linear(src, f"{a}.k", spec.kv_dim, bias=False)
    v = b.linear(src, f"{a}.v", spec.kv_dim, bias=False)
    q_len, kv_len = y.shape[0], src.shape[0]
    extra = (b.tensor(f"{a}.relative_attention_bias.weight", cfg.buckets, cfg.heads),) \
        if bias_table else ()
    o = attention_core(b, a, q, k, v, spec, q_len=q_len, kv_len=kv_len, extra_weights=extra,
                       extra_flops=0 if kv_src else cfg.heads * q_len * kv_len)
    return b.add(f"{p}.add", x, b.linear(o, f"{a}.o", x.shape[-1], bias=False))


def _t5_ffn(b: GraphBuilder, x: Act, p: str, cfg: T5Config) -> Act:
    """x + DenseReluDense(RMSNorm(x)), gated (wi_0 * wi_1) for T5 v1.1."""
    y = b.norm(x, f"{p}.layer_norm", "rmsnorm", bias=False)
    f = f"{p}.DenseReluDense"
    if cfg.gated:
        g = b.linear(y, f"{f}.wi_0", cfg.d_ff, bias=False, act=cfg.act)
        u = b.linear(y, f"{f}.wi_1", cfg.d_ff, bias=False)
        h = b.elementwise(f"{f}.gate_mul", "mul", [g, u])
    else:
        h = b.linear(y, f"{f}.wi", cfg.d_ff, bias=False, act=cfg.act)
    return b.add(f"{p}.add", x, b.linear(h, f"{f}.wo", x.shape[-1], bias=False))
