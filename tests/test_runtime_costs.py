"""Runtime profiles in the engine: hand-checked load stages, program builds, dispatch and
efficiency, host copies held until init, fusion lowering, and the ideal runtime's neutrality."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from hwprofiles.loader import list_runtimes, load_runtime
from hwprofiles.runtime import RUNTIME_FIELDS, runtime_value
from sim import plan, simulate
from sim.lowering import op_class
from workloads import Op, Tensor, chain, single
from workloads.fusion import fuse
from workloads.zoo import get_model

from helpers import linear_chain

GB = 10**9


def write_runtime(tmp_path: Path, name: str, **sections: dict) -> str:
    """A runtime YAML whose every value is sourced as a test estimate."""
    data: dict = {"name": name, "description": "test runtime"}
    for section, fields in sections.items():
        data[section] = {}
        for key, value in fields.items():
            node = data[section]
            parts = key.split(".")
            for p in parts[:-1]:
                node = node.setdefault(p, {})
            node[parts[-1]] = {"value": value, "estimate": "round number for a hand check"}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.fixture
def roomy(toy_profile):
    """The toy profile with 16 GB of app memory, so nothing is killed."""
    return replace(toy_profile, dram=replace(toy_profile.dram, capacity=16 * GB,
                                             app_memory=16 * GB))


@pytest.fixture
def heavy(tmp_path):
    """Parse 2 GB/s + 0.1 s per tensor, fp32 files (x2), CPU transform at 1 GB/s, a 0.5 s
    program build per kind, 1 ms dispatch, GEMV kernels at half the roofline."""
    return load_runtime(write_runtime(
        tmp_path, "heavy",
        weights={"file_scale": 2},
        load={"parse_bandwidth": "2 GB/s", "per_tensor": "0.1 s", "transform": "cpu",
              "transform_bandwidth": "1 GB/s"},
        init={"program_build": "0.5 s"},
        dispatch={"per_kernel": "1 ms"},
        efficiency={"gemv": 0.5}))


def test_shipped_runtimes_load_and_every_set_value_is_sourced():
    names = list_runtimes()
    for required in ("ideal", "mnn", "litert-gpu", "tvm", "executorch", "llama.cpp-opencl",
                     "mlc-llm", "flashmem"):
        assert required in names
    for name in names:
        rt = load_runtime(name)
        assert rt.name == name
        for path in RUNTIME_FIELDS:
            if path in rt.sources:
                assert len(rt.sources[path].text) > 10, (name, path)
        assert set(rt.to_dict()) <= set(rt.sources), name  # nothing set without a source
    assert load_runtime("ideal").is_neutral


def test_ideal_runtime_changes_nothing(toy_profile, three_layers):
    ideal = load_runtime("ideal")
    for policy in ("preload", "sequential", "pipeline", "flashmem"):
        a = simulate(plan(policy, three_layers, toy_profile), toy_profile).metrics
        b = simulate(plan(policy, three_layers, toy_profile, None, ideal), toy_profile,
                     runtime=ideal).metrics
        da, db = a.to_dict(), b.to_dict()
        for d in (da, db):  # wall-clock planning times differ from run to run
            d["meta"] = {k: v for k, v in d["meta"].items() if not k.endswith("wall_s")
                         and k != "plan_time_s"}
        assert da == db


def test_runtime_stages_by_hand(roomy, three_layers, heavy):
    """3 loads of 1 GB (2 GB on flash): read 2 s, parse 2 GB / 2 GB/s + 0.1 s = 1.1 s, copy
    0.5 s, CPU transform 1 s, 4.6 s per load; the 0.5 s build on the host is done before load
    0's parse starts at 2 s; preload chains the loads: init 13.8 s."""
    m = simulate(plan("preload", three_layers, roomy, None, heavy), roomy,
                 runtime=heavy).metrics
    assert m.init_s == pytest.approx(3 * (2 + 1.1 + 0.5 + 1), rel=1e-12)
    assert m.init_breakdown_s == pytest.approx(
        {"build": 0.5, "read": 6.0, "parse": 3.3, "copy": 1.5, "transform": 3.0})
    # each kernel: 1 ms dispatch + max(1 ms FLOPs, 1 GB / 1000 GB/s + 4 KB) / 0.5
    kernel = 1e-3 + (1e-3 + 4000 / 1e12) / 0.5
    assert m.exec_s == pytest.approx(3 * kernel, rel=1e-9)
    assert m.flash_bytes_read == 6 * GB
    assert m.utilisation["host"] == pytest.approx((0.5 + 3.3 + 3.0) / m.latency_s)


