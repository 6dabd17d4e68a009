"""Build a Model from a Hugging Face style `config.json` (model_type llama, gpt2, gpt_neo, bert,
vit), using the zoo's layer-by-layer builders, so an imported config and the matching zoo model
have the same ops and parameter count.

What is built: decoder LMs with their LM head (tied or not, from `tie_word_embeddings`); BERT as
the base model with pooler; ViT with a classifier when the config names a
*ForImageClassification architecture (len(id2label) classes), else without one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workloads.model import Model, WorkloadError
from workloads.precision import parse_precision
from workloads.zoo.llm import LMConfig, decoder_lm
from workloads.zoo.transformer import bert
from workloads.zoo.vision import vit

SUPPORTED = ("llama", "gpt2", "gpt_neo", "bert", "vit")


def read_config(path_or_dict: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """The config as a dict, from a mapping, a config.json file, or a folder holding one."""
    if isinstance(path_or_dict, Mapping):
        return dict(path_or_dict)
    path = Path(path_or_dict)
    if path.is_dir():
        path = path / "config.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise WorkloadError(f"config file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WorkloadError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise WorkloadError(f"{path}: a config.json must hold a JSON object")
    return data


def _get(cfg: Mapping[str, Any], *keys: str, default: Any = None) -> Any:
    """The first of `keys` present (configs name one thing several ways), or `default`."""
    for k in keys:
        if cfg.get(k) is not None:
            return cfg[k]
    if default is None:
        raise WorkloadError(f"{cfg.get('model_type')} config lacks {' / '.join(keys)}")
    return default


def lm_config(cfg: Mapping[str, Any], name: str) -> LMConfig:
    """The zoo LMConfig described by a llama / gpt2 / gpt_neo config."""
    mt = cfg["model_type"]
    if mt == "llama":
        hidden, heads = _get(cfg, "hidden_size"), _get(cfg, "num_attention_heads")
        return LMConfig(name, "llama", _get(cfg, "vocab_size"), hidden,
                        _get(cfg, "num_hidden_layers"), heads, _get(cfg, "intermediate_size"),
                        kv_heads=_get(cfg, "num_key_value_heads", default=heads),
                        head_dim=_get(cfg, "head_dim", default=hidden // heads),
                        tied=bool(cfg.get("tie_word_embeddings", False)),
                        attn_bias=bool(cfg.get("attention_bias", False)),
                        source="Hugging Face config.json")
    if mt == "gpt2":
        hidden = _get(cfg, "n_embd", "hidden_size")
        return LMConfig(name, "gpt2", _get(cfg, "vocab_size"), hidden,
                        _get(cfg, "n_layer", "num_hidden_layers"),
                        _get(cfg, "n_head", "num_attention_heads"),
                        _get(cfg, "n_inner", default=4 * hidden),
                        max_positions=_get(cfg, "n_positions", "n_ctx", default=1024),
                        tied=bool(cfg.get("tie_word_embeddings", True)),
                        source="Hugging Face config.json")
    hidden, layers = _get(cfg, "hidden_size"), _get(cfg, "num_layers", "num_hidden_layers")
    kinds = list(cfg.get("attention_layers") or ["global"] * layers)
    if len(kinds) != layers:
        raise WorkloadError(f"gpt_neo config: attention_layers has {len(kinds)} entries for "
                            f"{layers} layers")
    return LMConfig(name, "gpt_neo", _get(cfg, "vocab_size"), hidden, layers,
                    _get(cfg, "num_heads", "num_attention_heads"),
                    _get(cfg, "intermediate_size", default=4 * hidden),
                    max_positions=_get(cfg, "max_position_embeddings", default=2048),
                    local_window=int(cfg.get("window_size", 256)),
                    local_layers=tuple(i for i, k in enumerate(kinds) if k == "local"),
                    tied=bool(cfg.get("tie_word_embeddings", True)),
                    source="Hugging Face config.json")


def load_hf_config(path_or_dict: str | Path | Mapping[str, Any], dtype: str = "fp16",
                   name: str | None = None, tokens: int = 128) -> Model:
    """A Model from a config.json (path, folder or dict); `tokens` for text models."""
    prec = parse_precision(dtype)
    cfg = read_config(path_or_dict)
    mt = cfg.get("model_type")
    if mt not in SUPPORTED:
        raise WorkloadError(f"unsupported model_type {mt!r}; supported: {', '.join(SUPPORTED)}")
    if name is None:
        folder = "" if isinstance(path_or_dict, Mapping) else Path(path_or_dict)
        if folder and not folder.is_dir():
            folder = folder.parent
        src = cfg.get("_name_or_path") or (folder.name if folder else "")
        name = str(src).rstrip("/").split("/")[-1] or mt
    try:
        model = _build(cfg, mt, name, prec.base, tokens)
    except (TypeError, ValueError, KeyError) as exc:
        if isinstance(exc, WorkloadError):
            raise
        raise WorkloadError(f"{mt} config has a bad value: {exc}") from None
    if prec.mixed:
        model = model.with_dtype(prec.name)
    model.source = f"Hugging Face config.json (model_type {mt})"
    return model


def _build(cfg: Mapping[str, Any], mt: str, name: str, dtype: str, tokens: int) -> Model:
    if mt in ("llama", "gpt2", "gpt_neo"):
        return decoder_lm(lm_config(cfg, name), dtype, tokens)
    if mt == "bert":
        return bert(name, dtype, tokens, vocab=_get(cfg, "vocab_size"),
                    hidden=_get(cfg, "hidden_size"), layers=_get(cfg, "num_hidden_layers"),
                    heads=_get(cfg, "num_attention_heads"), ffn=_get(cfg, "intermediate_size"),
                    max_positions=_get(cfg, "max_position_embeddings", default=512),
                    type_vocab=_get(cfg, "type_vocab_size", default=2)).build(family="transformer")
    archs = " ".join(cfg.get("architectures") or [])
    classes = (len(cfg.get("id2label") or {}) or 1000) if "ForImageClassification" in archs else 0
    return vit(name, dtype, _get(cfg, "image_size", default=224),
               patch=_get(cfg, "patch_size", default=16), hidden=_get(cfg, "hidden_size"),
               layers=_get(cfg, "num_hidden_layers"), heads=_get(cfg, "num_attention_heads"),
               ffn=_get(cfg, "intermediate_size"), classes=classes,
               channels=_get(cfg, "num_channels", default=3)).build(family="vision-transformer")
