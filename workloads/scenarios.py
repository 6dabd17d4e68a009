"""Named workload scenarios: one inference, repeated inference (cold then warm), LLM prefill +
token-by-token decode with a growing KV cache, and multi-DNN pipelines (Stable Diffusion, a
camera app). Names are parsed, so `gpt2-p64-d8` or `sd15-4steps` work without registration.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from workloads.model import WorkloadError, check_dtype
from workloads.workload import Invocation, Workload, repeated, single
from workloads.zoo import LLM_CONFIGS, ZOO, get_model

DEFAULT_DECODE_PROMPT = 16  # prompt tokens for `LLM-decode-N`


def llm_generate(name: str, prompt: int, new_tokens: int, dtype: str = "fp16") -> Workload:
    """Prefill `prompt` tokens, then `new_tokens` decode steps, each its own invocation.

    Step i attends to prompt + i cached tokens and appends one token's K/V per layer (state),
    so the KV cache grows by one token per step; all steps share the prefill's weights.
    """
    if name not in LLM_CONFIGS:
        raise WorkloadError(f"{name!r} is not a decoder LLM; LLMs: {', '.join(LLM_CONFIGS)}")
    if prompt < 1 or new_tokens < 0:
        raise WorkloadError(f"need prompt >= 1 and decode tokens >= 0, found {prompt}, "
                            f"{new_tokens}")
    invs = [Invocation(get_model(name, dtype, tokens=prompt, cache=True), "prefill")]
    invs += [Invocation(get_model(name, dtype, tokens=1, past=prompt + i, cache=True),
                        f"decode[{i}]") for i in range(new_tokens)]
    return Workload(f"{name}-p{prompt}-d{new_tokens}", tuple(invs),
                    f"{name}: prefill {prompt} tokens, decode {new_tokens} tokens")


def stable_diffusion(steps: int = 20, dtype: str = "fp16") -> Workload:
    """SD1.5 text-to-image: CLIP text encoder -> UNet x `steps` -> VAE decoder."""
    if steps < 1:
        raise WorkloadError(f"diffusion steps must be at least 1, found {steps}")
    unet = get_model("sd15-unet", dtype)
    invs = [Invocation(get_model("sd15-text-encoder", dtype), "text-encoder")]
    invs += [Invocation(unet, f"unet[{i}]") for i in range(steps)]
    invs.append(Invocation(get_model("sd15-vae-decoder", dtype), "vae-decoder"))
    return Workload(f"sd15-{steps}steps", tuple(invs),
                    f"Stable Diffusion 1.5, {steps} denoising steps, 512x512")


def camera_app(dtype: str = "fp16", detector: str = "yolov4",
               segmenter: str = "sam-vit-b-encoder", llm: str = "llama-3.2-1b",
               prompt: int = 32, new_tokens: int = 16, name: str = "camera-app") -> Workload:
    """A camera assistant: detect objects, segment the frame, then describe it with a small LLM."""
    gen = llm_generate(llm, prompt, new_tokens, dtype)
    invs = (Invocation(get_model(detector, dtype), "detector"),
            Invocation(get_model(segmenter, dtype), "segmenter"), *gen.invocations)
    return Workload(name, invs, f"camera app: {detector} + {segmenter} + {llm} "
                                f"(prefill {prompt}, decode {new_tokens})")


# fixed scenario names -> builder(dtype)
SCENARIOS: dict[str, Callable[[str], Workload]] = {
    "resnet50-x4": lambda dt: repeated(get_model("resnet50", dt), 4),
    "mobilenetv2-x4": lambda dt: repeated(get_model("mobilenetv2", dt), 4),
    "gpt2-p128-d32": lambda dt: llm_generate("gpt2", 128, 32, dt),
    "llama-3.2-1b-p128-d32": lambda dt: llm_generate("llama-3.2-1b", 128, 32, dt),
    "llama-2-7b-decode-128": lambda dt: llm_generate("llama-2-7b", DEFAULT_DECODE_PROMPT, 128,
                                                     dt),
    "sd15-20steps": lambda dt: stable_diffusion(20, dt),
    "camera-app": lambda dt: camera_app(dt),
    "camera-app-lite": lambda dt: camera_app(dt, "mobilenetv2", "sam-vit-b-encoder", "gpt2",
                                             16, 16, name="camera-app-lite"),
}

PATTERNS = ("MODEL-xN", "LLM-pP-dN", "LLM-decode-N", "sd15-Nsteps")
_REPEAT = re.compile(r"^(?P<model>.+)-x(?P<n>\d+)$")
_GENERATE = re.compile(r"^(?P<model>.+)-p(?P<p>\d+)-d(?P<n>\d+)$")
_DECODE = re.compile(r"^(?P<model>.+)-decode-(?P<n>\d+)$")
_SD = re.compile(r"^sd15-(?P<n>\d+)steps$")


def list_workloads() -> list[str]:
    """Named scenarios (patterns such as MODEL-xN and LLM-pP-dN accept other numbers too)."""
    return list(SCENARIOS)


def _parse(name: str, dtype: str) -> Workload | None:
    """A workload for a patterned name, or None if `name` matches no pattern."""
    if m := _SD.match(name):
        return stable_diffusion(int(m["n"]), dtype)
    if (m := _GENERATE.match(name)) and m["model"] in LLM_CONFIGS:
        return llm_generate(m["model"], int(m["p"]), int(m["n"]), dtype)
    if (m := _DECODE.match(name)) and m["model"] in LLM_CONFIGS:
        return llm_generate(m["model"], DEFAULT_DECODE_PROMPT, int(m["n"]), dtype)
    if (m := _REPEAT.match(name)) and m["model"] in ZOO:
        return repeated(get_model(m["model"], dtype), int(m["n"]))
    return None


def is_workload_name(name: str) -> bool:
    """Whether `name` is a zoo model, a fixed scenario or a pattern over valid names (checked
    without building the workload)."""
    if name in ZOO or name in SCENARIOS or _SD.match(name):
        return True
    for pattern, names in ((_GENERATE, LLM_CONFIGS), (_DECODE, LLM_CONFIGS), (_REPEAT, ZOO)):
        m = pattern.match(name)
        if m and m["model"] in names:
            return True
    return False


def _unknown(kind: str, name: str) -> WorkloadError:
    return WorkloadError(
        f"unknown {kind} {name!r}; valid scenarios: {', '.join(SCENARIOS)} (patterns: "
        f"{', '.join(PATTERNS)}); models: {', '.join(ZOO)}")


def _lookup(name: str, dtype: str, kind: str) -> Workload:
    dtype = check_dtype(dtype)
    wl = SCENARIOS[name](dtype) if name in SCENARIOS else _parse(name, dtype)
    if wl is None:
        raise _unknown(kind, name)
    return wl


def get_workload(name: str, dtype: str = "fp16") -> Workload:
    """The scenario called `name` (a fixed name or a pattern), with weights in `dtype`."""
    return _lookup(name, dtype, "workload")


def resolve_workload(name: str, dtype: str = "fp16") -> Workload:
    """A zoo model name (one inference) or a scenario name, as the CLI's --model/--workload."""
    if name in ZOO:
        return single(get_model(name, check_dtype(dtype)))
    return _lookup(name, dtype, "model or workload")
