"""Build a Model from a Hugging Face style `config.json`, using the zoo's layer-by-layer
builders, so an imported config and the matching zoo model have the same ops and parameters.

Families (`model_type`): decoder LMs llama, mistral (sliding window), qwen2 (q/k/v biases),
gemma (head_dim, tied embeddings), phi3 (fused qkv / gate_up), phi (parallel attention + MLP,
biases), falcon (multi-query or the new decoder architecture), mixtral and qwen2_moe (experts as
their own weights, routing metadata on the op), opt, gpt2, gpt_neo; encoders bert, distilbert,
vit; encoder-decoders t5 / mt5 and whisper. Decoder LMs include the LM head (tied or not per
`tie_word_embeddings`); BERT / DistilBERT are the base models (BERT with its pooler); ViT has a
classifier when the config names a *ForImageClassification architecture.

A config is never approximated: an unknown family, a missing size, a field that only another
family has (experts in a llama config, say), or architectures naming another family is refused
with a WorkloadError. What the importer cannot know (a quantized checkpoint's packing, an
unknown activation) goes into `Model.warnings`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from workloads.formats import GROUP_SIZES
from workloads.model import Model, WorkloadError
from workloads.precision import parse_precision
from workloads.zoo.layers import ACT_FLOPS, GraphBuilder
from workloads.zoo.llm import LMConfig, decoder_lm
from workloads.zoo.transformer import (
    T5Config,
    WhisperConfig,
    bert,
    distilbert,
    t5,
    whisper_decoder_layers,
    whisper_encoder_layers,
)
from workloads.zoo.vision import vit

GATED_LMS = ("llama", "mistral", "qwen2", "gemma", "phi3", "mixtral", "qwen2_moe")
SUPPORTED = (*GATED_LMS, "phi", "falcon", "opt", "gpt2", "gpt_neo", "bert", "distilbert", "vit",
             "t5", "mt5", "whisper")
SOURCE = "Hugging Face config.json"

# fields that only some families have: seen in a config of another family, they mean the
# config was relabelled (or is of an unsupported variant) and would be built wrong
FAMILY_FIELDS: dict[str, tuple[str, ...]] = {
    "num_local_experts": ("mixtral",),
    "num_experts": ("qwen2_moe",),
    "num_experts_per_tok": ("mixtral", "qwen2_moe"),
    "moe_intermediate_size": ("qwen2_moe",),
    "shared_expert_intermediate_size": ("qwen2_moe",),
    "n_routed_experts": (), "n_shared_experts": (), "moe_layer_freq": (),
    "sliding_window": ("mistral", "qwen2", "qwen2_moe", "mixtral", "phi3"),
    "use_sliding_window": ("qwen2", "qwen2_moe"),
    "max_window_layers": ("qwen2", "qwen2_moe"),
    "qk_layernorm": ("phi",),
    "multi_query": ("falcon",), "parallel_attn": ("falcon",),
    "new_decoder_architecture": ("falcon",), "num_kv_heads": ("falcon",), "alibi": ("falcon",),
    "num_ln_in_parallel_attn": ("falcon",),
    "rms_norm_eps": GATED_LMS,
    "layer_norm_eps": ("phi", "bert", "vit"),
    "layer_norm_epsilon": ("falcon", "gpt2", "gpt_neo", "t5", "mt5"),
    "word_embed_proj_dim": ("opt",), "do_layer_norm_before": ("opt",),
    "d_kv": ("t5", "mt5"), "d_ff": ("t5", "mt5"), "relative_attention_num_buckets": ("t5", "mt5"),
    "num_mel_bins": ("whisper",), "encoder_layers": ("whisper",), "decoder_layers": ("whisper",),
    "is_encoder_decoder": ("t5", "mt5", "whisper"),
    "attention_layers": ("gpt_neo",), "type_vocab_size": ("bert",),
    "sinusoidal_pos_embds": ("distilbert",),
    "mlp_bias": ("llama",), "attention_bias": ("llama", "gemma"), "qkv_bias": ("qwen2_moe", "vit"),
    "add_cross_attention": (),
}
# architectures class name (less For.../Model) -> family
ARCH_FAMILY = {"Llama": "llama", "Mistral": "mistral", "Qwen2": "qwen2", "Qwen2Moe": "qwen2_moe",
               "Gemma": "gemma", "Phi3": "phi3", "Phi": "phi", "Falcon": "falcon",
               "Mixtral": "mixtral", "OPT": "opt", "T5": "t5", "MT5": "mt5",
               "DistilBert": "distilbert", "Bert": "bert", "ViT": "vit", "Whisper": "whisper",
               "GPTNeo": "gpt_neo", "GPT2": "gpt2"}
# Hugging Face activation names -> ACT_FLOPS keys
ACTS = {"silu": "silu", "swish": "silu", "gelu": "gelu", "gelu_new": "gelu",
        "gelu_pytorch_tanh": "gelu", "gelu_fast": "gelu", "gelu_python": "gelu",
        "gelu_accurate": "gelu", "relu": "relu", "relu6": "relu6", "quick_gelu": "quick_gelu",
        "tanh": "tanh", "sigmoid": "sigmoid", "mish": "mish", "leaky_relu": "leaky"}


def read_config(path_or_dict: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """The config as a dict, from a mapping, a config.json file, or a folder holding one."""
    if isinstance(path_or_dict, Mapping):
        return dict(path_or_dict)
    path = Path(path_or_dict)
    if path.is_dir():
        path = path / "config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"), parse_constant=_no_constant)
    except FileNotFoundError:
        raise WorkloadError(f"config file not found: {path}") from None
    except OSError as exc:
        raise WorkloadError(f"cannot read config file {path}: {exc.strerror}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise WorkloadError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise WorkloadError(f"{path}: a config.json must hold a JSON object")
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a config may hold (only finite numbers)")


# fields that set how many layers / experts are built: past these limits (far above any
# published model) a value is a typo, and building it would take hours and all the memory
STRUCTURE_LIMITS = {**dict.fromkeys(("num_hidden_layers", "n_layer", "num_layers",
                                     "num_decoder_layers", "encoder_layers", "decoder_layers"),
                                    10_000),
                    **dict.fromkeys(("num_local_experts", "num_experts"), 4096)}


def check_input(cfg: Mapping[str, Any]) -> None:
    """Refuse, at the entry point, values no config may hold: a non-finite number anywhere,
    layer or expert counts past `STRUCTURE_LIMITS`, a patch larger than the image, attention
    layer kinds other than global / local."""
    bad = _non_finite(cfg)
    if bad:
        raise WorkloadError(f"config field {bad} is not a finite number")
    for key, limit in STRUCTURE_LIMITS.items():
        v = cfg.get(key)
        if isinstance(v, int) and not isinstance(v, bool) and v > limit:
            raise WorkloadError(f"config field {key!r} = {v} is more than weightstream builds "
                                f"(at most {limit:,})")
    image, patch = cfg.get("image_size"), cfg.get("patch_size")
    if isinstance(image, int) and isinstance(patch, int) and 0 < image < patch:
        raise WorkloadError(f"config: patch_size {patch} is larger than image_size {image}: "
                            "the image has no patch")
    kinds = cfg.get("attention_layers")
    if kinds is not None and (not isinstance(kinds, list)
                              or any(k not in ("global", "local") for k in kinds)):
        raise WorkloadError(f"config field 'attention_layers' must be a list of 'global' / "
                            f"'local', found {kinds!r}")


def _non_finite(obj: Any, where: str = "") -> str | None:
    """Path of the first NaN or infinite number in `obj`, or None."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return repr(where or "value")
    items = obj.items() if isinstance(obj, Mapping) else (
        enumerate(obj) if isinstance(obj, list) else ())
    for k, v in items:
        found = _non_finite(v, f"{where}.{k}" if where and isinstance(obj, Mapping) else
                            (f"{where}[{k}]" if where else str(k)))
        if found:
            return found
    return None


