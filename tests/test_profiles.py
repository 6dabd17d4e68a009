"""The shipped profile library, the loader (extends, --set overrides) and `check` on bad files."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from hwprofiles import ProfileError, check_file, list_profiles, load_profile
from hwprofiles.display import field_rows
from hwprofiles.loader import apply_overrides, builtin_dir
from hwprofiles.schema import FIELDS

GiB = 2**30
EXPECTED = {"snapdragon-8-gen-2", "snapdragon-8-gen-3", "snapdragon-8-gen-3-ufs31",
            "snapdragon-8-elite", "dimensity-9300", "tensor-g3", "jetson-agx-xavier",
            "jetson-agx-orin", "pocl-cpu"}


def base_yaml() -> dict:
    """A complete, valid profile as a raw mapping (the 8 Gen 3 file, without extends, under a
    name of its own: a user file may not pass for a shipped profile)."""
    data = yaml.safe_load((builtin_dir() / "snapdragon-8-gen-3.yaml").read_text())
    data["name"] = "my-phone"
    return data


def write(tmp_path: Path, data, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


# --- the library ---------------------------------------------------------------------------

def test_library_has_every_platform_of_the_issue():
    assert EXPECTED <= set(list_profiles())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_profile_loads_checks_and_is_named_after_its_file(name):
    path = builtin_dir() / f"{name}.yaml"
    assert check_file(str(path)) == []
    p = load_profile(name)
    assert p.name == name == path.stem
    assert "-" in name and name == name.lower() and " " not in name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_number_has_a_source_or_an_estimate(name):
    p = load_profile(name)
    values = p.to_dict()
    for path, kind in FIELDS.items():
        if kind == "text" or (kind.endswith("?") and not values.get(path)):
            continue  # text needs no source; an optional field left out has none
        assert path in p.sources, path
        assert len(p.sources[path].text) > 10, (path, p.sources[path].text)
    assert any(s.estimate for s in p.sources.values())
    assert any(not s.estimate for s in p.sources.values())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_profiles_are_physically_plausible(name):
    p = load_profile(name)
    assert p.dram.app_memory <= p.dram.capacity
    assert p.gpu.max_alloc <= p.dram.capacity
    assert p.gpu.memory_bandwidth <= p.dram.bandwidth * 1.001  # iGPUs share DRAM
    assert p.gpu.flops_for("fp16") >= p.gpu.flops_for("fp32")
    assert p.storage.read_bandwidth < p.dram.bandwidth
    # prefers_texture agrees with which read path the profile makes faster
    faster_texture = p.gpu.texture_read_efficiency > p.gpu.buffer_read_efficiency
    assert p.gpu.prefers_texture == faster_texture


def test_published_adreno_750_image_limits():
    """Adreno 7xx clinfo (llama.cpp #10693): image2d 16384 x 16384, 2048 array layers;
    max allocation 1 GiB (clinfo #92)."""
    g = load_profile("snapdragon-8-gen-3").gpu
    assert (g.image2d_max_width, g.image2d_max_height, g.image2d_array_max_layers) == \
        (16384, 16384, 2048)
    assert g.max_alloc == GiB
    assert g.prefers_texture


def test_published_dram_bandwidths():
    assert load_profile("snapdragon-8-gen-3").dram.bandwidth == 76.8e9  # Qualcomm spec
    assert load_profile("jetson-agx-orin").dram.bandwidth == 204.8e9  # NVIDIA module spec
    assert load_profile("jetson-agx-xavier").dram.bandwidth == 136.5e9  # NVIDIA module spec
    assert load_profile("jetson-agx-orin").dram.capacity == 64 * GiB


def test_published_gpu_rates():
    assert math.isclose(load_profile("jetson-agx-orin").gpu.peak_flops["fp32"], 5.3e12)
    assert math.isclose(load_profile("snapdragon-8-gen-3").gpu.peak_flops["fp32"], 2.77e12)
    assert math.isclose(load_profile("snapdragon-8-gen-2").gpu.peak_flops["fp16"], 4.2e12)
    assert math.isclose(load_profile("tensor-g3").gpu.peak_flops["fp32"], 1.59e12)


def test_mali_limits():
    """Mali G7xx: 65536 x 65536 images, 2048 layers (hardware-facts.md, ArchProbe #10);
    buffers preferred."""
    for name in ("tensor-g3", "dimensity-9300"):
        g = load_profile(name).gpu
        assert (g.image2d_max_width, g.image2d_array_max_layers) == (65536, 2048)
        assert not g.prefers_texture


def test_storage_kinds():
    assert load_profile("tensor-g3").storage.kind == "UFS 3.1"
    assert load_profile("tensor-g3").storage.read_bandwidth == 2.1e9
    assert load_profile("snapdragon-8-gen-2").storage.kind == "UFS 4.0"
    assert "NVMe" in load_profile("jetson-agx-orin").storage.kind
    x = load_profile("jetson-agx-xavier").gpu
    assert not x.prefers_texture and x.buffer_read_efficiency > x.texture_read_efficiency


def test_pocl_cpu_measured_values():
    """hardware-facts.md 'Measured on OpenCL devices': PoCL CPU host->device ~15 GB/s, image
    reads 2.5-3.3 GB/s vs buffer ~18 GB/s, image2d 8192 x 8192, 2048 layers."""
    p = load_profile("pocl-cpu")
    assert p.transfer.host_to_gpu_bandwidth == 15e9
    texture = p.gpu.memory_bandwidth * p.gpu.texture_read_efficiency
    buffer = p.gpu.memory_bandwidth * p.gpu.buffer_read_efficiency
    assert 2.5e9 <= texture <= 3.3e9
    assert math.isclose(buffer, 18e9, rel_tol=0.05)
    assert (p.gpu.image2d_max_width, p.gpu.image2d_max_height,
            p.gpu.image2d_array_max_layers) == (8192, 8192, 2048)
    assert p.gpu.max_alloc in (GiB, 2 * GiB)
    assert not p.gpu.prefers_texture
    assert "fp16" in p.sources["gpu.peak_flops.fp16"].text


def test_estimates_are_flagged():
    p = load_profile("snapdragon-8-gen-3")
    assert p.sources["gpu.peak_flops.fp32"].estimate
    assert not p.sources["dram.bandwidth"].estimate
    rows = {r.path: r for r in field_rows(p)}
    assert rows["gpu.peak_flops.fp32"].estimate and not rows["dram.bandwidth"].estimate
    assert rows["dram.bandwidth"].value == "76.80 GB/s"
    assert rows["storage.request_latency"].value == "27.0 us"
    assert rows["gpu.peak_flops.int4"].value == "-"


# --- extends -------------------------------------------------------------------------------

def test_shipped_derived_profile_changes_only_storage():
    base, ufs31 = load_profile("snapdragon-8-gen-3"), load_profile("snapdragon-8-gen-3-ufs31")
    assert ufs31.extends == "snapdragon-8-gen-3"
    assert ufs31.storage.kind == "eUFS 3.1"
    assert ufs31.storage.read_bandwidth == 2.1e9 and ufs31.storage.max_iops == 100_000
    assert ufs31.storage.request_latency == base.storage.request_latency  # inherited
    assert ufs31.gpu == base.gpu and ufs31.dram == base.dram and ufs31.transfer == base.transfer
    assert ufs31.sources["storage.read_bandwidth"].text.startswith("Samsung eUFS 3.1")
    assert ufs31.sources["gpu.max_alloc"] == base.sources["gpu.max_alloc"]
    assert ufs31.storage_read_time(10**9) > 1.9 * base.storage_read_time(10**9)


def test_extends_user_file_with_relative_parent(tmp_path):
    parent = base_yaml()
    parent["name"] = "my-base"
    write(tmp_path, parent, "my-base.yaml")
    child = {"name": "my-child", "extends": "my-base.yaml",
             "gpu": {"kernel_launch_overhead": {"value": "5 us", "source": "measured"}}}
    path = write(tmp_path, child, "my-child.yaml")
    p = load_profile(str(path))
    assert p.name == "my-child" and p.extends == "my-base.yaml"
    assert math.isclose(p.gpu.kernel_launch_overhead, 5e-6)
    assert p.sources["gpu.kernel_launch_overhead"].text == "measured"
    assert p.gpu.image2d_max_width == 16384
    assert check_file(str(path)) == []


def test_extends_an_override_replaces_the_whole_leaf(tmp_path):
    """An overriding leaf's `source` replaces the parent's `estimate` (no mixed provenance)."""
    child = {"name": "c", "extends": "snapdragon-8-gen-3",
             "storage": {"request_latency": {"value": "40 us", "source": "measured on my phone"}}}
    p = load_profile(str(write(tmp_path, child)))
    src = p.sources["storage.request_latency"]
    assert src.text == "measured on my phone" and not src.estimate


def test_extends_cycle_and_unknown_parent(tmp_path):
    write(tmp_path, {"name": "a", "extends": "b.yaml"}, "a.yaml")
    write(tmp_path, {"name": "b", "extends": "a.yaml"}, "b.yaml")
    with pytest.raises(ProfileError, match="extends itself"):
        load_profile(str(tmp_path / "a.yaml"))
    path = write(tmp_path, {"name": "c", "extends": "no-such-phone"}, "c.yaml")
    problems = check_file(str(path))
    assert len(problems) == 1 and "no-such-phone" in problems[0]
    assert "snapdragon-8-gen-3" in problems[0]  # names the valid choices


def test_extends_must_be_a_name(tmp_path):
    path = write(tmp_path, {"name": "c", "extends": ["a", "b"]})
    assert "extends" in check_file(str(path))[0]


# --- --set overrides -----------------------------------------------------------------------

def test_set_storage_bandwidth():
    p = load_profile("snapdragon-8-gen-3", ["storage.read_bandwidth=2.1GB/s"])
    assert p.storage.read_bandwidth == 2.1e9
    assert "--set storage.read_bandwidth=2.1GB/s" in p.sources["storage.read_bandwidth"].text
    assert p.name != "snapdragon-8-gen-3"  # an overridden profile is never mistaken for it
    assert load_profile("snapdragon-8-gen-3").storage.read_bandwidth == 4.2e9  # no leak


def test_set_several_kinds_of_field():
    p = load_profile("tensor-g3", ["gpu.prefers_texture=true", "storage.queue_depth=32",
                                   "storage.kind=UFS 4.0", "dram.app_memory=3GiB",
                                   "gpu.peak_flops.int4=6.4TFLOPS"])
    assert p.gpu.prefers_texture is True
    assert p.storage.queue_depth == 32
    assert p.storage.kind == "UFS 4.0"
    assert p.dram.app_memory == 3 * GiB
    assert p.gpu.flops_for("int4") == 6.4e12


@pytest.mark.parametrize("override,match", [
    ("storage.read_bandwidth", "key=value"),
    ("storage.read_bandwith=2GB/s", "unknown profile field"),
    ("storage.read_bandwidth=2GB", "storage.read_bandwidth"),
    ("storage.read_bandwidth=-2GB/s", "positive"),
    ("dram.app_memory=64GiB", "at most dram.capacity"),
])
def test_bad_set_is_a_profile_error(override, match):
    with pytest.raises(ProfileError, match=match):
        load_profile("snapdragon-8-gen-3", [override])


def test_apply_overrides_does_not_mutate_its_input():
    data = base_yaml()
    before = yaml.safe_dump(data)
    apply_overrides(data, ["storage.queue_depth=2"])
    assert yaml.safe_dump(data) == before


# --- check: every kind of malformed input, every problem at once ---------------------------

def problems_of(tmp_path: Path, data) -> list[str]:
    return check_file(str(write(tmp_path, data)))


def test_check_valid_file(tmp_path):
    assert problems_of(tmp_path, base_yaml()) == []


def test_check_missing_fields(tmp_path):
    data = base_yaml()
    del data["storage"]["read_bandwidth"]
    del data["gpu"]["image2d_max_width"]
    del data["transfer"]
    probs = problems_of(tmp_path, data)
    assert any(p.startswith("storage.read_bandwidth:") and "missing" in p for p in probs)
    assert any(p.startswith("gpu.image2d_max_width:") and "missing" in p for p in probs)
    assert sum(p.startswith("transfer.") for p in probs) == 4
    assert len(probs) == 6


def test_check_wrong_units(tmp_path):
    data = base_yaml()
    data["storage"]["read_bandwidth"]["value"] = "4.2 GB"  # a size, not a bandwidth
    data["storage"]["request_latency"]["value"] = "27 parsecs"
    data["gpu"]["max_alloc"]["value"] = "1 GiB/s"
    data["transfer"]["host_to_gpu_bandwidth"]["value"] = 20  # bare number, no unit
    probs = problems_of(tmp_path, data)
    assert len(probs) == 4, probs
    by_field = {p.split(":")[0]: p for p in probs}
    assert "bandwidth" in by_field["storage.read_bandwidth"] and "'4.2 GB'" in by_field["storage.read_bandwidth"]
    assert "parsecs" in by_field["storage.request_latency"]
    assert "size" in by_field["gpu.max_alloc"]
    assert "with its unit" in by_field["transfer.host_to_gpu_bandwidth"]


def test_check_negative_and_zero_values(tmp_path):
    data = base_yaml()
    data["storage"]["read_bandwidth"]["value"] = "-4.2 GB/s"
    data["dram"]["bandwidth"]["value"] = "0 GB/s"
    data["gpu"]["peak_flops"]["fp16"]["value"] = "0 TFLOPS"
    data["gpu"]["compute_efficiency"]["value"] = 1.5
    data["storage"]["queue_depth"]["value"] = 0
    data["gpu"]["kernel_launch_overhead"]["value"] = "-1 us"
    probs = problems_of(tmp_path, data)
    fields = sorted(p.split(":")[0] for p in probs)
    assert fields == sorted(["storage.read_bandwidth", "dram.bandwidth", "gpu.peak_flops.fp16",
                             "gpu.compute_efficiency", "storage.queue_depth",
                             "gpu.kernel_launch_overhead"]), probs
    assert all("positive" in p or "fraction" in p or "non-negative" in p for p in probs)


def test_check_unknown_keys(tmp_path):
    data = base_yaml()
    data["storage"]["colour"] = "blue"
    data["gpu"]["peak_flops"]["bf16"] = {"value": "11 TFLOPS", "source": "x"}
    data["vendor"] = "acme"
    data["dram"]["bandwidth"]["sauce"] = "typo of source"
    probs = problems_of(tmp_path, data)
    assert len(probs) == 4, probs
    joined = "\n".join(probs)
    for path in ("storage.colour", "gpu.peak_flops.bf16", "vendor", "dram.bandwidth"):
        assert path in joined
    assert "read_bandwidth" in next(p for p in probs if p.startswith("storage.colour"))


def test_check_missing_source(tmp_path):
    data = base_yaml()
    data["storage"]["queue_depth"] = {"value": 8}
    data["dram"]["capacity"] = "16 GiB"  # bare value, no provenance
    probs = problems_of(tmp_path, data)
    assert len(probs) == 2
    assert any("storage.queue_depth" in p and "source or an estimate" in p for p in probs)
    assert any("dram.capacity" in p and "{value" in p for p in probs)


def test_check_wrong_types(tmp_path):
    data = base_yaml()
    data["gpu"]["prefers_texture"]["value"] = "yes please"
    data["gpu"]["image2d_max_width"]["value"] = 16384.5
    data["gpu"]["peak_flops"] = 5
    data["name"] = ""
    probs = problems_of(tmp_path, data)
    fields = sorted(p.split(":")[0] for p in probs)
    assert fields == ["gpu.image2d_max_width", "gpu.peak_flops", "gpu.prefers_texture",
                      "name"], probs


def test_check_inconsistent_memory(tmp_path):
    data = base_yaml()
    data["dram"]["app_memory"]["value"] = "32 GiB"
    data["gpu"]["max_alloc"]["value"] = "20 GiB"
    probs = problems_of(tmp_path, data)
    assert sorted(p.split(":")[0] for p in probs) == ["dram.app_memory", "gpu.max_alloc"]


def test_check_malformed_yaml(tmp_path):
    probs = problems_of(tmp_path, "name: x\nstorage: {read_bandwidth: [1, 2\n")
    assert len(probs) == 1 and "not valid YAML" in probs[0] and "line" in probs[0]


@pytest.mark.parametrize("text,found", [("- a\n- b\n", "list"), ("just text\n", "str"),
                                        ("", "NoneType")])
def test_check_non_mapping(tmp_path, text, found):
    probs = problems_of(tmp_path, text)
    assert len(probs) == 1 and "mapping" in probs[0] and found in probs[0]


def test_check_missing_file(tmp_path):
    probs = check_file(str(tmp_path / "absent.yaml"))
    assert len(probs) == 1 and "does not exist" in probs[0]


def test_check_reports_all_kinds_at_once(tmp_path):
    data = base_yaml()
    del data["storage"]["read_bandwidth"]  # missing
    data["dram"]["bandwidth"]["value"] = "76.8 GHz"  # wrong unit
    data["gpu"]["memory_bandwidth"]["value"] = "-1 GB/s"  # negative
    data["transfer"]["turbo"] = True  # unknown key
    probs = problems_of(tmp_path, data)
    fields = sorted(p.split(":")[0] for p in probs)
    assert fields == ["dram.bandwidth", "gpu.memory_bandwidth", "storage.read_bandwidth",
                      "transfer.turbo"], probs


def test_load_profile_raises_with_every_problem(tmp_path):
    data = base_yaml()
    data["dram"]["bandwidth"]["value"] = "fast"
    data["gpu"]["max_alloc"]["value"] = "-1 GiB"
    with pytest.raises(ProfileError) as info:
        load_profile(str(write(tmp_path, data)))
    assert len(info.value.problems) == 2
    assert "2 problem(s)" in str(info.value)