def test_host_copies_held_until_the_first_kernel(roomy, three_layers, tmp_path):
    """With fp32 files converted at load, a load holds file (2 GB) + parsed (1 GB) + weights;
    holding every file buffer until init (MNN's Interpreter) adds 2 GB per load: the peak is
    first reached when load 2 copies: held 6 GB + parsed 1 GB + GPU buffer 1 GB of staging and
    2 GB of textures = 10 GB; without it, load 2's parse holds 2 GB weights + 2 GB file +
    1 GB parsed = 5 GB."""
    conv = {"file_scale": 2}
    keep = load_runtime(write_runtime(tmp_path, "keep", weights={**conv, "host_copy": "until_init"}))
    drop = load_runtime(write_runtime(tmp_path, "drop", weights=conv))
    held = simulate(plan("preload", three_layers, roomy, None, keep), roomy, runtime=keep).metrics
    freed = simulate(plan("preload", three_layers, roomy, None, drop), roomy, runtime=drop).metrics
    assert held.peak_memory_bytes == 10 * GB
    assert held.memory_at_peak_by_category["staging"] == 8 * GB
    assert held.memory_at_peak_by_category["weights"] == 2 * GB
    assert freed.peak_memory_bytes == 5 * GB
    # once the first kernel starts only the textures (and activations) remain
    after = [row for row in simulate(plan("preload", three_layers, roomy, None, keep), roomy,
                                     runtime=keep).trace.memory if row[0] >= held.init_s]
    assert after[0][1] <= 3 * GB + 8000


def test_program_builds_per_kind_and_shape_and_cached(roomy, tmp_path):
    ops = [Op("a", "linear", 10**9, (Tensor("m/a", (1000, 1000)),), 1000, 1000),
           Op("b", "linear", 10**9, (Tensor("m/b", (1000, 1000)),), 1000, 1000),
           Op("c", "linear", 2 * 10**9, (Tensor("m/c", (2000, 1000)),), 1000, 2000),
           Op("d", "add", 1000, (), 2000, 2000)]
    wl = single(chain("m", ops))

    def init_build(**init) -> float:
        rt = load_runtime(write_runtime(tmp_path, "b", init=init))
        return simulate(plan("preload", wl, roomy, None, rt), roomy,
                        runtime=rt).metrics.init_breakdown_s["build"]

    assert init_build(program_build="1 s") == pytest.approx(2.0)  # linear, add
    assert init_build(program_build="1 s", programs_per="shape") == pytest.approx(3.0)
    assert init_build(program_build="1 s", programs_per="runtime", program_count=40) == \
        pytest.approx(40.0)
    assert init_build(program_build="1 s", cached=True, program_load="0.1 s") == \
        pytest.approx(0.2)


def test_kernel_efficiency_per_class_and_dtype(tmp_path):
    rt = load_runtime(write_runtime(
        tmp_path, "k", efficiency={"matmul": 0.5}, dtype_efficiency={"int4": 0.8},
        kernel_efficiency={"gemv.fp16": 0.25}))
    assert rt.efficiency_for("matmul", "fp16") == 0.5
    assert rt.efficiency_for("matmul", "int4") == pytest.approx(0.4)
    assert rt.efficiency_for("gemv", "fp16") == 0.25  # replaces the product
    assert rt.efficiency_for("gemv", "int4") == pytest.approx(0.8)
    assert runtime_value(rt, "kernel_efficiency.gemv.fp16") == 0.25


def test_op_classes():
    decode = get_model("llama-3.2-1b", "fp16", tokens=1, past=16)
    prefill = get_model("llama-3.2-1b", "fp16", tokens=64)
    assert op_class(decode.op("model.layers.0.mlp.up_proj")) == "gemv"
    assert op_class(prefill.op("model.layers.0.mlp.up_proj")) == "matmul"
    mb = get_model("mobilenetv2", "fp16")
    classes = {op_class(op) for op in mb.ops}
    assert {"conv", "depthwise", "norm", "elementwise"} <= classes
    assert op_class(prefill.op("model.layers.0.self_attn.qk")) == "attention"