class _Fields:
    """Typed access to a config's fields; a missing or bad size names the field."""

    def __init__(self, cfg: Mapping[str, Any], warnings: list[str]):
        self.cfg, self.mt, self.warnings = cfg, cfg.get("model_type"), warnings

    def int(self, *keys: str, default: int | None = None, minimum: int = 1) -> int:
        """The first of `keys` present (configs name one thing several ways), or `default`."""
        for k in keys:
            v = self.cfg.get(k)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
                raise WorkloadError(f"{self.mt} config: {k} must be a whole number >= {minimum}, "
                                    f"found {v!r}")
            return v
        if default is None:
            raise WorkloadError(f"{self.mt} config lacks {' / '.join(keys)}")
        return default

    def flag(self, key: str, default: bool) -> bool:
        v = self.cfg.get(key)
        if v is None:
            return default
        if not isinstance(v, bool):
            raise WorkloadError(f"{self.mt} config: {key} must be true or false, found {v!r}")
        return v

    def act(self, *keys: str, default: str) -> str:
        """The ACT_FLOPS key of the config's activation (an unknown one is flagged)."""
        name = next((self.cfg[k] for k in keys if self.cfg.get(k)), default)
        if name in ACTS:
            return ACTS[name]
        self.warnings.append(f"activation {name!r} is not known to the importer: its FLOPs are "
                             f"counted as GELU's ({ACT_FLOPS['gelu']} per element)")
        return "gelu"

    def heads(self, hidden: int, heads: int, head_dim_key: str | None = "head_dim") -> int:
        """head_dim from the config, else hidden / heads (which must divide)."""
        if head_dim_key and self.cfg.get(head_dim_key) is not None:
            return self.int(head_dim_key)
        if hidden % heads:
            raise WorkloadError(f"{self.mt} config: hidden size {hidden} is not a multiple of "
                                f"{heads} attention heads")
        return hidden // heads


