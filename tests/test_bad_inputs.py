"""The bad-input matrix: every command fed every kind of bad input a demanding user tries.

Each case runs the real CLI in-process (click's CliRunner) in an empty folder holding only the
case's input files, and asserts: a non-zero exit code (the documented one where there is one),
an `error:` line (or, for `profiles check`, the problem list) naming the problem, no traceback,
no exception escaping, and nothing left behind: the folder holds exactly the input files,
unchanged. Real processes (signals, kills, concurrent writers, Dask) are in test_reliability.py.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from experiments.cli import main
from hwprofiles.loader import builtin_dir

DATA = Path(__file__).parent / "data"
TOY_TEXT = (DATA / "toy.yaml").read_text()
TOY = yaml.safe_load(TOY_TEXT)

# a valid schedule: two linear layers of 1000 fp16 weights each, loaded, computed, freed
SCHEDULE = {
    "format": "weightstream-schedule", "version": 1, "policy": "sequential", "workload": "m",
    "profile": "toy", "budget_bytes": None, "tensor_bytes": {"m/w0": 2000, "m/w1": 2000},
    "invocations": [{"label": "m", "model": "m"}], "meta": {"depth": 1},
    "steps": [
        {"step": "load", "id": 0, "tensors": ["m/w0"], "bytes": 2000, "path": "via_buffer",
         "dst": "texture", "after": [], "src": "flash"},
        {"step": "compute", "id": 1, "op": "l0", "invocation": 0, "kind": "linear",
         "dtype": "fp16", "flops": 1000000, "weights": ["m/w0"], "input_bytes": 2000,
         "output_bytes": 2000, "workspace_bytes": 0, "state_bytes": 0, "inputs": [],
         "after": [0]},
        {"step": "free", "id": 2, "tensors": ["m/w0"], "after": [1]},
        {"step": "load", "id": 3, "tensors": ["m/w1"], "bytes": 2000, "path": "via_buffer",
         "dst": "texture", "after": [2, 1], "src": "flash"},
        {"step": "compute", "id": 4, "op": "l1", "invocation": 0, "kind": "linear",
         "dtype": "fp16", "flops": 1000000, "weights": ["m/w1"], "input_bytes": 2000,
         "output_bytes": 2000, "workspace_bytes": 0, "state_bytes": 0, "inputs": [1],
         "after": [3]},
        {"step": "free", "id": 5, "tensors": ["m/w1"], "after": [4]},
    ],
}
CHAIN = {"factory": "helpers:linear_chain", "name": "chain",
         "args": {"n": 3, "weight_elems": 5_000_000, "flops": 10**9}}
SPEC = {"name": "t", "models": [CHAIN], "profiles": ["toy.yaml"],
        "policies": ["sequential", {"name": "pipeline", "options": {"depth": 2}}],
        "budgets": ["64MiB", "unlimited"], "dtypes": ["fp16"]}
LLAMA = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128,
         "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2,
         "vocab_size": 100}
GPT2 = {"model_type": "gpt2", "n_embd": 64, "n_head": 4, "n_layer": 2, "vocab_size": 100}
BERT = {"model_type": "bert", "hidden_size": 64, "intermediate_size": 128,
        "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 100}
VIT = {"model_type": "vit", "hidden_size": 64, "intermediate_size": 128, "image_size": 32,
       "patch_size": 16, "num_attention_heads": 4, "num_hidden_layers": 2}
NEO = {"model_type": "gpt_neo", "hidden_size": 64, "num_layers": 2, "num_heads": 4,
       "vocab_size": 100, "attention_layers": ["global", "local"]}

Files = dict[str, "str | bytes | Callable[[], str | bytes]"]


@dataclass(frozen=True)
class Case:
    """One bad input: CLI args, the files it needs, what the error must say, the exit code."""

    id: str
    args: tuple[str, ...]
    expect: str  # regex (case-insensitive) the error output must match
    files: Files = field(default_factory=dict)
    code: int | None = 2  # None: any non-zero code
    marker: str = r"(?m)^(error|Error): "  # the line that reports the problem


CASES: list[Case] = []


def case(area: str, name: str, args: list[str], expect: str, files: Files | None = None,
         code: int | None = 2, marker: str | None = None) -> None:
    kw = {"marker": marker} if marker else {}
    CASES.append(Case(f"{area}:{name}", tuple(args), expect, files or {}, code, **kw))


def dump(obj: object) -> str:
    return yaml.safe_dump(obj, sort_keys=False)


def prof(**changes: object) -> str:
    """The toy profile (named 'good') with dotted-path changes; None deletes a field."""
    data = yaml.safe_load(TOY_TEXT)
    data["name"] = "good"
    for path, value in changes.items():
        node = data
        parts = path.split("__")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        if value is None:
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = value
    return dump(data)


def sched(mutate: Callable[[dict], object]) -> str:
    data = json.loads(json.dumps(SCHEDULE))
    mutate(data)
    return json.dumps(data)


def step(i: int, **kv: object) -> Callable[[dict], None]:
    def f(d: dict) -> None:
        for k, v in kv.items():
            if v is ...:
                d["steps"][i].pop(k)
            else:
                d["steps"][i][k] = v
    return f


def top(**kv: object) -> Callable[[dict], None]:
    def f(d: dict) -> None:
        for k, v in kv.items():
            if v is ...:
                d.pop(k)
            else:
                d[k] = v
    return f


def spec(**over: object) -> str:
    data = {**SPEC, **over}
    return dump({k: v for k, v in data.items() if v is not ...})


def good_files() -> Files:
    return {"toy.yaml": prof(), "s.json": json.dumps(SCHEDULE)}


RUN = ["run", "--model", "mobilenetv2", "--profile", "snapdragon-8-gen-3"]
TOYRUN = ["run", "--schedule", "s.json", "--profile", "toy.yaml"]
CAP = ["capacity", "--model", "mobilenetv2", "--profile", "snapdragon-8-gen-3",
       "--policy", "sequential"]

# --- names: unknown models, workloads, profiles, policies, dtypes, commands -------------------
for cmd, args in (("run", RUN[:1]), ("capacity", CAP[:1])):
    pol = ["--policy", "sequential"] + (["--latency-target", "1s"] if cmd == "capacity" else [])
    case("names", f"{cmd}-model", [*args, "--model", "resnet-5", "--profile",
                                   "snapdragon-8-gen-3", *pol], r"resnet-5.*resnet50")
    case("names", f"{cmd}-workload", [*args, "--workload", "camera-ap", "--profile",
                                      "snapdragon-8-gen-3", *pol], r"camera-ap.*camera-app")
    case("names", f"{cmd}-profile", [*args, "--model", "mobilenetv2", "--profile", "pixel-99",
                                     *pol], r"pixel-99.*valid profiles")
    case("names", f"{cmd}-profile-path", [*args, "--model", "mobilenetv2", "--profile",
                                          "../snapdragon-8-gen-3", *pol], r"unknown profile")
    case("names", f"{cmd}-profile-missing-file", [*args, "--model", "mobilenetv2", "--profile",
                                                  "nope.yaml", *pol], r"nope.yaml does not exist")
    case("names", f"{cmd}-profile-folder", [*args, "--model", "mobilenetv2", "--profile",
                                            "dir.yaml", *pol], r"dir.yaml is a folder",
         {"dir.yaml/x": "x"})
    case("names", f"{cmd}-profile-empty", [*args, "--model", "mobilenetv2", "--profile", "",
                                           *pol], r"profile")
    case("names", f"{cmd}-policy", [*args, "--model", "mobilenetv2", "--profile",
                                    "snapdragon-8-gen-3", "--policy", "warp",
                                    *pol[2:]], r"warp.*valid policies")
    case("names", f"{cmd}-dtype", [*args, "--model", "mobilenetv2", "--profile",
                                   "snapdragon-8-gen-3", *pol, "--dtype", "fp6"], r"fp6.*fp16")
    case("names", f"{cmd}-model-and-workload", [*args, "--model", "gpt2", "--workload",
                                                "camera-app", "--profile", "snapdragon-8-gen-3",
                                                *pol], r"exactly one of --model")
    case("names", f"{cmd}-no-model", [*args, "--profile", "snapdragon-8-gen-3", *pol],
         r"exactly one of --model")
    case("names", f"{cmd}-empty-model", [*args, "--model", "", "--profile",
                                         "snapdragon-8-gen-3", *pol], r"exactly one of --model")
case("names", "run-no-policy", RUN, r"--policy")
case("names", "capacity-no-target", CAP, r"--latency-target")
case("names", "workload-repeat-0", ["run", "--workload", "gpt2-x0", "--profile",
                                    "snapdragon-8-gen-3", "--policy", "sequential"],
     r"at least 1")
case("names", "workload-prompt-0", ["run", "--workload", "gpt2-p0-d4", "--profile",
                                    "snapdragon-8-gen-3", "--policy", "sequential"],
     r"prompt >= 1")
case("names", "workload-pattern-neg", ["run", "--workload", "gpt2-p-1-d3", "--profile",
                                       "snapdragon-8-gen-3", "--policy", "sequential"],
     r"unknown model or workload 'gpt2-p-1-d3'")
case("names", "workload-llm-pattern-on-cnn", ["run", "--workload", "resnet50-p8-d8",
                                              "--profile", "snapdragon-8-gen-3", "--policy",
                                              "sequential"], r"resnet50-p8-d8")
case("names", "models-show", ["models", "show", "resnet-5"], r"resnet-5.*resnet50")
case("names", "models-show-dtype", ["models", "show", "gpt2", "--dtype", "fp6"], r"fp6")
case("names", "models-list-dtype", ["models", "list", "--dtype", "int3"], r"int3")
case("names", "models-unknown-cmd", ["models", "frobnicate"], r"frobnicate")
case("names", "profiles-show", ["profiles", "show", "pixel-99"], r"pixel-99.*valid profiles")
case("names", "profiles-show-missing-file", ["profiles", "show", "x.yaml"], r"x.yaml")
case("names", "unknown-command", ["swep"], r"swep")
case("names", "unknown-option", ["run", "--modle", "gpt2"], r"--modle")
case("names", "plot-kind", ["plot", "r", "--kind", "pie"], r"pie.*tradeoff", {"r/x": "x"})
case("names", "sweep-builtin", ["sweep", "defualt", "--out", "o"], r"defualt.*default")

# --- profiles: malformed files through check (problem list, exit 1), show and run (exit 2) ----
PROFILE_DEFECTS: dict[str, tuple[object, str]] = {
    "contention-inf": (prof(storage__compute_contention={"value": float("inf"), "estimate": "x"}),
                       r"compute_contention.*finite"),
    "contention-nan": (prof(storage__compute_contention={"value": float("nan"), "estimate": "x"}),
                       r"compute_contention.*finite"),
    "efficiency-nan": (prof(gpu__compute_efficiency={"value": float("nan"), "estimate": "x"}),
                       r"compute_efficiency"),
    "efficiency-inf": (prof(gpu__compute_efficiency={"value": float("inf"), "estimate": "x"}),
                       r"compute_efficiency"),
    "iops-inf": (prof(storage__max_iops={"value": float("inf"), "estimate": "x"}),
                 r"max_iops.*finite"),
    "iops-neg-inf": (prof(storage__max_iops={"value": float("-inf"), "estimate": "x"}),
                     r"max_iops"),
    "capacity-inf": (prof(dram__capacity={"value": float("inf"), "estimate": "x"}),
                     r"dram.capacity.*finite"),
    "capacity-huge": (prof(dram__capacity={"value": "1e30 GB", "estimate": "x"}),
                      r"dram.capacity.*too large"),
    "bandwidth-1e400": (prof(storage__read_bandwidth={"value": "1e400 GB/s", "estimate": "x"}),
                        r"read_bandwidth.*finite"),
    "bandwidth-bare": (prof(storage__read_bandwidth={"value": 5, "estimate": "x"}),
                       r"read_bandwidth.*unit"),
    "bandwidth-negative": (prof(dram__bandwidth={"value": "-68 GB/s", "estimate": "x"}),
                           r"dram.bandwidth.*positive"),
    "bandwidth-zero": (prof(dram__bandwidth={"value": "0 GB/s", "estimate": "x"}),
                       r"dram.bandwidth.*positive"),
    "bandwidth-wrong-unit": (prof(storage__read_bandwidth={"value": "2100 MB", "estimate": "x"}),
                             r"read_bandwidth"),
    "time-negative": (prof(gpu__kernel_launch_overhead={"value": "-5 us", "estimate": "x"}),
                      r"kernel_launch_overhead.*non-negative"),
    "time-text": (prof(gpu__kernel_launch_overhead={"value": "soon", "estimate": "x"}),
                  r"kernel_launch_overhead"),
    "rate-nan": (prof(gpu__peak_flops__fp16={"value": "nan TFLOPS", "estimate": "x"}),
                 r"peak_flops.fp16"),
    "count-zero": (prof(storage__queue_depth={"value": 0, "estimate": "x"}),
                   r"queue_depth.*positive"),
    "count-float": (prof(storage__queue_depth={"value": 2.5, "estimate": "x"}),
                    r"queue_depth.*whole"),
    "count-bool": (prof(storage__queue_depth={"value": True, "estimate": "x"}),
                   r"queue_depth.*whole"),
    "count-inf": (prof(gpu__image2d_max_width={"value": float("inf"), "estimate": "x"}),
                  r"image2d_max_width"),
    "fraction-big": (prof(gpu__compute_efficiency={"value": 1.5, "estimate": "x"}),
                     r"compute_efficiency.*fraction"),
    "bool-text": (prof(gpu__prefers_texture={"value": "yes please", "estimate": "x"}),
                  r"prefers_texture.*true or false"),
    "value-null": (prof(dram__capacity={"value": None, "estimate": "x"}), r"dram.capacity"),
    "no-source": (prof(dram__capacity={"value": "8 GB"}), r"dram.capacity.*source"),
    "bare-leaf": (prof(dram__capacity="8 GB"), r"dram.capacity.*value"),
    "missing-field": (prof(gpu__max_alloc=None), r"gpu.max_alloc.*missing"),
    "unknown-key": (prof(transfer__warp_drive=True), r"warp_drive.*unknown key"),
    "unknown-section": (prof(battery={"x": 1}), r"battery.*unknown key"),
    "section-not-mapping": (prof(storage=5), r"storage.*mapping"),
    "app-over-capacity": (prof(dram__app_memory={"value": "16 GB", "estimate": "x"}),
                          r"app_memory.*at most"),
    "name-number": (prof(name=123), r"name.*text"),
    "name-shipped": (prof(name="snapdragon-8-gen-3"), r"name of its own"),
    "extends-shipped-no-name": (dump({"extends": "snapdragon-8-gen-3"}), r"name of its own"),
    "extends-unknown": (dump({"name": "c", "extends": "no-such-phone"}), r"no-such-phone"),
    "extends-list": (dump({"name": "c", "extends": ["a", "b"]}), r"extends"),
    "extends-self": (dump({"name": "c", "extends": "p.yaml"}), r"extends itself"),
    "not-utf8": (b"name: caf\xe9\nstorage: {}\n", r"not UTF-8"),
    "binary": (bytes(range(256)) * 4, r"UTF-8|YAML"),
    "empty": ("", r"mapping"),
    "list": ("- a\n- b\n", r"mapping"),
    "bad-yaml": ("name: [unclosed\n", r"not valid YAML"),
    "tabs": ("name: x\n\tstorage: 1\n", r"not valid YAML"),
    "duplicate-key": (TOY_TEXT.replace("name: toy\n", "name: good\nname: good2\n", 1),
                      r"twice"),
}
for name, (text, expect) in PROFILE_DEFECTS.items():
    files = {"p.yaml": text}
    case("profiles", f"check-{name}", ["profiles", "check", "p.yaml"], expect, files, code=1)
    case("profiles", f"show-{name}", ["profiles", "show", "p.yaml"], expect, files)
    case("profiles", f"run-{name}", ["run", "--model", "mobilenetv2", "--profile", "p.yaml",
                                      "--policy", "sequential"], expect, files)
case("profiles", "check-missing", ["profiles", "check", "nope.yaml"], r"nope.yaml", code=1)
case("profiles", "check-folder", ["profiles", "check", "d.yaml"], r"folder", {"d.yaml/x": ""},
     code=1)

# --- runtime profiles: runtimes check / show, run --runtime, --runtime-set, spec runtimes ------


def rt(**changes: object) -> str:
    """A small valid runtime profile (named 'my-rt') with dotted-path changes."""
    data = {"name": "my-rt", "description": "test runtime",
            "dispatch": {"per_kernel": {"value": "30 us", "estimate": "x"}},
            "efficiency": {"conv": {"value": 0.5, "estimate": "x"}}}
    for path, value in changes.items():
        node = data
        parts = path.split("__")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return dump(data)


RUNTIME_DEFECTS: dict[str, tuple[object, str]] = {
    "efficiency-inf": (rt(efficiency__conv={"value": float("inf"), "estimate": "x"}),
                       r"efficiency.conv.*positive"),
    "efficiency-nan": (rt(efficiency__conv={"value": float("nan"), "estimate": "x"}),
                       r"efficiency.conv"),
    "efficiency-zero": (rt(efficiency__conv={"value": 0, "estimate": "x"}),
                        r"efficiency.conv.*positive"),
    "dispatch-negative": (rt(dispatch__per_kernel={"value": "-3 us", "estimate": "x"}),
                          r"dispatch.per_kernel"),
    "holding-unknown": (rt(weights__holding={"value": "telepathy", "estimate": "x"}),
                        r"weights.holding.*one of"),
    "fusion-unknown": (rt(fusion__rules={"value": ["everything"], "estimate": "x"}),
                       r"fusion.rules"),
    "name-shipped": (rt(name="mnn"), r"name of its own"),
    "no-source": (rt(efficiency__conv={"value": 0.5}), r"efficiency.conv.*source"),
    "unknown-key": (rt(warp={"x": 1}), r"warp.*unknown key"),
    "duplicate-key": (rt() + "name: again\n", r"twice"),
    "not-utf8": (b"name: caf\xe9\n", r"not UTF-8"),
}
for name, (text, expect) in RUNTIME_DEFECTS.items():
    files = {"r.yaml": text}
    case("runtimes", f"check-{name}", ["runtimes", "check", "r.yaml"], expect, files, code=1)
    case("runtimes", f"run-{name}", [*RUN, "--policy", "sequential", "--runtime", "r.yaml"],
         expect, files)
case("runtimes", "show-unknown", ["runtimes", "show", "mmn"], r"mmn.*valid runtimes")
case("runtimes", "run-unknown", [*RUN, "--policy", "sequential", "--runtime", "mmn"],
     r"unknown runtime 'mmn'.*valid runtimes")
case("runtimes", "capacity-unknown", [*CAP, "--latency-target", "1s", "--runtime", "mmn"],
     r"unknown runtime 'mmn'")
for item, expect in (("efficiency.conv=.inf", r"efficiency.conv"),
                     ("efficiency.conv=.nan", r"efficiency.conv"),
                     ("weights.holding=telepathy", r"weights.holding"),
                     ("warp=1", r"unknown runtime field 'warp'"),
                     ("efficiency.conv", r"key=value")):
    case("runtimes", f"runtime-set-{item}", [*RUN, "--policy", "sequential", "--runtime", "mnn",
                                             "--runtime-set", item], expect)
case("runtimes", "spec-unknown", ["sweep", "s.yaml", "--out", "o", "--no-progress"],
     r"mmn", {"toy.yaml": prof(), "s.yaml": spec(runtimes=["mmn"])})

# --- overrides: --set on run, capacity, profiles show; `set:` in a spec -----------------------
SET_DEFECTS = {
    "no-equals": ("storage.read_bandwidth", r"key=value"),
    "unknown-field": ("storage.speed=1GB/s", r"unknown profile field 'storage.speed'"),
    "section": ("storage=5", r"unknown profile field 'storage'"),
    "bandwidth-nan": ("storage.read_bandwidth=.nan", r"read_bandwidth"),
    "bandwidth-inf": ("storage.read_bandwidth=.inf", r"read_bandwidth"),
    "bandwidth-neg": ("storage.read_bandwidth=-2GB/s", r"read_bandwidth.*positive"),
    "bandwidth-unit": ("storage.read_bandwidth=2 parsecs", r"parsecs"),
    "contention-inf": ("storage.compute_contention=.inf", r"compute_contention.*finite"),
    "contention-nan": ("storage.compute_contention=.nan", r"compute_contention.*finite"),
    "contention-below-1": ("storage.compute_contention=0.5", r"compute_contention.*at least 1"),
    "efficiency-nan": ("gpu.compute_efficiency=.nan", r"compute_efficiency"),
    "efficiency-zero": ("gpu.compute_efficiency=0", r"compute_efficiency"),
    "iops-inf": ("storage.max_iops=.inf", r"max_iops.*finite"),
    "iops-neg": ("storage.max_iops=-1", r"max_iops"),
    "capacity-inf": ("dram.capacity=.inf", r"dram.capacity.*finite"),
    "capacity-huge": ("dram.capacity=1e400", r"dram.capacity"),
    "capacity-1e30GB": ("dram.capacity=1e30GB", r"too large"),
    "queue-zero": ("storage.queue_depth=0", r"queue_depth"),
    "queue-float": ("storage.queue_depth=1.5", r"queue_depth"),
    "latency-neg": ("gpu.kernel_launch_overhead=-1us", r"kernel_launch_overhead"),
    "yaml-garbage": ("storage.read_bandwidth=[", r"read_bandwidth"),
    "bool-number": ("gpu.prefers_texture=2", r"prefers_texture"),
    "rate-bare": ("gpu.peak_flops.fp16=5", r"peak_flops.fp16"),
    "app-over-capacity": ("dram.app_memory=64GB", r"app_memory.*at most"),
}
for name, (item, expect) in SET_DEFECTS.items():
    case("overrides", f"run-{name}", [*RUN, "--policy", "sequential", "--set", item], expect)
    case("overrides", f"show-{name}", ["profiles", "show", "snapdragon-8-gen-3", "--set", item],
         expect)
for name in ("contention-inf", "bandwidth-nan", "unknown-field", "capacity-inf"):
    item, expect = SET_DEFECTS[name]
    case("overrides", f"capacity-{name}", [*CAP, "--latency-target", "1s", "--set", item],
         expect)
    k, v = item.split("=", 1)
    case("overrides", f"spec-{name}", ["sweep", "s.yaml", "--out", "o", "--no-progress"],
         expect.split(".*")[0], {"toy.yaml": prof(),
                  "s.yaml": spec(profiles=[{"name": "toy.yaml", "set": {k: yaml.safe_load(v)}}])})

# --- budgets and times --------------------------------------------------------------------------
for value, expect in (("0", r"positive"), ("-1MiB", r"positive"), ("lots", r"lots"),
                      ("inf", r"inf"), ("nan", r"nan"), ("1e400 GiB", r"finite"),
                      ("1e30 GB", r"too large"), ("12 parsecs", r"parsecs.*valid units"),
                      ("", r"size"), ("5 MiB/s", r"MiB/s")):
    case("budgets", f"run-{value or 'empty'}", [*RUN, "--policy", "sequential", "--budget",
                                                value], expect)
case("budgets", "run-infeasible", [*RUN, "--policy", "sequential", "--budget", "1MiB"],
     r"smallest feasible working set.*at least", code=3)
case("budgets", "run-infeasible-preload", [*RUN, "--policy", "preload", "--budget", "2MiB"],
     r"at least", code=3)
for value, expect in (("0", r"positive"), ("-5ms", r"positive"), ("fast", r"fast"),
                      ("inf", r"inf"), ("nan ms", r"nan"), ("1e400 s", r"finite"),
                      ("5 MiB", r"MiB")):
    case("capacity", f"target-{value}", [*CAP, "--latency-target", value], expect)
for value in ("0", "1", "-0.5", "nan", "inf", "lots"):
    case("capacity", f"tolerance-{value}", [*CAP, "--latency-target", "1s", "--tolerance", value],
         r"tolerance")
case("capacity", "unreachable", [*CAP, "--latency-target", "1us"],
     r"no policy meets the latency target", code=1)
for name, budgets, expect in (
        ("zero", ["0"], r"positive"), ("negative", ["-3MiB"], r"positive"),
        ("inf", [float("inf")], r"finite"), ("nan", [float("nan")], r"finite"),
        ("text", ["lots"], r"lots"), ("huge", ["1e30 GB"], r"too large"),
        ("empty", [], r"'budgets' is empty"), ("auto-0", {"auto": 0}, r"auto: N"),
        ("auto-inf", {"auto": float("inf")}, r"auto: N"), ("auto-float", {"auto": 2.5},
                                                            r"auto: N"),
        ("auto-bool", {"auto": True}, r"auto: N"), ("auto-key", {"autos": 3}, r"autos"),
        ("nested", [["64MiB"]], r"budget"), ("mapping-entry", [{"a": 1}], r"budget")):
    case("budgets", f"spec-{name}", ["sweep", "s.yaml", "--out", "o", "--no-progress"], expect,
         {"toy.yaml": prof(), "s.yaml": spec(budgets=budgets)})

# --- policy options and conflicting CLI options -------------------------------------------------
for item, expect in (("depth", r"key=value"), ("=3", r"key=value"), ("depth=0", r"depth"),
                     ("depth=-1", r"depth"), ("depth=.nan", r"finite"), ("depth=.inf", r"finite"),
                     ("depth=[", r"depth"), ("depth=abc", r"depth"), ("warp=1", r"warp"),
                     ("depth=1.5", r"depth")):
    case("options", f"pipeline-{item}", [*RUN, "--policy", "pipeline", "--option", item], expect)
case("options", "flashmem-solver", [*RUN, "--policy", "flashmem", "--option", "solver=magic"],
     r"magic")
case("options", "sequential-depth", [*RUN, "--policy", "sequential", "--option", "depth=2"],
     r"depth")
case("capacity", "option-unknown", [*CAP, "--latency-target", "1s", "--option", "warp=1"],
     r"warp")
case("capacity", "option-no-equals", [*CAP, "--latency-target", "1s", "--option", "warp"],
     r"key=value")
case("capacity", "empty-policy", ["capacity", "--model", "mobilenetv2", "--profile",
                                          "snapdragon-8-gen-3", "--policy", ",,",
                                          "--latency-target", "1s"], r"--policy is empty")
for name, opts, expect in (("nan", {"depth": float("nan")}, r"finite"),
                           ("inf", {"depth": float("inf")}, r"finite"),
                           ("unknown", {"warp": 1}, r"warp"),
                           ("not-mapping", 5, r"mapping")):
    case("options", f"spec-{name}", ["sweep", "s.yaml", "--out", "o", "--no-progress"], expect,
         {"toy.yaml": prof(), "s.yaml": spec(policies=[{"name": "pipeline", "options": opts}])})
case("options", "schedule-with-model", [*TOYRUN, "--model", "gpt2"],
     r"--model cannot be used with --schedule", good_files())
case("options", "schedule-with-workload", [*TOYRUN, "--workload", "camera-app"],
     r"--workload cannot be used with --schedule", good_files())
case("options", "schedule-with-option", [*TOYRUN, "--option", "depth=2"],
     r"--option cannot be used with --schedule", good_files())
case("options", "schedule-with-dtype", [*TOYRUN, "--dtype", "int8"],
     r"--dtype cannot be used with --schedule", good_files())
case("options", "schedule-other-policy", [*TOYRUN, "--policy", "flashmem"],
     r"--policy flashmem conflicts with the schedule", good_files())
case("options", "workers-and-scheduler", ["sweep", "s.yaml", "--out", "o", "--workers", "2",
                                          "--scheduler", "tcp://127.0.0.1:1"],
     r"--workers and --scheduler", {"toy.yaml": prof(), "s.yaml": spec()})
for w in ("0", "-1"):
    case("options", f"workers-{w}", ["sweep", "s.yaml", "--out", "o", "--workers", w],
         r"--workers must be at least 1", {"toy.yaml": prof(), "s.yaml": spec()})
case("options", "workers-text", ["sweep", "s.yaml", "--workers", "many"], r"many")
case("options", "dask-timeout-without-scheduler", ["sweep", "s.yaml", "--out", "o",
                                                   "--dask-timeout", "5"],
     r"--dask-timeout applies only with --scheduler", {"toy.yaml": prof(), "s.yaml": spec()})
case("options", "timings-alone", [*RUN, "--policy", "sequential", "--timings"],
     r"--timings adds to --json or --save-schedule")
case("options", "top-not-int", ["models", "show", "gpt2", "--top", "x"], r"--top")

# --- ONNX files ---------------------------------------------------------------------------------


def onnx_bytes(nodes: list, inits: list, inputs: list | None = None) -> Callable[[], bytes]:
    """A real .onnx file built with onnx.helper (made when the case runs)."""
    def make() -> bytes:
        from onnx import TensorProto, helper, numpy_helper

        ins = inputs if inputs is not None else [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])]
        graph = helper.make_graph(
            nodes, "g", ins, [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
            [numpy_helper.from_array(a, n) for n, a in inits])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        return model.SerializeToString()
    return make


def _node(*a: object, **k: object):
    from onnx import helper

    return helper.make_node(*a, **k)


ONNX_DEFECTS = {
    "missing": (None, r"not found"),
    "empty": (b"", r"empty"),
    "garbage": (bytes(range(256)) * 8, r"not a readable ONNX|not a valid ONNX|no ONNX graph"),
    "text": (b"hello, I am not a model\n", r"ONNX"),
    "json": (b'{"model": 1}', r"ONNX"),
    "truncated": (lambda: onnx_bytes([_node("MatMul", ["x", "w"], ["y"])],
                                     [("w", np.ones((4, 4), np.float32))])()[:40],
                  r"ONNX"),
    "unsupported-op": (onnx_bytes([_node("FancyOp", ["x"], ["y"], domain="")], []),
                       r"FancyOp"),
    "no-nodes": (onnx_bytes([], [("w", np.ones((4, 4), np.float32))]), r"no ONNX graph|no compute"),
}
for name, (content, expect) in ONNX_DEFECTS.items():
    files = {} if content is None else {"m.onnx": content}
    case("onnx", name, ["models", "import", "m.onnx"], expect, files)
case("onnx", "folder", ["models", "import", "d.onnx"], r"d.onnx", {"d.onnx/x": "x"})
case("onnx", "wrong-extension", ["models", "import", "m.txt"], r"expected a .onnx file",
     {"m.txt": "x"})
case("onnx", "dtype", ["models", "import", "m.onnx", "--dtype", "fp6"], r"fp6",
     {"m.onnx": b"x"})

# --- Hugging Face config.json -------------------------------------------------------------------
HF_DEFECTS: dict[str, tuple[object, str]] = {
    "heads-0": ({**LLAMA, "num_attention_heads": 0}, r"num_attention_heads.*>= 1"),
    "heads-neg": ({**LLAMA, "num_attention_heads": -4}, r"num_attention_heads.*>= 1"),
    "layers-0": ({**LLAMA, "num_hidden_layers": 0}, r"num_hidden_layers.*>= 1"),
    "layers-neg": ({**LLAMA, "num_hidden_layers": -2}, r"num_hidden_layers.*>= 1"),
    "layers-float": ({**LLAMA, "num_hidden_layers": 2.5}, r"num_hidden_layers.*whole"),
    "layers-text": ({**LLAMA, "num_hidden_layers": "2"}, r"num_hidden_layers.*whole"),
    "layers-bool": ({**LLAMA, "num_hidden_layers": True}, r"num_hidden_layers.*whole"),
    "layers-huge": ({**LLAMA, "num_hidden_layers": 10**9}, r"more than weightstream builds"),
    "hidden-0": ({**LLAMA, "hidden_size": 0}, r"hidden_size"),
    "vocab-0": ({**LLAMA, "vocab_size": 0}, r"vocab_size"),
    "ffn-0": ({**LLAMA, "intermediate_size": 0}, r"intermediate_size"),
    "kv-0": ({**LLAMA, "num_key_value_heads": 0}, r"num_key_value_heads"),
    "kv-more-than-heads": ({**LLAMA, "num_key_value_heads": 8}, r"key.value heads"),
    "kv-not-dividing": ({**LLAMA, "num_key_value_heads": 3}, r"key.value heads"),
    "experts-huge": ({**LLAMA, "model_type": "mixtral", "num_local_experts": 10**8,
                      "num_experts_per_tok": 2}, r"more than weightstream builds"),
    "heads-not-dividing": ({**LLAMA, "num_attention_heads": 3}, r"not a multiple"),
    "head-dim-0": ({**LLAMA, "head_dim": 0}, r"head_dim"),
    "missing-hidden": ({k: v for k, v in LLAMA.items() if k != "hidden_size"}, r"hidden_size"),
    "gpt2-heads-0": ({**GPT2, "n_head": 0}, r"n_head"),
    "gpt2-layers-neg": ({**GPT2, "n_layer": -1}, r"n_layer"),
    "gpt2-positions-0": ({**GPT2, "n_positions": 0}, r"n_positions"),
    "bert-heads-0": ({**BERT, "num_attention_heads": 0}, r"num_attention_heads"),
    "bert-type-vocab-0": ({**BERT, "type_vocab_size": 0}, r"type_vocab_size"),
    "vit-patch-0": ({**VIT, "patch_size": 0}, r"patch_size"),
    "vit-patch-bigger": ({**VIT, "patch_size": 64}, r"patch_size"),
    "vit-channels-0": ({**VIT, "num_channels": 0}, r"num_channels"),
    "neo-kinds": ({**NEO, "attention_layers": ["global", "sideways"]}, r"attention_layers"),
    "neo-kinds-count": ({**NEO, "attention_layers": ["global"]}, r"attention_layers"),
    "neo-window-0": ({**NEO, "window_size": 0}, r"window_size"),
    "no-model-type": ({k: v for k, v in LLAMA.items() if k != "model_type"}, r"model_type"),
    "unknown-model-type": ({**LLAMA, "model_type": "mamba"}, r"mamba.*supported"),
    "model-type-list": ({**LLAMA, "model_type": ["llama"]}, r"model_type"),
    "nan": ('{"model_type": "llama", "hidden_size": NaN}', r"NaN"),
    "infinity": ('{"model_type": "llama", "hidden_size": Infinity}', r"Infinity"),
    "nan-epsilon": (json.dumps(LLAMA)[:-1] + ', "rms_norm_eps": NaN}', r"NaN"),
    "list": ("[1, 2]", r"JSON object"),
    "string": ('"llama"', r"JSON object"),
    "empty": ("", r"not valid JSON"),
    "truncated": (json.dumps(LLAMA)[:30], r"not valid JSON"),
    "not-utf8": (b'{"model_type": "ll\xe9ma"}', r"not valid JSON|UTF-8"),
}
for name, (cfg, expect) in HF_DEFECTS.items():
    text = cfg if isinstance(cfg, str | bytes) else json.dumps(cfg)
    case("hf", name, ["models", "import", "m/config.json"], expect, {"m/config.json": text})
case("hf", "folder-without-config", ["models", "import", "m"], r"not found", {"m/x.txt": "x"})
case("hf", "config-is-folder", ["models", "import", "config.json"], r"config.json",
     {"config.json/x": "x"})
case("hf", "missing-file", ["models", "import", "nope/config.json"], r"not found")

# --- saved schedules (run --schedule, validate replay) ------------------------------------------
SCHEDULE_DEFECTS: dict[str, tuple[object, str]] = {
    "flops-text": (sched(step(1, flops="lots")), r"steps\[1\]\.flops.*whole number.*'lots'"),
    "flops-neg": (sched(step(1, flops=-1)), r"steps\[1\]\.flops"),
    "flops-float": (sched(step(1, flops=1.5)), r"steps\[1\]\.flops"),
    "flops-nan": (json.dumps(SCHEDULE).replace('"flops": 1000000', '"flops": NaN', 1),
                  r"NaN"),
    "flops-inf": (json.dumps(SCHEDULE).replace('"flops": 1000000', '"flops": Infinity', 1),
                  r"Infinity"),
    "bytes-text": (sched(step(0, bytes="x")), r"steps\[0\]\.bytes"),
    "bytes-neg": (sched(step(0, bytes=-1)), r"steps\[0\]\.bytes"),
    "bytes-mismatch": (sched(step(0, bytes=5)), r"bytes 5 differ"),
    "bytes-missing": (sched(step(0, bytes=...)), r"missing the field 'bytes'"),
    "op-missing": (sched(step(1, op=...)), r"missing the field 'op'"),
    "typo-field": (sched(step(1, flop=5)), r"unknown field 'flop'.*flops"),
    "after-future": (sched(step(1, after=[4])), r"not an earlier step"),
    "after-not-list": (sched(step(1, after=0)), r"steps\[1\]\.after.*list"),
    "after-text": (sched(step(1, after=["a"])), r"steps\[1\]\.after\[0\]"),
    "tensors-not-list": (sched(step(0, tensors="m/w0")), r"steps\[0\]\.tensors"),
    "tensors-empty": (sched(step(0, tensors=[], bytes=0)), r"loads no tensor"),
    "unknown-tensor": (sched(step(0, tensors=["m/w9"])), r"unknown tensor 'm/w9'"),
    "weight-not-loaded": (sched(step(1, weights=["m/w1"])), r"before it is loaded"),
    "no-wait-for-load": (sched(step(1, after=[])), r"does not wait for its load"),
    "free-before-use": (sched(step(2, after=[])), r"before its last use"),
    "free-not-resident": (sched(step(5, tensors=["m/w0"])), r"not resident"),
    "compute-twice": (sched(step(4, op="l0", weights=["m/w1"])), r"computed twice"),
    "invocation-range": (sched(step(1, invocation=3)), r"invocation 3 out of range"),
    "invocation-neg": (sched(step(1, invocation=-1)), r"steps\[1\]\.invocation"),
    "dtype-unknown": (sched(step(1, dtype="fp6")), r"unknown format .fp6."),
    "path-unknown": (sched(step(0, path="teleport")), r"unknown path 'teleport'"),
    "dst-unknown": (sched(step(0, dst="disk")), r"unknown destination 'disk'"),
    "id-wrong": (sched(step(2, id=7)), r"has id 7"),
    "id-text": (sched(step(2, id="2")), r"steps\[2\]\.id"),
    "step-type": (sched(step(2, step="teleport")), r"unknown step type 'teleport'"),
    "step-not-mapping": (sched(lambda d: d["steps"].append(5)), r"steps\[6\].*step mapping"),
    "layout-not-mapping": (sched(step(0, layout=5)), r"steps\[0\]\.layout"),
    "no-steps": (sched(top(steps=[])), r"steps: expected a non-empty list"),
    "steps-missing": (sched(top(steps=...)), r"missing the field 'steps'"),
    "steps-not-list": (sched(top(steps={"a": 1})), r"steps: expected"),
    "only-loads": (sched(lambda d: d.update(steps=d["steps"][:1])), r"computes nothing"),
    "budget-text": (sched(top(budget_bytes="lots")), r"budget_bytes"),
    "budget-neg": (sched(top(budget_bytes=-1)), r"budget_bytes"),
    "budget-zero": (sched(top(budget_bytes=0)), r"budget_bytes"),
    "tensor-bytes-neg": (sched(top(tensor_bytes={"m/w0": -5, "m/w1": 2000})),
                         r"tensor_bytes\['m/w0'\]"),
    "tensor-bytes-list": (sched(top(tensor_bytes=[1, 2])), r"tensor_bytes: expected a mapping"),
    "invocations-empty": (sched(top(invocations=[])), r"invocations: expected a non-empty"),
    "invocations-missing": (sched(top(invocations=...)), r"missing the field 'invocations'"),
    "invocation-no-model": (sched(top(invocations=[{"label": "m"}])),
                            r"invocations\[0\] is missing the field 'model'"),
    "meta-list": (sched(top(meta=[1])), r"meta: expected a mapping"),
    "policy-number": (sched(top(policy=5)), r"policy: expected a non-empty text"),
    "version": (sched(top(version=99)), r"version.*found 99"),
    "unknown-top": (sched(top(stepz=[])), r"unknown field 'stepz'"),
    "format-missing": (sched(top(format=...)), r"not a weightstream schedule"),
    "list": ("[]", r"not a weightstream schedule"),
    "empty": ("", r"not valid JSON"),
    "not-json": ("{steps: 1", r"not valid JSON"),
    "not-utf8": (b'{"format": "weightstream-schedule", "policy": "\xff"}', r"UTF-8"),
}
for name, (text, expect) in SCHEDULE_DEFECTS.items():
    files = {"toy.yaml": prof(), "s.json": text}
    case("schedules", f"run-{name}", TOYRUN, expect, files)
for name in ("flops-text", "no-steps", "not-utf8", "bytes-missing", "version"):
    text, expect = SCHEDULE_DEFECTS[name]
    case("schedules", f"replay-{name}", ["validate", "replay", "s.json", "--device", "pocl"],
         expect, {"s.json": text})
case("schedules", "run-missing", [*TOYRUN[:1], "--schedule", "nope.json", "--profile",
                                  "toy.yaml"], r"nope.json", {"toy.yaml": prof()})
case("schedules", "run-folder", [*TOYRUN[:1], "--schedule", "d", "--profile", "toy.yaml"],
     r"d", {"toy.yaml": prof(), "d/x": ""})

# --- sweep specs --------------------------------------------------------------------------------
SPEC_DEFECTS: dict[str, tuple[object, str]] = {
    "unknown-key": (spec(polices=["preload"]), r"unknown key 'polices'.*did you mean"),
    "no-models": (spec(models=...), r"'models' or 'workloads'"),
    "models-empty": (spec(models=[]), r"'models' or 'workloads'"),
    "models-number": (spec(models=5), r"'models' must be a list"),
    "model-number": (spec(models=[5]), r"name or a mapping"),
    "model-unknown": (spec(models=["resnet-50"]), r"unknown model 'resnet-50'.*resnet50"),
    "workload-unknown": (spec(workloads=["camera-ap"]), r"unknown workload 'camera-ap'"),
    "model-no-name": (spec(models=[{"label": "x"}]), r"needs a 'name'"),
    "factory-no-colon": (spec(models=[{"factory": "helpers.linear_chain"}]),
                         r"package.module:function"),
    "args-without-factory": (spec(models=[{"name": "gpt2", "args": {"n": 1}}]),
                             r"only valid with 'factory'"),
    "args-nan": (spec(models=[{**CHAIN, "args": {"n": float("nan")}}]), r"finite"),
    "no-profiles": (spec(profiles=...), r"non-empty 'profiles'"),
    "profile-unknown": (spec(profiles=["pixel-99"]), r"pixel-99.*valid profiles"),
    "profile-file-missing": (spec(profiles=["nope.yaml"]), r"nope.yaml does not exist"),
    "profile-set-list": (spec(profiles=[{"name": "toy.yaml", "set": [1]}]),
                         r"'set' of profile"),
    "no-policies": (spec(policies=...), r"non-empty 'policies'"),
    "policies-empty": (spec(policies=[]), r"'policies' is empty"),
    "policy-unknown": (spec(policies=["preloud"]), r"unknown policy 'preloud'.*preload"),
    "policy-key": (spec(policies=[{"name": "pipeline", "opts": {}}]), r"unknown key 'opts'"),
    "duplicate-labels": (spec(policies=["sequential", "sequential"]),
                         r"duplicate policy labels"),
    "dtype-unknown": (spec(dtypes=["fp6"]), r"fp6"),
    "dtype-list": (spec(dtypes=[["fp16"]]), r"expected a format name"),
    "dtypes-empty": (spec(dtypes=[]), r"'dtypes' is empty"),
    "duplicate-key": (spec() + "name: again\n", r"twice"),
    "list": ("- a\n- b\n", r"must be a mapping"),
    "empty": ("", r"must be a mapping"),
    "bad-yaml": ("models: [unclosed\n", r"not valid YAML"),
    "not-utf8": (b"name: caf\xe9\n", r"not UTF-8"),
}
for name, (text, expect) in SPEC_DEFECTS.items():
    case("specs", name, ["sweep", "s.yaml", "--out", "o", "--no-progress"], expect,
         {"toy.yaml": prof(), "s.yaml": text})
for name, entry, files, expect in (
        ("file-missing", {"file": "nope.onnx"}, {}, r"nope.onnx.*not found"),
        ("file-garbage", {"file": "m.onnx"}, {"m.onnx": b"garbage"}, r"m.onnx"),
        ("file-dims-list", {"file": "m/config.json", "dims": [1]},
         {"m/config.json": json.dumps(LLAMA)}, r"'dims' of model file"),
        ("file-config-heads-0", {"file": "m/config.json"},
         {"m/config.json": json.dumps({**LLAMA, "num_attention_heads": 0})},
         r"num_attention_heads")):
    case("specs", name, ["sweep", "s.yaml", "--out", "o", "--no-progress"], expect,
         {"toy.yaml": prof(), "s.yaml": spec(models=[entry]), **files})
case("specs", "missing", ["sweep", "nope.yaml", "--out", "o"], r"nope.yaml.*built-in specs")
case("specs", "folder", ["sweep", "d", "--out", "o"], r"cannot read sweep spec", {"d/x": ""})

# --- plot ---------------------------------------------------------------------------------------


def error_rows() -> bytes:
    """A results file whose every run errored (the KeyError: 'peak_memory_bytes' case)."""
    import io

    import pandas as pd

    df = pd.DataFrame({"key": ["a", "b"], "model": ["m", "m"], "profile": ["p", "p"],
                       "dtype": ["fp16"] * 2, "policy": ["x", "y"], "policy_name": ["x", "y"],
                       "budget_bytes": pd.array([None, None], dtype="Int64"),
                       "feasible": [False, False], "status": ["error", "error"],
                       "error": ["KeyError: 'boom'", "KeyError: 'boom'"]})
    buf = io.BytesIO()
    df.to_parquet(buf)
    return buf.getvalue()


def good_rows() -> bytes:
    """A results file of two feasible runs (enough for every plot kind but speedup)."""
    import io

    import pandas as pd

    df = pd.DataFrame({"key": ["a", "b"], "model": ["m", "m"], "profile": ["p", "p"],
                       "dtype": ["fp16"] * 2, "policy": ["sequential"] * 2,
                       "policy_name": ["sequential"] * 2,
                       "budget_bytes": pd.array([2**20, 2**21], dtype="Int64"),
                       "feasible": [True, True], "status": ["ok", "ok"], "error": [None, None],
                       "latency_s": [0.02, 0.01], "peak_memory_bytes": [2**20, 2**21],
                       "lower_bound_s": [0.005, 0.005]})
    buf = io.BytesIO()
    df.to_parquet(buf)
    return buf.getvalue()


def foreign_parquet() -> bytes:
    import io

    import pandas as pd

    buf = io.BytesIO()
    pd.DataFrame({"a": [1, 2]}).to_parquet(buf)
    return buf.getvalue()


case("plot", "missing-dir", ["plot", "nope"], r"nope")
case("plot", "empty-dir", ["plot", "r"], r"no results in r", {"r/.keep": ""})
case("plot", "all-errors", ["plot", "r"], r"all 2 stored runs are errors.*boom",
     {"r/results.parquet": error_rows})
case("plot", "all-errors-pareto", ["plot", "r", "--kind", "pareto"], r"errors",
     {"r/results.parquet": error_rows})
case("plot", "all-errors-speedup", ["plot", "r", "--kind", "speedup"], r"errors",
     {"r/results.parquet": error_rows})
case("plot", "corrupt-results", ["plot", "r"], r"r/results.parquet is unreadable.*delete it",
     {"r/results.parquet": b"PAR1garbage"})
case("plot", "empty-part", ["plot", "r"], r"part-0001.parquet is unreadable.*delete it",
     {"r/runs/part-0001.parquet": b""})
case("plot", "foreign-parquet-file", ["plot", "x.parquet"], r"not a weightstream results",
     {"x.parquet": foreign_parquet})
case("plot", "foreign-parquet-dir", ["plot", "r"], r"not a weightstream results",
     {"r/results.parquet": foreign_parquet})
case("plot", "text-file", ["plot", "x.txt"], r"x.txt", {"x.txt": "x"})
case("plot", "out-extension", ["plot", "r", "--out", "x.gif"], r"x.gif.*\.png",
     {"r/results.parquet": error_rows})

# --- outputs: files that cannot be written ------------------------------------------------------
OUT_RUN = [*TOYRUN]
case("outputs", "trace-folder", [*OUT_RUN, "--trace", "d"], r"--trace.*'d' is a directory",
     {**good_files(), "d/x": ""})
case("outputs", "trace-under-file", [*OUT_RUN, "--trace", "f/t.json"], r"f is a file",
     {**good_files(), "f": "x"})
case("outputs", "save-schedule-under-file", [*OUT_RUN, "--save-schedule", "f/s.json"],
     r"f is a file", {**good_files(), "f": "x"})
case("outputs", "save-schedule-folder", [*OUT_RUN, "--save-schedule", "d"],
     r"--save-schedule.*'d' is a directory",
     {**good_files(), "d/x": ""})
case("outputs", "gantt-extension", [*OUT_RUN, "--gantt", "g.gif"], r"g.gif.*\.png",
     good_files())
case("outputs", "gantt-and-trace", [*OUT_RUN, "--trace", "t.json", "--gantt", "g.bmp"],
     r"g.bmp", good_files())
case("outputs", "gantt-under-file", [*OUT_RUN, "--gantt", "f/g.png"], r"f is a file",
     {**good_files(), "f": "x"})
case("outputs", "sweep-out-file", ["sweep", "s.yaml", "--out", "f", "--no-progress"], r"f",
     {"toy.yaml": prof(), "s.yaml": spec(), "f": "x"})
case("outputs", "sweep-out-under-file", ["sweep", "s.yaml", "--out", "f/o", "--no-progress"],
     r"f/o.*choose another", {"toy.yaml": prof(), "s.yaml": spec(), "f": "x"})
case("outputs", "sweep-corrupt-part", ["sweep", "s.yaml", "--out", "o", "--no-progress",
                                       "--workers", "1"],
     r"o/runs/part-1.parquet is unreadable.*delete it",
     {"toy.yaml": prof(), "s.yaml": spec(), "o/runs/part-1.parquet": b"PAR1xx"})
case("outputs", "sweep-zero-byte-results", ["sweep", "s.yaml", "--out", "o", "--no-progress",
                                            "--workers", "1"],
     r"o/results.parquet is unreadable",
     {"toy.yaml": prof(), "s.yaml": spec(), "o/results.parquet": b""})
case("outputs", "plot-out-under-file", ["plot", "r", "--out", "f/x.png"],
     r"cannot write the plot f/x.png: f is a file", {"r/results.parquet": good_rows, "f": "x"})
case("outputs", "plot-out-folder", ["plot", "r", "--out", "d"], r"'d' is a directory",
     {"r/results.parquet": good_rows, "d/x": ""})
case("outputs", "plot-speedup-no-preload", ["plot", "r", "--kind", "speedup", "--out", "s.png"],
     r"needs feasible preload runs", {"r/results.parquet": good_rows})
case("outputs", "sweep-out-empty", ["sweep", "s.yaml", "--out", "", "--no-progress"],
     r"--out is empty", {"toy.yaml": prof(), "s.yaml": spec()})

# --- validate (OpenCL): bad devices, files and numbers fail before any measurement --------------
case("validate", "replay-device", ["validate", "replay", "s.json", "--device", "warp-gpu"],
     r"warp-gpu", {"s.json": json.dumps(SCHEDULE)})
case("validate", "replay-missing", ["validate", "replay", "nope.json"], r"nope.json")
for opt, value in (("--scale", "0"), ("--scale", "-1"), ("--scale", "nan"), ("--scale", "inf"),
                   ("--queue-depth", "0")):
    case("validate", f"replay{opt}={value}", ["validate", "replay", "s.json", "--device", "pocl",
                                              opt, value], opt.strip("-").replace("-", "."),
         {"s.json": json.dumps(SCHEDULE)})
case("validate", "calibrate-nothing", ["validate", "calibrate", "--out", "c.yaml"],
     r"--microbench FILE.json or --device")
case("validate", "calibrate-missing-mb", ["validate", "calibrate", "--microbench", "nope.json",
                                          "--out", "c.yaml"], r"nope.json")
case("validate", "calibrate-garbage-mb", ["validate", "calibrate", "--microbench", "mb.json",
                                          "--out", "c.yaml"], r"mb.json", {"mb.json": "{x"})
case("validate", "calibrate-base", ["validate", "calibrate", "--microbench", "mb.json",
                                    "--base", "pixel-99", "--out", "c.yaml"], r"pixel-99",
     {"mb.json": "{}"})
case("validate", "microbench-device", ["validate", "microbench", "--device", "warp-gpu"],
     r"warp-gpu")
case("validate", "compare-profile", ["validate", "compare", "--profile", "pixel-99",
                                     "--device", "pocl", "--out", "rep"], r"pixel-99")
case("validate", "compare-repeats", ["validate", "compare", "--profile", "pocl-cpu",
                                     "--device", "pocl", "--repeats", "0", "--out", "rep"],
     r"--repeats")

case("validate", "published-table-missing", ["validate", "published", "--table", "nope.yaml"],
     r"nope.yaml")
case("validate", "published-table-garbage", ["validate", "published", "--table", "t.yaml"],
     r"t.yaml", {"t.yaml": "rows: [unclosed\n"})
case("validate", "published-fit-unknown", ["validate", "published", "--fit", "mmn", "--param",
                                           "efficiency.conv"], r"mmn")
case("validate", "published-plot-extension", ["validate", "published", "--plot", "x.gif"],
     r"x.gif")
case("validate", "check-profile", ["validate", "check", "--profile", "pixel-99", "--device",
                                   "pocl"], r"pixel-99")
case("validate", "summary-missing", ["validate", "summary", "nope", "--out", "s.md"], r"nope")

# --- Dask addresses (no cluster needed: each fails before or at connecting) ---------------------
for addr, expect in (("foo", r"not a Dask scheduler address"),
                     ("tcp://foo", r"not a Dask scheduler address"),
                     ("http://x:1", r"not a Dask scheduler address"),
                     ("tcp://:8786", r"not a Dask scheduler address"),
                     ("", r"not a Dask scheduler address")):
    case("dask", f"address-{addr or 'empty'}", ["sweep", "s.yaml", "--out", "o", "--scheduler",
                                                addr, "--no-progress"], expect,
         {"toy.yaml": prof(), "s.yaml": spec()})
case("dask", "timeout-0", ["sweep", "s.yaml", "--out", "o", "--scheduler", "tcp://127.0.0.1:1",
                           "--dask-timeout", "0"], r"--dask-timeout",
     {"toy.yaml": prof(), "s.yaml": spec()})
case("dask", "timeout-nan", ["sweep", "s.yaml", "--out", "o", "--scheduler",
                             "tcp://127.0.0.1:1", "--dask-timeout", "nan"], r"--dask-timeout",
     {"toy.yaml": prof(), "s.yaml": spec()})
case("dask", "refused", ["sweep", "s.yaml", "--out", "o", "--scheduler", "tcp://127.0.0.1:1",
                         "--dask-timeout", "0.5", "--no-progress"],
     r"cannot reach a Dask scheduler at tcp://127.0.0.1:1 within 0.5 s",
     {"toy.yaml": prof(), "s.yaml": spec()})


# --- the runner ---------------------------------------------------------------------------------

def _write(root: Path, files: Files) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if callable(content):
            content = content()
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


def _snapshot(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_bad_input(c: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, c.files)
    before = _snapshot(tmp_path)
    r = CliRunner().invoke(main, list(c.args))
    out = r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), (
        f"{type(r.exception).__name__}: {r.exception}\n{out}")
    assert "Traceback" not in out, out
    assert r.exit_code != 0, out
    if c.code is not None:
        assert r.exit_code == c.code, out
    m = re.search(c.marker, out)
    assert m, f"no error line in:\n{out}"
    assert re.search(c.expect, out[m.start():], re.IGNORECASE | re.DOTALL), (
        f"error does not match {c.expect!r}:\n{out}")
    assert _snapshot(tmp_path) == before, "the failed command left files behind or changed inputs"


def test_the_matrix_is_large_and_covers_every_area() -> None:
    areas = {c.id.split(":")[0] for c in CASES}
    assert {"names", "profiles", "overrides", "budgets", "options", "onnx", "hf", "schedules",
            "specs", "plot", "capacity", "outputs", "validate", "dask", "runtimes"} <= areas
    assert len(CASES) >= 250
    assert len({c.id for c in CASES}) == len(CASES)


def test_profile_cases_use_a_shipped_profile_for_reference() -> None:
    """The shipped file itself passes the name rule the 'name-shipped' case breaks."""
    from hwprofiles import check_file

    assert check_file(str(builtin_dir() / "snapdragon-8-gen-3.yaml")) == []
