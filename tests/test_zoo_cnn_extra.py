"""ResNet-18, GoogLeNet, Inception-v3 and ConvNeXt-T in the zoo: exact torchvision parameter
counts, fp32 sizes against the LiteRT .tflite files, graph structure, FLOPs, and the CLI."""

from __future__ import annotations

import json
from collections import Counter

import networkx as nx
import pytest
from click.testing import CliRunner

from experiments.cli import main
from workloads.zoo import ZOO, get_model, list_models

# name -> (exact parameter count, where it is published)
EXACT: dict[str, tuple[int, str]] = {
    "resnet18": (11_689_512, "torchvision resnet18 model card"),
    "googlenet": (6_624_904, "torchvision googlenet model card (no aux classifiers)"),
    "inception-v3": (23_834_568, "torchvision inception_v3 card 27,161,264 minus AuxLogits"),
    "convnext-tiny": (28_589_128, "torchvision convnext_tiny model card"),
}
# litert-community .tflite file sizes (fp32), MB = 1e6 bytes. A .tflite holds the weights
# with batch norms folded into the convs (one bias of cout per BN instead of scale + shift:
# at most 0.05% fewer values here) plus the flatbuffer's graph, op and tensor metadata (tens
# to a few hundred kB), so the zoo's fp32 weight bytes sit within 2% of the file: measured
# -0.19% to +0.02%.
TFLITE_MB = {"resnet18": 46.75, "googlenet": 26.51, "inception-v3": 95.52,
             "convnext-tiny": 114.43}
NEW = list(EXACT)


@pytest.fixture(scope="module")
def models():
    return {name: get_model(name) for name in NEW}


def test_registered_as_cnns_after_the_existing_ones():
    names = list_models()
    assert names[0] == "resnet50"  # error messages list the zoo from its first entry
    for name in NEW:
        assert ZOO[name].family == "cnn"
    assert names.index("yolov4-tiny") < min(names.index(n) for n in NEW)


@pytest.mark.parametrize("name", NEW)
def test_exact_parameter_counts(models, name):
    count, source = EXACT[name]
    m = models[name]
    assert m.param_count == count, source
    assert m.published_params == count
    assert m.family == "cnn" and "arXiv:" in m.source and "torchvision" in m.source
    assert f"{count:,}" in m.source and m.description


def test_inception_v3_aux_head_arithmetic():
    # AuxLogits: conv0 768->128 1x1 + BN, conv1 128->768 5x5 + BN, fc 768->1000 with bias
    aux = (128 * 768 + 2 * 128) + (768 * 128 * 5 * 5 + 2 * 768) + (768 * 1000 + 1000)
    assert aux == 3_326_696
    assert get_model("inception-v3").param_count == 27_161_264 - aux


@pytest.mark.parametrize("name", NEW)
def test_fp32_bytes_match_tflite_file(name):
    m = get_model(name, "fp32")
    assert m.weight_bytes == 4 * m.param_count
    assert m.weight_bytes / 1e6 == pytest.approx(TFLITE_MB[name], rel=0.02)


@pytest.mark.parametrize("name", NEW)
def test_graph_is_a_dag_ending_in_the_classifier(models, name):
    m = models[name]
    assert nx.is_directed_acyclic_graph(m.graph)
    assert nx.is_weakly_connected(m.graph)
    sinks = [n for n in m.graph if m.graph.out_degree(n) == 0]
    assert sinks == [m.order[-1]]
    head = m.op(m.order[-1])
    assert head.kind == "linear" and head.output_elems == 1000
    assert head.weights[0].shape[0] == 1000
    assert all(t.startswith(f"{name}/") for t in m.tensors)
    assert len({op.name for op in m.ops}) == len(m.ops)


@pytest.mark.parametrize("name", NEW)
def test_classes_option(name):
    m = get_model(name, classes=10)
    assert m.op(m.order[-1]).output_elems == 10


