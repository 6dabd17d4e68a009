"""Build a Model from a Hugging Face style `config.json` (model_type llama, gpt2, gpt_neo, bert,
vit), using the zoo's layer-by-layer builders, so an imported config and the matching zoo model
have the same ops and parameter count.

What is built: decoder LMs with their LM head (tied or not, from `tie_word_embeddings`); BERT as
the base model with pooler; ViT with a classifier when the config names a
*ForImageClassification architecture (len(id2label) classes), else without one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workloads.model import Model, WorkloadError, check_dtype
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


# whole-number fields (any spelling a supported model_type uses), each at least 1
COUNT_FIELDS = ("vocab_size", "hidden_size", "n_embd", "num_hidden_layers", "n_layer",
                "num_layers", "num_attention_heads", "n_head", "num_heads",
                "num_key_value_heads", "head_dim", "intermediate_size", "n_inner",
                "max_position_embeddings", "n_positions", "n_ctx", "window_size",
                "type_vocab_size", "image_size", "patch_size", "num_channels")
LAYER_FIELDS = ("num_hidden_layers", "n_layer", "num_layers")
MAX_LAYERS = 10_000  # far above any published model; more is a typo, and would take hours


def check_config(cfg: Mapping[str, Any]) -> None:
    """Refuse values no model can have, naming the field: non-finite numbers, counts that are
    not whole numbers >= 1, heads that do not divide the hidden size."""
    bad = _non_finite(cfg)
    if bad:
        raise WorkloadError(f"config field {bad} is not a finite number")
    for key in COUNT_FIELDS:
        v = cfg.get(key)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise WorkloadError(f"config field {key!r} must be a whole number >= 1, found {v!r}")
    for key in LAYER_FIELDS:
        if (cfg.get(key) or 0) > MAX_LAYERS:
            raise WorkloadError(f"config field {key!r} = {cfg[key]} is more layers than weightstream "
                                f"builds (at most {MAX_LAYERS})")
    hidden = cfg.get("hidden_size") or cfg.get("n_embd")
    heads = cfg.get("num_attention_heads") or cfg.get("n_head") or cfg.get("num_heads")
    if hidden and heads and not cfg.get("head_dim") and hidden % heads:
        raise WorkloadError(f"config: hidden size {hidden} is not a multiple of the "
                            f"{heads} attention heads")
    kv = cfg.get("num_key_value_heads")
    if kv and heads and (kv > heads or heads % kv):
        raise WorkloadError(f"config: num_key_value_heads {kv} must divide "
                            f"num_attention_heads {heads}")
    image, patch = cfg.get("image_size"), cfg.get("patch_size")
    if image and patch and patch > image:
        raise WorkloadError(f"config: patch_size {patch} is larger than image_size {image}")
    kinds = cfg.get("attention_layers")
    if kinds is not None and (not isinstance(kinds, list)
                              or any(k not in ("global", "local") for k in kinds)):
        raise WorkloadError(f"config field 'attention_layers' must be a list of 'global' / "
                            f"'local', found {kinds!r}")


def _non_finite(obj: Any, where: str = "") -> str | None:
    """Path of the first NaN or infinite number in `obj`, or None."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return repr(where or "value")
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            found = _non_finite(v, f"{where}.{k}" if where else str(k))
            if found:
                return found
    if isinstance(obj, list):
        for i, v in enumerate(obj):
            found = _non_finite(v, f"{where}[{i}]")
            if found:
                return found
    return None


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
    check_dtype(dtype)
    cfg = read_config(path_or_dict)
    mt = cfg.get("model_type")
    if not isinstance(mt, str) or mt not in SUPPORTED:
        raise WorkloadError(f"unsupported model_type {mt!r}; supported: {', '.join(SUPPORTED)}")
    check_config(cfg)
    if name is None:
        folder = "" if isinstance(path_or_dict, Mapping) else Path(path_or_dict)
        if folder and not folder.is_dir():
            folder = folder.parent
        src = cfg.get("_name_or_path") or (folder.name if folder else "")
        name = str(src).rstrip("/").split("/")[-1] or mt
    try:
        model = _build(cfg, mt, name, dtype, tokens)
    except (TypeError, ValueError, KeyError) as exc:
        if isinstance(exc, WorkloadError):
            raise
        raise WorkloadError(f"{mt} config has a bad value: {exc}") from None
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