def test_fusion_rules_by_hand():
    """conv -> bn -> add(residual) fuses into one conv kernel: the BN's scale folds into the
    conv weight, its shift becomes the conv's bias; the add reads the other input directly."""
    x = Op("x", "conv", 100, (Tensor("m/x.w", (8, 3, 3, 3)),), 300, 800)
    c = Op("c", "conv", 1000, (Tensor("m/c.w", (8, 8, 3, 3)),), 800, 800)
    bn = Op("bn", "batchnorm", 16, (Tensor("m/bn.w", (8,)), Tensor("m/bn.b", (8,))), 800, 800)
    add = Op("add", "add", 800, (), 1600, 800)
    m = chain("m", [x, c, bn])
    from workloads import Model

    m = Model("m", [x, c, bn, add], [("x", "c"), ("c", "bn"), ("bn", "add"), ("x", "add")])
    f = fuse(m, ["conv_bn", "elementwise"])
    assert [o.name for o in f.ops] == ["x", "c"]
    conv = f.op("c")
    assert [t.name for t in conv.weights] == ["m/c.w", "m/bn.b"]
    assert conv.flops == 1000 + 16 + 800
    assert conv.input_elems == 800 + 800  # its own input and the residual
    assert conv.output_elems == 800
    assert list(f.predecessors("c")) == ["x"]
    assert fuse(m, []) is m


def test_fused_zoo_models_keep_flops_and_lose_only_bn_scales():
    r = get_model("resnet50", "fp16")
    f = fuse(r, ["conv_bn", "elementwise"])
    assert f.total_flops == r.total_flops
    assert len(f.ops) == 56  # 53 convs (+BN, +residual adds) + maxpool, avgpool, fc
    bn_scales = sum(op.weights[0].numel for op in r.ops if op.kind == "batchnorm")
    assert r.param_count - f.param_count == bn_scales
    v = get_model("vit-b16", "fp16")
    fv = fuse(v, ["attention"])
    assert sum(op.kind == "attention" for op in fv.ops) == 12
    assert fv.total_flops == v.total_flops


def test_runtime_fusion_makes_fewer_kernels_and_less_traffic(toy_profile, tmp_path):
    rt = load_runtime(write_runtime(tmp_path, "f", fusion={"rules": ["conv_bn", "elementwise"]}))
    wl = single(get_model("resnet50", "fp16"))
    s0 = plan("preload", wl, toy_profile)
    s1 = plan("preload", wl, toy_profile, None, rt)
    assert len(s1.computes) == 56 < len(s0.computes) == 125
    assert s1.runtime == "f"
    m0 = simulate(s0, toy_profile).metrics
    m1 = simulate(s1, toy_profile, runtime=rt).metrics
    assert m1.exec_s < m0.exec_s
    assert m1.feasible and m0.feasible


def test_linear_chain_helper_still_matches(toy_profile):
    # guard for the hand checks above: three 1 GB fp16 layers of 1e9 FLOPs
    wl = linear_chain()
    assert wl.weight_bytes == 3 * GB


def test_narrow_products_run_the_fallback_kernel_by_hand(toy_profile, tmp_path):
    """A runtime whose tuned GEMM needs both weight dimensions >= 512 (llama.cpp's Adreno Q4_0
    kernels) runs a prompt's K/V projection of Qwen2-1.5B (256 x 1536) on its fallback kernel
    at the stated efficiency; the 1536 x 1536 Q projection, decode GEMVs, fp16 weights and a
    runtime without a fallback figure keep their own kernels."""
    from sim.hardware import HardwareModel
    from sim.lowering import lower, narrow
    from workloads.workload import Invocation, Workload

    rt = load_runtime(write_runtime(
        tmp_path, "gate", kernels={"narrow_min_dim": 512, "narrow_formats": ["q4_0"]},
        kernel_efficiency={"matmul.q4_0": 0.5, "matmul_narrow.q4_0": 0.01}))
    unstated = load_runtime(write_runtime(
        tmp_path, "nofig", kernels={"narrow_min_dim": 512, "narrow_formats": ["q4_0"]},
        kernel_efficiency={"matmul.q4_0": 0.5}))
    prefill = get_model("qwen2-1.5b", "q4_0", tokens=64)
    k, q = (prefill.op(f"model.layers.0.self_attn.{p}_proj") for p in ("k", "q"))
    assert narrow(k, rt) and not narrow(q, rt) and not narrow(k, unstated)
    assert not narrow(get_model("qwen2-1.5b", "q4_0", tokens=1).op(k.name), rt)  # a GEMV
    assert not narrow(get_model("qwen2-1.5b", "fp16", tokens=64).op(k.name), rt)
    low = lower(Workload("w", (Invocation(prefill, "p"),)), rt).invocations[0].model
    assert op_class(low.op(k.name)) == "matmul_narrow" and op_class(low.op(q.name)) == "matmul"
    assert low.total_flops == prefill.total_flops and len(low.ops) == len(prefill.ops)
    # the step's time: launch + roofline / efficiency, the narrow kernel at its own figure
    s = plan("preload", Workload("w", (Invocation(prefill, "p"),)), toy_profile, None, rt)
    step = next(c for c in s.computes if c.op == k.name)
    assert step.op_class == "matmul_narrow"
    g = toy_profile.gpu
    t_flops = k.flops / (g.flops_for("fp16") * g.compute_efficiency)
    t_mem = (k.input_bytes + k.output_bytes) / g.memory_bandwidth + sum(
        t.nbytes / (g.memory_bandwidth * g.buffer_read_efficiency) for t in k.weights)
    want = (g.kernel_launch_overhead + max(t_flops, t_mem) / 0.01
            + (1 - g.compute_memory_overlap) * min(t_flops, t_mem) / 0.01)
    sizes = {t.name: t.nbytes for t in k.weights}
    assert HardwareModel(toy_profile, rt).compute_time(step, sizes, {}) == pytest.approx(want)