def test_op_structure():
    r18 = Counter(op.kind for op in get_model("resnet18").ops)
    # 1 stem + 8 blocks x 2 convs + 3 downsamples; adds: one per block
    assert r18["conv"] == r18["batchnorm"] == 20 and r18["add"] == 8 and r18["linear"] == 1
    g = get_model("googlenet")
    gk = Counter(op.kind for op in g.ops)
    assert gk["conv"] == gk["batchnorm"] == 57 and gk["concat"] == 9
    # the torchvision "5x5" branch is a 3x3 conv
    assert g.op("inception3a.branch3.1.conv").weights[0].shape == (32, 16, 3, 3)
    iv3 = get_model("inception-v3")
    ik = Counter(op.kind for op in iv3.ops)
    assert ik["conv"] == ik["batchnorm"] == 94
    assert ik["concat"] == 11 + 2 * 2  # one per block, plus Mixed_7b/7c's split 3x3 branches
    assert iv3.op("Mixed_6b.branch7x7_2.conv").weights[0].shape == (128, 128, 1, 7)
    assert iv3.op("Mixed_7c.concat").output_elems == 2048 * 8 * 8
    assert not any("AuxLogits" in t for t in iv3.tensors)
    cx = get_model("convnext-tiny")
    ck = Counter(op.kind for op in cx.ops)
    assert ck["mul"] == ck["add"] == 18 and ck["conv"] == 1 + 3 + 18
    assert ck["layernorm"] == 1 + 3 + 18 + 1 and ck["linear"] == 2 * 18 + 1
    assert cx.tensors["convnext-tiny/features.5.8.layer_scale"].shape == (384, 1, 1)
    assert cx.op("features.1.0.block.0").weights[0].shape == (96, 1, 7, 7)


def test_flop_convention_against_published_gmacs():
    # torchvision's "GFLOPS" are multiply-adds; the zoo counts 2 FLOPs per MAC plus biases,
    # norms and activations, so ResNet-50 is 4.11 GMACs against 4.09 published
    r50 = get_model("resnet50").total_flops / 2e9
    assert r50 == pytest.approx(4.09, rel=0.01)
    # ResNet-18 at 224: 1.81 (torchvision) / 1.82 GMACs; zoo 1.818
    assert get_model("resnet18").total_flops / 2e9 == pytest.approx(1.82, rel=0.03)
    assert get_model("resnet18").total_flops / 2e9 == pytest.approx(1.81, rel=0.03)
    # torchvision cards: GoogLeNet 1.50, Inception-v3 5.71, ConvNeXt-T 4.46 GMACs
    for name, gmacs in (("googlenet", 1.50), ("inception-v3", 5.71), ("convnext-tiny", 4.46)):
        assert get_model(name).total_flops / 2e9 == pytest.approx(gmacs, rel=0.03), name


def test_image_size_option():
    assert get_model("inception-v3").op("Mixed_5b.concat").output_elems == 256 * 35 * 35
    small = get_model("resnet18", image=112)
    assert small.total_flops < get_model("resnet18").total_flops / 3.5
    assert small.param_count == 11_689_512


@pytest.mark.parametrize("name", NEW)
def test_cli_run_preload(name):
    r = CliRunner().invoke(main, ["run", "--model", name, "--profile", "snapdragon-8-gen-3",
                                  "--policy", "preload", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["feasible"] is True and d["model"] == name
    assert d["weight_bytes"] == get_model(name).weight_bytes
    assert d["latency_s"] > 0


def test_cli_models_list_shows_them():
    r = CliRunner().invoke(main, ["models", "list"])
    assert r.exit_code == 0, r.output
    for name in NEW:
        assert name in r.output


@pytest.mark.parametrize("name,image", [("inception-v3", 32), ("googlenet", 8),
                                        ("convnext-tiny", 16)])
def test_an_image_too_small_for_the_architecture_is_refused(name, image):
    from workloads.model import WorkloadError

    with pytest.raises(WorkloadError, match="too small for this model"):
        get_model(name, image=image)
