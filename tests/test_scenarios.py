"""Scenarios: repeats, LLM prefill + decode with a growing KV cache, multi-DNN pipelines."""

from __future__ import annotations

import pytest

from workloads.model import WorkloadError
from workloads.scenarios import (
    get_workload,
    list_workloads,
    llm_generate,
    resolve_workload,
    stable_diffusion,
)
from workloads.zoo import get_model


def _attn_flops(model):
    return sum(op.flops for op in model.ops if op.kind.startswith("attention_"))


def test_llm_prefill_then_decode_steps_grow_the_kv_cache():
    wl = llm_generate("llama-3.2-1b", prompt=8, new_tokens=4)
    assert [i.label for i in wl.invocations] == ["prefill"] + [f"decode[{i}]" for i in range(4)]
    kv_per_token = 2 * 16 * 8 * 64  # K and V, 16 layers, 8 kv heads x 64
    state = [sum(op.state_elems for op in inv.model.ops) for inv in wl.invocations]
    assert state == [8 * kv_per_token] + [kv_per_token] * 4
    # bytes: fp16 activations, so the cache after prefill + 4 steps holds 12 tokens
    assert sum(op.state_bytes for inv in wl.invocations for op in inv.model.ops) == \
        12 * kv_per_token * 2
    # each step attends to one more token: QK^T and AV grow by 2*heads*head_dim FLOPs/layer each
    steps = [inv.model for inv in wl.invocations[1:]]
    deltas = {_attn_flops(b) - _attn_flops(a) for a, b in zip(steps, steps[1:], strict=False)}
    assert deltas == {16 * 2 * (2 * 32 * 64)}
    assert _attn_flops(steps[0]) == 16 * 2 * (2 * 32 * 9 * 64)
    # same weight tensors (names and sizes) in prefill and every decode step
    names = list(wl.invocations[0].model.tensors)
    assert all(list(inv.model.tensors) == names for inv in wl.invocations)
    assert wl.weight_bytes == get_model("llama-3.2-1b").weight_bytes
    assert wl.models == ["llama-3.2-1b"]


def test_decode_step_is_one_token():
    step = llm_generate("gpt2", 4, 1).invocations[1].model
    assert step.op("lm_head").output_elems == 50257
    assert step.op("transformer.h.0.attn.c_attn").output_elems == 3 * 768


def test_gpt_neo_local_layers_cap_attention_at_window():
    m = get_model("gpt-neo-1.3b", tokens=1, past=1000, cache=True)
    glob, local = m.op("transformer.h.0.attn.attention.qk"), m.op("transformer.h.1.attn.attention.qk")
    assert glob.flops == 2 * 16 * 1001 * 128
    assert local.flops == 2 * 16 * 256 * 128


def test_named_llm_scenarios():
    wl = get_workload("llama-3.2-1b-p128-d32")
    assert len(wl.invocations) == 33
    wl = get_workload("gpt2-decode-8")
    assert len(wl.invocations) == 9 and wl.invocations[1].model.op("lm_head")
    assert get_workload("gpt2-p16-d2").name == "gpt2-p16-d2"


def test_repeated_inference_shares_weights():
    wl = get_workload("resnet50-x4")
    assert [i.label for i in wl.invocations] == [f"run[{i}]" for i in range(4)]
    assert wl.weight_bytes == get_model("resnet50").weight_bytes
    assert wl.total_flops == 4 * get_model("resnet50").total_flops
    assert len(get_workload("mobilenetv2-x3").invocations) == 3


def test_stable_diffusion_pipeline():
    wl = stable_diffusion(steps=3)
    assert [i.label for i in wl.invocations] == ["text-encoder", "unet[0]", "unet[1]",
                                                 "unet[2]", "vae-decoder"]
    assert wl.models == ["sd15-text-encoder", "sd15-unet", "sd15-vae-decoder"]
    assert wl.weight_bytes == sum(get_model(n).weight_bytes for n in wl.models)
    assert len(get_workload("sd15-20steps").invocations) == 22
    with pytest.raises(WorkloadError):
        stable_diffusion(0)


def test_camera_app_runs_distinct_models_in_succession():
    wl = get_workload("camera-app", "int8")
    assert wl.models == ["yolov4", "sam-vit-b-encoder", "llama-3.2-1b"]
    labels = [i.label for i in wl.invocations]
    assert labels[:3] == ["detector", "segmenter", "prefill"] and labels[3] == "decode[0]"
    assert all(t.dtype == ("int8" if len(t.shape) > 1 else "fp16") for t in wl.tensors.values())
    lite = get_workload("camera-app-lite")
    assert lite.models == ["mobilenetv2", "sam-vit-b-encoder", "gpt2"]


def test_every_listed_workload_resolves():
    names = list_workloads()
    assert {"resnet50-x4", "llama-3.2-1b-p128-d32", "llama-2-7b-decode-128", "sd15-20steps",
            "camera-app"} <= set(names)
    for name in names:
        if name != "llama-2-7b-decode-128":  # large; covered by its pattern below
            assert get_workload(name).invocations
    assert len(get_workload("llama-2-7b-decode-4").invocations) == 5


def test_resolve_accepts_models_and_scenarios():
    wl = resolve_workload("resnet50", "int8")
    assert len(wl.invocations) == 1 and wl.models == ["resnet50"]
    assert all(t.dtype == ("int8" if len(t.shape) > 1 else "fp16") for t in wl.tensors.values())
    assert resolve_workload("gpt2-x2").name == "gpt2x2"


@pytest.mark.parametrize("name", ["resnet51", "gpt2-x", "resnet50-p8-d2", "bert-base-decode-4",
                                  "", "sd15-steps"])
def test_unknown_names_list_valid_choices(name):
    with pytest.raises(WorkloadError) as exc:
        resolve_workload(name)
    msg = str(exc.value)
    assert "camera-app" in msg and "resnet50" in msg and "LLM-pP-dN" in msg
    with pytest.raises(WorkloadError, match="valid scenarios"):
        get_workload(name or "nope")


def test_bad_dtype_rejected():
    with pytest.raises(WorkloadError, match="valid formats"):
        resolve_workload("resnet50", "int2")