def test_recording_follows_shape_changes_by_label():
    """A runtime that records command buffers per input shape records before the first run and
    each run whose label group changes; an invocation may say it is a steady-state run."""
    from workloads.workload import Invocation, recording

    m = linear_chain(2).invocations[0].model
    inv = [Invocation(m, lab) for lab in ("prefill", "decode[0]", "decode[1]", "decode[2]")]
    assert recording(inv) == [True, True, False, False]
    inv = [Invocation(m, lab) for lab in ("text-encoder", "unet[0]", "unet[1]", "vae-decoder")]
    assert recording(inv) == [True, True, False, True]
    assert recording([Invocation(m, "decode[7]", False), Invocation(m, "decode[8]")]) == [
        False, False]
    assert recording([Invocation(m, "x", False), Invocation(m, "x", True)]) == [False, True]


def test_recording_cost_by_hand_in_every_executor(toy_profile, tmp_path):
    """Recording costs `record_per_kernel` per kernel of the prompt and of the first decode step
    (the shape changes back), none of later steps: exact, the same in the evaluator, the SimPy
    engine and the planner's estimate, and a schedule file keeps which invocation records."""
    from sim.schedule import Schedule
    from workloads.workload import Invocation, Workload

    base = load_runtime(write_runtime(tmp_path, "plain", dispatch={"per_kernel": "1 ms"}))
    rec = load_runtime(write_runtime(tmp_path, "rec", dispatch={
        "per_kernel": "1 ms", "record_per_kernel": "2 ms"}))
    prompt = step = linear_chain(3, weight_elems=5_000_000).invocations[0].model
    wl = Workload("w", (Invocation(prompt, "prefill"), Invocation(step, "decode[0]"),
                        Invocation(step, "decode[1]")))
    s = plan("preload", wl, toy_profile, None, rec)
    assert [i.records for i in s.invocations] == [True, True, False]
    back = Schedule.from_dict(s.to_dict())
    assert [i.records for i in back.invocations] == [True, True, False]
    a = simulate(plan("preload", wl, toy_profile, None, base), toy_profile, runtime=base).trace
    b = simulate(s, toy_profile, runtime=rec).trace
    dur = {}
    for tr, key in ((a, "plain"), (b, "rec")):
        dur[key] = [i.end - i.start for i in sorted(tr.intervals, key=lambda i: i.step)
                    if i.resource == "gpu"]
    extra = [y - x for x, y in zip(dur["plain"], dur["rec"], strict=True)]
    n = len(prompt.ops)
    assert extra[:2 * n] == pytest.approx([2e-3] * (2 * n), abs=1e-12)
    assert extra[2 * n:] == pytest.approx([0.0] * n, abs=1e-12)
    fast = simulate(s, toy_profile, runtime=rec, record_trace=False).metrics
    engine = simulate(s, toy_profile, runtime=rec, record_trace=False, engine="simpy").metrics
    assert fast.latency_s == engine.latency_s
    fm = plan("flashmem", wl, toy_profile, None, rec)
    got = simulate(fm, toy_profile, runtime=rec).metrics.latency_s
    assert fm.meta["estimated_latency_s"] == pytest.approx(got, rel=1e-12)


def test_a_bad_records_flag_in_a_schedule_file_is_named(toy_profile):
    from sim.errors import ScheduleError
    from sim.schedule import Schedule

    d = plan("preload", linear_chain(2), toy_profile, None).to_dict()
    assert "records" not in d["invocations"][0] or d["invocations"][0]["records"] is True
    d["invocations"][0]["records"] = "yes"
    with pytest.raises(ScheduleError, match=r"invocations\[0\]\.records: expected true or false"):
        Schedule.from_dict(d)
