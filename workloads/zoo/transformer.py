"""Transformer building blocks (attention with QK^T and AV as their own ops, MLPs) and the
encoder models built from them: BERT-base, CLIP ViT-L/14 text encoder (Stable Diffusion 1.5),
and Whisper-small's encoder and decoder.

Attention FLOPs count the full score matrix (QK^T and AV are each 2*heads*q*k*head_dim), also
for causal masks, as unfused kernels compute it. Softmax is its own op.
"""

from __future__ import annotations

from dataclasses import dataclass

from workloads.model import Model, Tensor
from workloads.zoo.layers import Act, GraphBuilder


@dataclass(frozen=True)
class AttnSpec:
    """Shape and weight naming of one attention layer (names follow the Hugging Face modules)."""

    heads: int
    head_dim: int
    kv_heads: int = 0  # 0 = heads (multi-head); fewer = grouped-query attention
    names: tuple[str, str, str, str] = ("q_proj", "k_proj", "v_proj", "out_proj")
    fused: str = ""  # name of a fused q|k|v projection (GPT-2 c_attn, ViT qkv); "" = separate
    bias: tuple[bool, bool, bool, bool] = (True, True, True, True)  # q, k, v, out

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return (self.kv_heads or self.heads) * self.head_dim


def attention_core(b: GraphBuilder, p: str, q: Act, k: Act, v: Act, spec: AttnSpec, *,
                   q_len: int, kv_len: int, groups: int = 1, past: int = 0, cache: bool = False,
                   extra_weights: tuple[Tensor, ...] = (), extra_flops: int = 0) -> Act:
    """QK^T -> softmax -> AV for `groups` independent windows of q_len queries x kv_len keys.

    `extra_weights`/`extra_flops` add a position bias to the scores (Swin, SAM). `past`
    keys/values come from the KV cache (read, not recomputed); with `cache` the QK^T op
    appends this call's K and the AV op its V as persistent state (`state_elems`).
    """
    h, hd = spec.heads, spec.head_dim
    new_kv = k.numel if cache else 0
    cached = past * spec.kv_dim
    flops = 2 * groups * h * q_len * kv_len * hd
    scores = b.op(f"{p}.qk", "attention_qk", [q, k], (groups * h, q_len, kv_len),
                  flops + extra_flops, extra_weights,
                  input_elems=q.numel + k.numel + cached, state=new_kv, past_tokens=past)
    probs = b.elementwise(f"{p}.softmax", "softmax", [scores])
    return b.op(f"{p}.av", "attention_av", [probs, v], (q.shape[0], spec.q_dim), flops,
                input_elems=probs.numel + v.numel + cached, state=v.numel if cache else 0,
                past_tokens=past)


