"""Load a model from a file by its kind: an ONNX file, or a Hugging Face config.json (or the
folder holding one); the one entry point the CLI and sweep specs share."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from workloads.model import Model, WorkloadError


def is_model_file(ref: str | Path) -> bool:
    """Whether `ref` names a model file (by suffix) rather than a zoo model."""
    p = Path(ref)
    return p.suffix in (".onnx", ".json") or (p.is_dir() and (p / "config.json").is_file())


def load_model_file(path: str | Path, dtype: str | None = None, *,
                    dims: Mapping[str, int] | None = None,
                    branches: Mapping[str, str] | None = None,
                    allow_unsupported: bool = False, tokens: int | None = None) -> Model:
    """The Model in FILE.onnx (weights as stored, or in `dtype`) or a config.json (in `dtype`,
    default fp16). `dims` / `branches` / `allow_unsupported` are for ONNX, `tokens` for configs."""
    path = Path(path)
    if path.suffix == ".onnx":
        from workloads.onnx_import import load_onnx

        if tokens is not None:
            raise WorkloadError(f"{path.name}: tokens apply to config.json files; give an ONNX "
                                "file's sequence length as a dim (--dim NAME=VALUE)")
        model = load_onnx(path, dims=dims, branches=branches,
                          allow_unsupported=allow_unsupported)
        return model.with_dtype(dtype) if dtype else model
    if path.suffix == ".json" or path.is_dir():
        if dims or branches:
            raise WorkloadError(f"{path.name}: dims and branches apply to ONNX files; a "
                                "config.json takes tokens")
        from workloads.hf_config import load_hf_config

        return load_hf_config(path, dtype or "fp16", tokens=tokens or 128)
    raise WorkloadError(f"cannot import {path}: expected a .onnx file or a config.json "
                        "(or a folder holding one)")