def _is_set(value: Any) -> bool:
    return value not in (None, False, 0, "", [], {})


def check_family(cfg: Mapping[str, Any]) -> str:
    """The config's model_type, after refusing configs that contradict their family."""
    mt = cfg.get("model_type")
    if mt not in SUPPORTED:
        raise WorkloadError(f"unsupported model_type {mt!r}; supported: {', '.join(SUPPORTED)}")
    for arch in cfg.get("architectures") or []:
        base = re.sub(r"(For[A-Z]\w*|LMHeadModel|Model)$", "", str(arch))
        fam = ARCH_FAMILY.get(base)
        if fam and fam != mt and {fam, mt} != {"t5", "mt5"}:
            raise WorkloadError(f"config.json says model_type {mt!r} but architectures names "
                                f"{arch!r} (a {fam} model): a relabelled config would be built "
                                f"wrong; set model_type to {fam!r}")
    for key, value in cfg.items():
        fams = FAMILY_FIELDS.get(key)
        if fams is not None and mt not in fams and _is_set(value):
            whose = (f"only {', '.join(fams)} configs have it" if fams else
                     "no supported family has it")
            raise WorkloadError(f"{mt} config sets {key} = {value!r}, but {mt} has no such "
                                f"field ({whose}): this checkpoint is not a {mt} model and would "
                                f"be built wrong. Set model_type to the checkpoint's own family"
                                + (f" ({', '.join(fams)})" if fams else "") +
                                f"; supported families: {', '.join(SUPPORTED)}")
    return mt


