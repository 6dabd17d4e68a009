"""Turn spec references into simulator inputs: workload refs -> Workload, profile refs ->
HardwareProfile. The zoo and scenario modules are imported lazily (they may be absent)."""

from __future__ import annotations

import importlib
import inspect
from dataclasses import replace
from typing import Any

from experiments.errors import ExperimentError
from experiments.spec import ProfileRef, WorkloadRef
from hwprofiles import HardwareProfile, load_profile
from hwprofiles.loader import load_runtime
from hwprofiles.runtime import RuntimeProfile
from workloads import Model, Workload, single


def known_names(kind: str) -> list[str] | None:
    """Valid zoo model or scenario names, or None when that module is not available."""
    try:
        if kind == "model":
            from workloads.zoo import list_models

            return list(list_models())
        from workloads.scenarios import list_workloads

        return list(list_workloads())
    except ImportError:
        return None


def with_dtype(workload: Workload, dtype: str) -> Workload:
    """`workload` with every model's weights in `dtype` (shared tensors stay shared)."""
    models: dict[str, Model] = {}
    invs = []
    for inv in workload.invocations:
        m = models.setdefault(inv.model.name, inv.model.with_dtype(dtype))
        invs.append(replace(inv, model=m))
    return Workload(workload.name, tuple(invs), workload.description)


def _factory(ref: WorkloadRef, dtype: str) -> Workload:
    module, attr = ref.name.split(":", 1)
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ExperimentError(f"cannot import workload factory {ref.name!r}: {exc}") from None
    args: dict[str, Any] = dict(ref.args)
    if "dtype" in inspect.signature(fn).parameters:
        args["dtype"] = dtype
        out = fn(**args)
    else:
        out = fn(**args)
        out = out.with_dtype(dtype) if isinstance(out, Model) else with_dtype(out, dtype)
    if isinstance(out, Model):
        out = single(out)
    if not isinstance(out, Workload):
        raise ExperimentError(f"workload factory {ref.name!r} returned {type(out).__name__}, "
                              "not a Model or Workload")
    return out


def load_workload(ref: WorkloadRef, dtype: str) -> Workload:
    """The Workload a spec entry names, in `dtype`."""
    if ref.kind == "factory":
        return _factory(ref, dtype)
    if ref.kind == "file":
        from workloads.model_file import load_model_file

        args = {k: v for k, v in ref.args if k != "digest"}
        return single(load_model_file(ref.name, dtype, **args))
    if ref.kind == "model":
        try:
            from workloads.zoo import ZOO, get_model
        except ImportError:
            get_model, ZOO = None, {}
        if get_model is not None and ref.name in ZOO:
            return single(get_model(ref.name, dtype))
    try:
        from workloads.scenarios import resolve_workload
    except ImportError:
        raise ExperimentError(f"cannot resolve {ref.kind} {ref.name!r}: the model zoo / scenario "
                              "modules (workloads.zoo, workloads.scenarios) are not available") from None
    return resolve_workload(ref.name, dtype)


def load_profile_ref(ref: ProfileRef) -> HardwareProfile:
    """The HardwareProfile a spec entry names, with its overrides applied."""
    return load_profile(ref.name, ref.overrides)


def load_runtime_ref(ref: ProfileRef) -> RuntimeProfile:
    """The RuntimeProfile a spec entry names, with its overrides applied."""
    return load_runtime(ref.name, ref.overrides)
