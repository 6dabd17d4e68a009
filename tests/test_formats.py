"""Weight formats: hand-checked bytes per format (group scales, zero points and indices
included), mixed precision per layer group, compute dtypes, and bad names."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from experiments.cli import main
from hwprofiles import load_profile
from sim import plan, simulate
from sim.hardware import HardwareModel
from workloads import Op, Tensor, WorkloadError, chain, single
from workloads.formats import get_format
from workloads.precision import parse_precision
from workloads.scenarios import resolve_workload
from workloads.summary import format_sizes
from workloads.zoo import get_model

SQUARE = (4096, 4096)  # 16,777,216 weights = 524,288 blocks of 32 = 65,536 super-blocks of 256


@pytest.mark.parametrize("name, nbytes", [
    ("fp32", 4 * 16_777_216),
    ("fp16", 2 * 16_777_216),
    ("int8", 16_777_216 + 4096 * 2),  # one fp16 scale per output row
    ("int4", 16_777_216 // 2 + 131_072 * 2),  # one fp16 scale per 128 weights
    ("int4-g128", 16_777_216 // 2 + 131_072 * 2),
    ("int4-g32", 16_777_216 // 2 + 524_288 * 2),
    ("fp8", 16_777_216 + 4),  # one fp32 scale per tensor
    ("q4_0", 524_288 * 18),  # 18-byte blocks of 32: 4.5 bits per weight
    ("q4_1", 524_288 * 20),
    ("q5_0", 524_288 * 22),
    ("q5_1", 524_288 * 24),
    ("q8_0", 524_288 * 34),  # 8.5 bits per weight
    ("q2_k", 65_536 * 84),
    ("q3_k", 65_536 * 110),
    ("q4_k", 65_536 * 144),
    ("q5_k", 65_536 * 176),
    ("q6_k", 65_536 * 210),  # 6.5625 bits per weight
    # AWQ: 4-bit payload + per 128 inputs of each output an fp16 scale and a 4-bit zero point
    ("awq-g128", 16_777_216 // 2 + 4096 * 32 * (2 + 0.5)),
    ("awq-g64", 16_777_216 // 2 + 4096 * 64 * (2 + 0.5)),
    # GPTQ: as AWQ plus an int32 group index per input column
    ("gptq-g128", 16_777_216 // 2 + 4096 * 32 * (2 + 0.5) + 4096 * 4),
])
def test_bytes_of_a_4096_square_matrix(name, nbytes):
    assert get_format(name).nbytes(SQUARE) == nbytes
    assert Tensor("w", SQUARE, name).nbytes == nbytes


def test_int4_g128_is_not_half_a_byte_per_weight():
    assert get_format("int4-g128").bits_per_weight() == 4.125
    assert get_format("q4_0").bits_per_weight() == 4.5
    assert get_format("q8_0").bits_per_weight() == 8.5
    assert get_format("q6_k").bits_per_weight() == 6.5625
    assert get_format("awq-g128").bits_per_weight() == 4.15625


def test_rows_are_padded_to_whole_blocks_and_gptq_counts_its_index():
    # 3 rows of 40 weights: 2 blocks of 32 per row (24 padding weights per row)
    assert get_format("q4_0").nbytes((3, 40)) == 3 * 2 * 18
    # Llama-2-7B down_proj (out 4096, in 11008 = 86 groups of 128)
    assert get_format("gptq-g128").nbytes((4096, 11008)) == (
        4096 * 11008 // 2 + 4096 * 86 * 2.5 + 11008 * 4)
    # flat groups (the original int4 model) do not pad rows
    assert get_format("int4").nbytes((3, 40)) == 60 + 1 * 2


def test_one_dimensional_tensors_stay_fp16_in_quantized_models():
    ops = [Op("l0", "linear", 2 * 64 * 64, (Tensor("m/w", (64, 64)), Tensor("m/b", (64,))))]
    m = chain("m", ops).with_dtype("q4_0")
    assert m.tensors["m/w"].dtype == "q4_0" and m.tensors["m/b"].dtype == "fp16"
    assert m.weight_bytes == 64 * 2 * 18 + 64 * 2
    assert chain("m", ops).with_dtype("fp32").tensors["m/b"].dtype == "fp32"


def test_mixed_precision_per_layer_group_on_gpt2():
    m = get_model("gpt2", "q4_0,lm_head=q8_0")
    t = m.tensors
    # the tied wte table serves the LM head: it takes the lm_head format (as llama.cpp does)
    assert t["gpt2/transformer.wte.weight"].dtype == "q8_0"
    assert t["gpt2/transformer.wte.weight"].nbytes == 50257 * 24 * 34
    assert t["gpt2/transformer.h.0.attn.c_attn.weight"].dtype == "q4_0"
    assert t["gpt2/transformer.h.0.attn.c_attn.weight"].nbytes == 2304 * 24 * 18
    assert t["gpt2/transformer.h.0.mlp.c_fc.weight"].dtype == "q4_0"
    assert t["gpt2/transformer.wpe.weight"].dtype == "q4_0"  # embeddings group follows base
    ops = {op.name: op.dtype for op in m.ops}
    assert ops["lm_head"] == "q8_0" and ops["transformer.h.3.mlp.c_proj"] == "q4_0"
    # every tensor in the base format except the table: exactly the table's difference
    plain = get_model("gpt2", "q4_0")
    diff = 50257 * 24 * (34 - 18)
    assert m.weight_bytes - plain.weight_bytes == diff
    both = get_model("gpt2", "q4_0,attention=q8_0,ffn=q8_0,embeddings=q8_0,lm_head=q8_0")
    assert both.weight_bytes == get_model("gpt2", "q8_0").weight_bytes


def test_precision_names_are_canonical():
    assert parse_precision("q4_0,lm_head=q4_0").name == "q4_0"
    assert (parse_precision("q4_0, lm_head=q6_k, embeddings=q8_0").name
            == "q4_0,embeddings=q8_0,lm_head=q6_k")
    assert parse_precision({"base": "fp16", "ffn": "awq-g128"}).name == "fp16,ffn=awq-g128"
    assert get_model("gpt2", "q4_0,lm_head=q4_0").weight_bytes == \
        get_model("gpt2", "q4_0").weight_bytes


@pytest.mark.parametrize("spec, words", [
    ("q4_z", ["q4_z", "q4_0", "awq-gN"]),
    ("awq-g100", ["100", "128"]),
    ("q4_0,head=q8_0", ["head", "lm_head", "attention"]),
    ("q4_0,lm_head", ["GROUP=FORMAT"]),
    ("lm_head=q8_0", ["base format"]),
    ("q4_0,ffn=q8_0,ffn=q4_0", ["twice"]),
    ("", ["format name"]),
])
def test_bad_precisions_name_the_valid_choices(spec, words):
    with pytest.raises(WorkloadError) as exc:
        get_model("gpt2", spec)
    for w in words:
        assert w in str(exc.value)


def test_format_table_of_a_model_matches_building_it_in_each_format():
    m = get_model("mobilenetv2")
    sizes = {f.format: f for f in format_sizes(m)}
    for name in ("fp16", "int4", "q4_0", "q6_k", "awq-g128", "gptq-g128", "fp8"):
        assert sizes[name].weight_bytes == get_model("mobilenetv2", name).weight_bytes, name
    assert sizes["q4_k"].family == "k-quant" and sizes["q4_0"].family == "q4_0"


def test_models_show_prints_bytes_per_format_and_per_group():
    r = CliRunner().invoke(main, ["models", "show", "gpt2", "--dtype", "q4_0,lm_head=q8_0"])
    assert r.exit_code == 0, r.output
    assert "weight bytes per format" in r.output and "gptq-g128" in r.output
    assert "(70,171,824)" in r.output  # gpt2 in q4_0
    assert "lm_head" in r.output and "q8_0" in r.output


def test_compute_dtype_sets_the_peak_rate(toy_profile):
    hw = HardwareModel(toy_profile)
    assert get_format("q4_0").compute_dtype == "fp16" and get_format("int4").compute_dtype == "int4"
    assert toy_profile.gpu.flops_for("fp8") == toy_profile.gpu.flops_for("fp16")
    fp8 = load_profile("snapdragon-8-gen-3", ["gpu.peak_flops.fp8=11 TFLOPS"])
    assert fp8.gpu.flops_for("fp8") == 11e12
    assert "gpu.peak_flops.fp8" not in toy_profile.to_dict()  # absent: profile digests unchanged
    assert hw.profile is toy_profile


def test_wider_int8_beats_q4_0_where_int8_has_its_own_peak():
    """HAQA's 'INT8 can beat INT4' effect from the hardware alone: a compute-bound prefill on a
    GPU with int8 tensor cores (Jetson AGX Orin: 85 int8 TOPS vs 10.6 fp16 TFLOPS) runs int8
    kernels at the int8 rate, while q4_0 kernels dequantize to fp16. (The Adreno q4_0-vs-q8_0
    effect needs the runtime profile's per-format efficiency.)"""
    prof = load_profile("jetson-agx-orin")
    lat = {}
    for fmt in ("int8", "q4_0"):
        wl = resolve_workload("gpt2-x3", fmt)  # 128-token inferences, weights kept resident
        lat[fmt] = simulate(plan("preload", wl, prof), prof, record_trace=False).metrics
    assert lat["int8"].weight_bytes > 1.7 * lat["q4_0"].weight_bytes
    assert lat["int8"].warm_latency_s < 0.5 * lat["q4_0"].warm_latency_s
    # memory-bound decode on the same GPU: fewer bytes win
    dec = {}
    for fmt in ("int8", "q4_0"):
        wl = resolve_workload("gpt2-p1-d16", fmt)
        dec[fmt] = simulate(plan("preload", wl, prof), prof, record_trace=False).metrics
    assert dec["q4_0"].warm_latency_s < dec["int8"].warm_latency_s


def test_group_size_override_still_counts_flat_groups():
    t = replace(Tensor("w", (64, 64), "int8"), group_size=32)
    assert t.scale_count == 128 and t.nbytes == 4096 + 128 * 2


def test_mixed_precision_runs_end_to_end(toy_profile):
    wl = single(get_model("gpt2", "q4_0,lm_head=q8_0", tokens=4))
    m = simulate(plan("pipeline", wl, toy_profile), toy_profile, record_trace=False).metrics
    assert m.feasible and m.weight_bytes == wl.weight_bytes
    assert m.flash_bytes_read >= wl.weight_bytes


def _decode_step_s(fmt: str, runtime: str) -> float:
    from hwprofiles.loader import load_runtime

    prof = load_profile("snapdragon-8-gen-3")
    rt = load_runtime(runtime)
    wl = resolve_workload("llama-3.2-1b-p4-d2", fmt)
    m = simulate(plan("preload", wl, prof, None, rt), prof, runtime=rt, record_trace=False).metrics
    return m.warm_latency_s, m.meta.get("runtime_unstated_formats")


def test_runtime_profile_makes_the_wider_format_faster():
    """The Adreno effect (qualcomm GenieX #1225): llama.cpp's decode speed clusters by format
    family, not bit width. The hardware alone orders formats by bytes; llama.cpp-opencl's
    per-dtype GEMV efficiencies (q4_0 keyed as int4, q8_0 as int8) bring q4_0 and q8_0
    together; a runtime that states the k-quant family ~25% slower makes 8.5-bit q8_0 faster
    than 4.5-bit q4_k."""
    ideal = {f: _decode_step_s(f, "ideal")[0] for f in ("q8_0", "q4_0", "q4_k")}
    assert ideal["q4_0"] * 1.5 < ideal["q8_0"] and ideal["q4_k"] < ideal["q8_0"]
    lcpp = {f: _decode_step_s(f, "llama.cpp-opencl")[0] for f in ("q8_0", "q4_0")}
    assert lcpp["q8_0"] / lcpp["q4_0"] < 1.15 < ideal["q8_0"] / ideal["q4_0"]
    kq = str(Path(__file__).parent / "data" / "llama-cpp-kquants.yaml")
    wide, narrow = _decode_step_s("q8_0", kq)[0], _decode_step_s("q4_k", kq)[0]
    assert get_format("q8_0").bits_per_weight() > 1.8 * get_format("q4_k").bits_per_weight()
    assert wide < narrow
    # the shipped llama.cpp profile states the k-quant GEMV (GenieX: ~25% slower than q8_0)
    shipped = {f: _decode_step_s(f, "llama.cpp-opencl")[0] for f in ("q8_0", "q4_k")}
    assert shipped["q8_0"] < shipped["q4_k"]
    # a quantized format the runtime states nothing for is flagged, not guessed
    _, note = _decode_step_s("q6_k", "llama.cpp-opencl")
    assert note is not None and "q6_k (matmul)" in note
    assert _decode_step_s("q4_0", "llama.cpp-opencl")[1] is None
    assert _decode_step_s("q6_k", "ideal")[1] is None


def test_runtime_keys_of_formats():
    assert get_format("int4").runtime_keys == ("int4",)
    assert get_format("fp16").runtime_keys == ("fp16",)
    assert get_format("q4_0").runtime_keys == ("q4_0", "int4")
    assert get_format("q4_k").runtime_keys == ("k-quant", "int4")
    assert get_format("q8_0").runtime_keys == ("q8_0", "int8")
    assert get_format("awq-g64").runtime_keys == ("awq", "int4")
    assert get_format("q6_k").runtime_keys == ("k-quant",)
    assert get_format("fp8").runtime_keys == ("fp8",)
    from hwprofiles.runtime import FORMAT_KEYS

    families = {get_format(f).family for f in ("fp8", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0",
                                                "q4_k", "awq-g128", "gptq-g128")}
    assert families == set(FORMAT_KEYS)  # the runtime schema's keys are the format families