def load_hf_config(path_or_dict: str | Path | Mapping[str, Any], dtype: str = "fp16",
                   name: str | None = None, tokens: int = 128) -> Model:
    """A Model from a config.json (path, folder or dict); `tokens` for text models (the
    encoder's and the decoder's tokens for T5; the decoder's for Whisper)."""
    prec = parse_precision(dtype)
    cfg = read_config(path_or_dict)
    check_input(cfg)
    mt = check_family(cfg)
    if name is None:  # the checkpoint's name, else the folder's (or a renamed file's stem)
        src = "" if isinstance(path_or_dict, Mapping) else Path(path_or_dict)
        if src and not src.is_dir():
            src = src.parent if src.name == "config.json" else Path(src.stem)
        src = cfg.get("_name_or_path") or (src.name if src else "")
        name = str(src).rstrip("/").split("/")[-1] or mt
    warnings: list[str] = []
    quant = cfg.get("quantization_config")
    if isinstance(quant, Mapping):
        method = quant.get("quant_method", "?")
        bits = quant.get("bits") or quant.get("w_bit") or ("4/8" if method == "bitsandbytes"
                                                           else "?")
        group = quant.get("group_size") or quant.get("q_group_size")
        hint = (f"{method}-g{group}" if method in ("awq", "gptq") and bits == 4
                and group in GROUP_SIZES else "int4 or int8")
        warnings.append(f"the checkpoint is quantized ({method}, {bits} bits): the config gives "
                        f"the unpacked shapes; weights are built in {prec.name} (pass --dtype "
                        f"{hint} to match the stored bytes)")
    try:
        model = BUILDERS[mt](_Fields(cfg, warnings), name, prec.base, tokens)
        if prec.mixed:
            model = model.with_dtype(prec.name)
    except (TypeError, ValueError, KeyError) as exc:
        if isinstance(exc, WorkloadError):
            raise
        raise WorkloadError(f"{mt} config has a bad value: {exc}") from None
    model.source = f"{SOURCE} (model_type {mt})"
    model.warnings = tuple(warnings)
    return model


def _positions(f: _Fields, tokens: int, limit: int, what: str = "tokens") -> None:
    if tokens > limit:
        raise WorkloadError(f"{f.mt} config: {tokens} {what} exceed the model's {limit} learned "
                            "positions; use fewer tokens")


def _windows(f: _Fields, layers: int) -> tuple[int, tuple[int, ...]]:
    """Sliding-window attention: (window, layers that use it)."""
    window = f.int("sliding_window", default=0, minimum=0) if f.cfg.get("sliding_window") else 0
    if not window:
        return 0, ()
    if f.mt in ("qwen2", "qwen2_moe"):
        types = f.cfg.get("layer_types")
        if isinstance(types, list) and len(types) == layers:
            return window, tuple(i for i, t in enumerate(types) if t == "sliding_attention")
        if not f.flag("use_sliding_window", False):
            return 0, ()
        first = f.int("max_window_layers", default=layers, minimum=0)
        return window, tuple(range(first, layers))
    return window, tuple(range(layers))


