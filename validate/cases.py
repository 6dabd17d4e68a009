"""The schedules replayed for calibration and for the held-out error report.

Small synthetic models stand in for real networks (so a replay takes well under a second on a
CPU OpenCL device): a conv-net chain, an MLP and a two-block transformer-style chain (small
kernels and loads next to large ones, so per-step costs are pinned down) for calibration; a ResNet-style net with skip
connections and a MobileNet-style depthwise/pointwise chain held out for the report. FLOPs are
set relative to the device so that compute and weight streaming are of the same order
(`intensity` = FLOPs per weight byte of a conv layer), and the models are scaled by `size`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from hwprofiles.schema import HardwareProfile
from sim.policies import plan
from sim.policies.baselines import activation_peak  # noqa: F401  (re-exported for callers)
from sim.schedule import Schedule
from workloads import Model, Op, Tensor, chain, single

MiB = 1 << 20


@dataclass(frozen=True)
class Case:
    """One schedule to replay: model, policy, budget kind, load path and destination."""

    model: str
    policy: str
    budget: str  # "loose" | "tight"
    path: str = "via_buffer"
    dst: str = "texture"

    @property
    def name(self) -> str:
        return f"{self.model}/{self.policy}/{self.budget}/{self.path}/{self.dst}"


def _w(name: str, nbytes: int) -> Tensor:
    elems = max(8, nbytes // 2)
    return Tensor(name, (max(1, elems // 256), 256) if elems >= 256 else (elems,), "fp16")


def _conv(name: str, wbytes: int, intensity: float, act: int, model: str) -> Op:
    return Op(name, "conv", int(wbytes * intensity), (_w(f"{model}/{name}.w", wbytes),
                                                      _w(f"{model}/{name}.b", 512)),
              input_elems=act, output_elems=act)


def build_model(name: str, size: float, intensity: float) -> Model:
    """One of the four synthetic models; `size` scales weight bytes (1.0 ~ 16-24 MiB)."""
    act = max(1024, int(64 * 1024 * size))
    layer = max(64 * 1024, int(2 * MiB * size))
    if name == "convnet":
        sizes = [0.25, 0.5, 0.75, 1, 1, 1.5, 1.5, 2, 2, 1]
        return chain(name, [_conv(f"c{i}", int(layer * s), intensity, act, name)
                            for i, s in enumerate(sizes)])
    if name == "mlp":
        ops = [Op(f"fc{i}", "linear", int(2 * layer * 1.5), (_w(f"{name}/fc{i}.w", int(layer * 3)),),
                  input_elems=act // 16, output_elems=act // 16) for i in range(5)]
        return chain(name, ops)
    if name == "resnetish":
        ops, edges = [], []
        prev = None
        for b in range(4):
            s = [0.5, 1, 1.5, 2][b]
            a = _conv(f"b{b}a", int(layer * s), intensity, act, name)
            c = _conv(f"b{b}b", int(layer * s), intensity, act, name)
            add = Op(f"b{b}add", "add", act, (), input_elems=2 * act, output_elems=act)
            ops += [a, c, add]
            if prev:
                edges += [(prev, a.name), (prev, add.name)]
            edges += [(a.name, c.name), (c.name, add.name)]
            prev = add.name
        fc = Op("fc", "linear", int(2 * layer * 1.0), (_w(f"{name}/fc.w", int(layer * 2)),),
                input_elems=act, output_elems=1000)
        ops.append(fc)
        edges.append((prev, "fc"))
        return Model(name, ops, edges)
    if name == "mobilenetish":
        ops = []
        for i in range(6):
            s = [0.25, 0.5, 0.75, 1, 1.5, 2][i]
            ops.append(Op(f"dw{i}", "depthwise", int(act * 18), (_w(f"{name}/dw{i}.w", 16 * 1024),),
                          input_elems=act, output_elems=act))
            ops.append(_conv(f"pw{i}", int(layer * s), intensity, act, name))
        return chain(name, ops)
    if name == "tinyformer":
        # two transformer-style blocks: tiny norm weights, weightless attention math, linear
        # layers of several sizes -- small kernels and small loads next to large ones
        ops = []
        for b in range(2):
            for op, kind, wb, fl in (("ln1", "norm", 4096, 8 * act), ("qkv", "linear", 1.5, 0),
                                     ("attn", "attention", 0, 24 * act), ("proj", "linear", 0.5, 0),
                                     ("ln2", "norm", 4096, 8 * act), ("up", "linear", 1.0, 0),
                                     ("down", "linear", 1.0, 0)):
                nb = int(wb) if wb >= 4096 else int(layer * wb)
                flops = fl or int(nb * intensity)
                ws = (_w(f"{name}/{b}{op}.w", nb),) if nb else ()
                ops.append(Op(f"{b}{op}", kind, flops, ws, input_elems=act, output_elems=act))
        return chain(name, ops)
    raise ValueError(f"unknown model {name!r}")


CALIBRATION = (
    Case("convnet", "preload", "loose"),
    Case("convnet", "sequential", "tight", "direct"),
    Case("convnet", "pipeline", "tight"),
    Case("mlp", "sequential", "tight", dst="buffer"),
    Case("mlp", "pipeline", "loose", "direct"),
    Case("mlp", "preload", "loose", dst="buffer"),
    Case("tinyformer", "pipeline", "tight"),
    Case("tinyformer", "sequential", "loose", "direct", "buffer"),
)

HELD_OUT = (
    Case("resnetish", "preload", "loose"),
    Case("resnetish", "sequential", "tight"),
    Case("resnetish", "pipeline", "tight"),
    Case("resnetish", "pipeline", "loose", "direct"),
    Case("resnetish", "sequential", "tight", dst="buffer"),
    Case("mobilenetish", "preload", "loose"),
    Case("mobilenetish", "sequential", "tight", "direct"),
    Case("mobilenetish", "pipeline", "tight"),
    Case("mobilenetish", "pipeline", "loose", dst="buffer"),
    Case("mobilenetish", "preload", "loose", "direct", "buffer"),
)


def intensity_for(profile: HardwareProfile) -> float:
    """FLOPs per weight byte that make a conv layer's compute about as long as its streaming."""
    g, t, s = profile.gpu, profile.transfer, profile.storage
    rate = g.flops_for("fp16") * g.compute_efficiency
    stream = 1 / s.read_bandwidth + 1 / t.host_to_gpu_bandwidth + 1 / t.transform_bandwidth
    return max(2.0, rate * stream * 0.5)


def make_schedule(case: Case, profile: HardwareProfile, size: float = 1.0,
                  intensity: float | None = None) -> Schedule:
    """Plan `case` on `profile` (loose budget: all weights + slack; tight: a few layers)."""
    model = build_model(case.model, size, intensity if intensity is not None
                        else intensity_for(profile))
    wl = single(model)
    # the policies put weights in textures on GPUs that prefer them: pick the case's dst
    prof = replace(profile, gpu=replace(profile.gpu, prefers_texture=case.dst == "texture"))
    largest = max(sum(t.nbytes for t in op.weights) for op in model.ops)
    act = max(wl.activation_profile(), default=0)
    if case.budget == "loose":
        budget = 2 * model.weight_bytes + 4 * act + 4 * largest
    else:
        budget = 4 * largest + 4 * act
    opts = {"path": case.path}
    s = plan(case.policy, wl, prof, budget, **opts)
    s.meta["case"] = case.name
    return s