def attention(b: GraphBuilder, x: Act, p: str, spec: AttnSpec, *, kv_src: Act | None = None,
              past: int = 0, cache: bool = False, window: int = 0) -> Act:
    """A full attention layer on x (tokens, dim): projections, QK^T, softmax, AV, output.

    `kv_src` makes it cross-attention; `window` > 0 limits each query to that many keys (local
    attention, GPT-Neo).
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
    kv_len = (kv_src.shape[0] if kv_src is not None else tokens) + past
    if window:
        kv_len = min(kv_len, window)
    o = attention_core(b, p, q, k, v, spec, q_len=tokens, kv_len=kv_len, past=past, cache=cache)
    return b.linear(o, f"{p}.{on}", x.shape[-1], bias=ob)


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


WHISPER_D, WHISPER_FFN, WHISPER_VOCAB = 768, 3072, 51865
WHISPER_SPEC = AttnSpec(12, 64, bias=(True, False, True, True))
WHISPER_SOURCE = ("Radford et al. 2022, arXiv:2212.04356; HF openai/whisper-small "
                  "(241.7M params total = encoder + decoder; the token embedding, tied with the "
                  "output projection, is counted once, in the decoder)")
WHISPER_TOTAL = 241_734_912  # HF openai/whisper-small num_parameters()
WHISPER_ENCODER, WHISPER_DECODER = 88_154_112, 153_580_800  # model.encoder / model.decoder


def whisper_encoder(dtype: str = "fp16", frames: int = 3000) -> Model:
    """Whisper-small audio encoder: 2 convs, 1500 positions, 12 pre-LN layers (~88.15M)."""
    b = GraphBuilder("whisper-small-encoder", dtype)
    d = WHISPER_D
    # 1-D convs: k=3 expressed as (k x 1) 2-D convs over (C, T, 1)
    x = _conv1d(b, Act(None, (80, frames)), "conv1", d, 3, 1)
    x = _conv1d(b, x, "conv2", d, 3, 2)
    t = x.shape[1]
    pos = b.embedding("embed_positions", b.tensor("embed_positions.weight", 1500, d), t)
    x = b.op("embed_add", "add", [x, pos], (t, d), t * d)
    for i in range(12):
        x = pre_ln_block(b, x, f"layers.{i}", WHISPER_SPEC, WHISPER_FFN,
                         ln=("self_attn_layer_norm", "final_layer_norm"),
                         mlp_names=("fc1", "fc2"))
    b.norm(x, "layer_norm")
    return b.build(family="audio", published_params=WHISPER_ENCODER, source=WHISPER_SOURCE,
                   description=f"Whisper-small encoder, {frames} mel frames ({t} positions)")


def _conv1d(b: GraphBuilder, x: Act, name: str, cout: int, k: int, stride: int) -> Act:
    """1-D conv (+ GELU) on (C, T) -> (T', C) with weight (cout, cin, k) and bias."""
    cin, t = x.shape
    to = (t + 2 * (k // 2) - k) // stride + 1
    w, bias = b.tensor(f"{name}.weight", cout, cin, k), b.tensor(f"{name}.bias", cout)
    flops = 2 * cout * to * cin * k + cout * to + 8 * cout * to
    shape = (to, cout) if name == "conv2" else (cout, to)
    return b.op(name, "conv", [x], shape, flops, [w, bias], kernel=k, stride=stride, act="gelu")


def whisper_decoder(dtype: str = "fp16", tokens: int = 32, audio_positions: int = 1500,
                    past: int = 0, cache: bool = False) -> Model:
    """Whisper-small text decoder: 12 layers with self- and cross-attention (~153.6M)."""
    b = GraphBuilder("whisper-small-decoder", dtype)
    d = WHISPER_D
    table = b.tensor("embed_tokens.weight", WHISPER_VOCAB, d)
    tok = b.embedding("embed_tokens", table, tokens)
    pos = b.embedding("embed_positions", b.tensor("embed_positions.weight", 448, d), tokens)
    x = b.add("embed_add", tok, pos)
    enc = Act(None, (audio_positions, d))
    for i in range(12):
        p = f"layers.{i}"
        y = b.norm(x, f"{p}.self_attn_layer_norm")
        y = attention(b, y, f"{p}.self_attn", WHISPER_SPEC, past=past, cache=cache)
        x = b.add(f"{p}.self_attn_add", x, y)
        y = b.norm(x, f"{p}.encoder_attn_layer_norm")
        y = attention(b, y, f"{p}.encoder_attn", WHISPER_SPEC, kv_src=enc)
        x = b.add(f"{p}.encoder_attn_add", x, y)
        y = b.norm(x, f"{p}.final_layer_norm")
        y = mlp(b, y, p, WHISPER_FFN, "gelu")
        x = b.add(f"{p}.mlp_add", x, y)
    x = b.norm(x, "layer_norm")
    last = b.op("last_token", "slice", [x], (1, d), 0)
    b.linear(last, "proj_out", WHISPER_VOCAB, bias=False, weight=table)
    return b.build(family="audio", published_params=WHISPER_DECODER, source=WHISPER_SOURCE,
                   description=f"Whisper-small decoder, {tokens} tokens attending to "
                               f"{audio_positions} audio positions")