def gated_lm_config(f: _Fields, name: str) -> LMConfig:
    """LMConfig of the llama family and its variants (mistral, qwen2, gemma, phi3, mixtral,
    qwen2_moe): RMSNorm, gated MLP, rotary positions, grouped-query attention."""
    mt = f.mt
    hidden, heads = f.int("hidden_size"), f.int("num_attention_heads")
    layers = f.int("num_hidden_layers")
    kv = f.int("num_key_value_heads", default=heads)
    if heads % kv:
        raise WorkloadError(f"{mt} config: {heads} attention heads are not a multiple of "
                            f"{kv} key/value heads")
    window, local = _windows(f, layers)
    moe: dict[str, Any] = {}
    if mt == "mixtral":
        moe = dict(experts=f.int("num_local_experts"), experts_per_token=f.int(
            "num_experts_per_tok"))
    elif mt == "qwen2_moe":
        experts, step = f.int("num_experts"), f.int("decoder_sparse_step", default=1)
        dense = set(f.cfg.get("mlp_only_layers") or [])
        moe = dict(experts=experts, experts_per_token=f.int("num_experts_per_tok"),
                   expert_intermediate=f.int("moe_intermediate_size"),
                   shared_expert_intermediate=f.int("shared_expert_intermediate_size"),
                   dense_layers=tuple(i for i in range(layers)
                                      if i in dense or (i + 1) % step))
    if moe and moe["experts_per_token"] > moe["experts"]:
        raise WorkloadError(f"{mt} config: num_experts_per_tok {moe['experts_per_token']} "
                            f"exceeds the {moe['experts']} experts")
    style = mt if mt in ("phi3", "mixtral", "qwen2_moe") else "llama"
    return LMConfig(
        name, style, f.int("vocab_size"), hidden, layers, heads, f.int("intermediate_size"),
        kv_heads=kv, head_dim=f.heads(hidden, heads, None if mt == "phi3" else "head_dim"),
        tied=f.flag("tie_word_embeddings", mt == "gemma"),
        attn_bias=f.flag("attention_bias", False) if mt in ("llama", "gemma") else False,
        qkv_bias=mt == "qwen2" or (mt == "qwen2_moe" and f.flag("qkv_bias", True)),
        mlp_bias=f.flag("mlp_bias", False) if mt == "llama" else False,
        act=f.act("hidden_activation", "hidden_act",
                  default="gelu_pytorch_tanh" if mt == "gemma" else "silu"),
        local_window=window, local_layers=local, source=SOURCE, **moe)


def lm_config(f: _Fields, name: str) -> LMConfig:
    """The zoo LMConfig described by a decoder-only LM config."""
    mt = f.mt
    if mt in GATED_LMS:
        return gated_lm_config(f, name)
    if mt == "gpt2":
        if f.flag("add_cross_attention", False):
            raise WorkloadError("gpt2 config with add_cross_attention (an encoder-decoder "
                                "variant) is not supported")
        hidden = f.int("n_embd", "hidden_size")
        return LMConfig(name, "gpt2", f.int("vocab_size"), hidden,
                        f.int("n_layer", "num_hidden_layers"),
                        f.int("n_head", "num_attention_heads"),
                        f.int("n_inner", default=4 * hidden),
                        max_positions=f.int("n_positions", "n_ctx", default=1024),
                        tied=f.flag("tie_word_embeddings", True),
                        act=f.act("activation_function", default="gelu_new"), source=SOURCE)
    if mt == "gpt_neo":
        hidden, layers = f.int("hidden_size"), f.int("num_layers", "num_hidden_layers")
        kinds = list(f.cfg.get("attention_layers") or ["global"] * layers)
        if len(kinds) != layers:
            raise WorkloadError(f"gpt_neo config: attention_layers has {len(kinds)} entries for "
                                f"{layers} layers")
        return LMConfig(name, "gpt_neo", f.int("vocab_size"), hidden, layers,
                        f.int("num_heads", "num_attention_heads"),
                        f.int("intermediate_size", default=4 * hidden),
                        max_positions=f.int("max_position_embeddings", default=2048),
                        local_window=f.int("window_size", default=256),
                        local_layers=tuple(i for i, k in enumerate(kinds) if k == "local"),
                        tied=f.flag("tie_word_embeddings", True),
                        act=f.act("activation_function", default="gelu_new"), source=SOURCE)
    if mt == "phi":
        hidden, heads = f.int("hidden_size"), f.int("num_attention_heads")
        return LMConfig(name, "phi", f.int("vocab_size"), hidden, f.int("num_hidden_layers"),
                        heads, f.int("intermediate_size"),
                        kv_heads=f.int("num_key_value_heads", default=heads),
                        head_dim=f.heads(hidden, heads, None), parallel=True,
                        qk_norm=f.flag("qk_layernorm", False), lm_head_bias=True,
                        tied=f.flag("tie_word_embeddings", False),
                        act=f.act("hidden_act", default="gelu_new"), source=SOURCE)
    if mt == "falcon":
        return _falcon(f, name)
    return _opt(f, name)


def _falcon(f: _Fields, name: str) -> LMConfig:
    """Falcon: fused query_key_value (multi-query, or grouped with the new decoder
    architecture), parallel attention + MLP (one or two LayerNorms) or sequential blocks."""
    hidden, heads = f.int("hidden_size"), f.int("num_attention_heads")
    new_arch = f.flag("new_decoder_architecture", False)
    parallel = f.flag("parallel_attn", True)
    if new_arch and not parallel:
        raise WorkloadError("falcon config: new_decoder_architecture needs parallel_attn true "
                            "(transformers cannot build the sequential variant either)")
    if new_arch:
        kv = f.int("num_kv_heads", default=heads)
    else:
        kv = 1 if f.flag("multi_query", True) else heads
    norms = f.int("num_ln_in_parallel_attn", default=2 if new_arch else 1) if parallel else 1
    return LMConfig(name, "falcon", f.int("vocab_size"), hidden, f.int("num_hidden_layers"),
                    heads, f.int("ffn_hidden_size", default=4 * hidden), kv_heads=kv,
                    head_dim=f.heads(hidden, heads, None), bias=f.flag("bias", False),
                    parallel=parallel, parallel_norms=norms,
                    tied=f.flag("tie_word_embeddings", True),
                    act=f.act("activation", default="gelu"), source=SOURCE)


def _opt(f: _Fields, name: str) -> LMConfig:
    """OPT: learned positions (2 offset rows), pre- or post-LN, optional project in/out."""
    hidden = f.int("hidden_size")
    if not f.flag("layer_norm_elementwise_affine", True):
        raise WorkloadError("opt config with layer_norm_elementwise_affine false (LayerNorms "
                            "without weights) is not supported")
    proj = f.int("word_embed_proj_dim", default=hidden)
    pre = f.flag("do_layer_norm_before", True)
    heads = f.int("num_attention_heads")
    return LMConfig(name, "opt", f.int("vocab_size"), hidden, f.int("num_hidden_layers"),
                    heads, f.int("ffn_dim"), head_dim=f.heads(hidden, heads, None),
                    max_positions=f.int("max_position_embeddings", default=2048), pos_offset=2,
                    embed_dim=proj if proj != hidden else 0, bias=f.flag("enable_bias", True),
                    pre_norm=pre, final_norm=pre and not f.flag("_remove_final_layer_norm", False),
                    tied=f.flag("tie_word_embeddings", True),
                    act=f.act("activation_function", default="relu"), source=SOURCE)


def _decoder_lm(f: _Fields, name: str, dtype: str, tokens: int) -> Model:
    cfg = lm_config(f, name)
    if cfg.max_positions:
        _positions(f, tokens, cfg.max_positions)
    return decoder_lm(cfg, dtype, tokens)


def _bert(f: _Fields, name: str, dtype: str, tokens: int) -> Model:
    if f.flag("add_cross_attention", False) or f.flag("is_decoder", False):
        raise WorkloadError("bert config with is_decoder / add_cross_attention is not supported")
    positions = f.int("max_position_embeddings", default=512)
    _positions(f, tokens, positions)
    return bert(name, dtype, tokens, vocab=f.int("vocab_size"), hidden=f.int("hidden_size"),
                layers=f.int("num_hidden_layers"), heads=f.int("num_attention_heads"),
                ffn=f.int("intermediate_size"), max_positions=positions,
                type_vocab=f.int("type_vocab_size", default=2)).build(family="transformer")


def _distilbert(f: _Fields, name: str, dtype: str, tokens: int) -> Model:
    positions = f.int("max_position_embeddings", default=512)
    _positions(f, tokens, positions)
    dim, heads = f.int("dim"), f.int("n_heads")
    f.heads(dim, heads, None)
    return distilbert(name, dtype, tokens, vocab=f.int("vocab_size"), dim=dim,
                      layers=f.int("n_layers"), heads=heads, hidden_dim=f.int("hidden_dim"),
                      max_positions=positions, act=f.act("activation", default="gelu")
                      ).build(family="transformer")


def _vit(f: _Fields, name: str, dtype: str, tokens: int) -> Model:
    archs = " ".join(f.cfg.get("architectures") or [])
    classes = (len(f.cfg.get("id2label") or {}) or 1000) if "ForImageClassification" in archs \
        else 0
    return vit(name, dtype, f.int("image_size", default=224),
               patch=f.int("patch_size", default=16), hidden=f.int("hidden_size"),
               layers=f.int("num_hidden_layers"), heads=f.int("num_attention_heads"),
               ffn=f.int("intermediate_size"), classes=classes,
               channels=f.int("num_channels", default=3)).build(family="vision-transformer")


def _t5(f: _Fields, name: str, dtype: str, tokens: int) -> Model:
    proj = str(f.cfg.get("feed_forward_proj") or "relu")
    gated = proj.startswith("gated-")
    act_name = proj.removeprefix("gated-")
    if act_name not in ACTS or proj.count("-") > 1:
        raise WorkloadError(f"{f.mt} config: feed_forward_proj {proj!r} is not 'ACT' or "
                            "'gated-ACT' with a known activation (relu, gelu, ...)")
    layers = f.int("num_layers")
    cfg = T5Config(vocab=f.int("vocab_size"), d_model=f.int("d_model"), d_kv=f.int("d_kv"),
                   d_ff=f.int("d_ff"), layers=layers,
                   decoder_layers=f.int("num_decoder_layers", default=layers),
                   heads=f.int("num_heads"),
                   buckets=f.int("relative_attention_num_buckets", default=32),
                   act=ACTS[act_name], gated=gated,
                   tied=f.flag("tie_word_embeddings", f.mt == "t5"))
    return t5(name, cfg, dtype, tokens, tokens).build(
        family="encoder-decoder",
        description=f"{name}: encoder on {tokens} tokens, decoder on {tokens} tokens")


def _whisper(f: _Fields, name: str, dtype: str, tokens: int) -> Model:
    d = f.int("d_model")
    cfg = WhisperConfig(d_model=d, encoder_layers=f.int("encoder_layers"),
                        decoder_layers=f.int("decoder_layers"),
                        encoder_heads=f.int("encoder_attention_heads"),
                        decoder_heads=f.int("decoder_attention_heads"),
                        encoder_ffn=f.int("encoder_ffn_dim"), decoder_ffn=f.int("decoder_ffn_dim"),
                        mels=f.int("num_mel_bins"),
                        source_positions=f.int("max_source_positions"),
                        target_positions=f.int("max_target_positions"),
                        vocab=f.int("vocab_size"), tied=f.flag("tie_word_embeddings", True))
    for heads in (cfg.encoder_heads, cfg.decoder_heads):
        f.heads(d, heads, None)
    _positions(f, tokens, cfg.target_positions, "decoder tokens")
    b = GraphBuilder(name, dtype)
    frames = 2 * cfg.source_positions  # the encoder's fixed 30 s window
    enc = whisper_encoder_layers(b, cfg, frames, prefix="model.encoder.")
    whisper_decoder_layers(b, cfg, tokens, enc, prefix="model.decoder.")
    return b.build(family="audio", description=f"{name}: encoder on {frames} mel frames, "
                                               f"decoder on {tokens} tokens")


BUILDERS: dict[str, Callable[[_Fields, str, str, int], Model]] = {
    **dict.fromkeys((*GATED_LMS, "phi", "falcon", "opt", "gpt2", "gpt_neo"), _decoder_lm),
    "bert": _bert, "distilbert": _distilbert, "vit": _vit, "t5": _t5, "mt5": _t5,
    "whisper": _whisper}
