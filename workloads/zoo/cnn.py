"""Convolutional networks: ResNet-50/152 (torchvision, v1.5), MobileNetV2 (torchvision),
YOLOv4 (darknet yolov4.cfg: CSPDarknet53 + SPP + PANet + three YOLO heads, 80 classes) and
YOLOv4-tiny (darknet yolov4-tiny.cfg: CSPDarknet53-tiny + two YOLO heads, 80 classes).

Every conv and batch norm is its own op with its own weights (BN scale and shift count as
parameters, running statistics do not, as in torchvision); activations are fused into the op
before them; residual adds and route concatenations are weightless ops.
"""

from __future__ import annotations

from workloads.model import Model
from workloads.zoo.layers import Act, GraphBuilder, conv_out


def _conv_bn(b: GraphBuilder, x: Act, conv: str, bn: str, cout: int, k: int, stride: int = 1,
             groups: int = 1, act: str = "relu") -> Act:
    x = b.conv2d(x, conv, cout, k, stride, groups=groups, bias=False)
    return b.norm(x, bn, "batchnorm", channel_axis=0, act=act)


def resnet(name: str, blocks: tuple[int, int, int, int], dtype: str = "fp16",
           image: int = 224, classes: int = 1000) -> GraphBuilder:
    """Bottleneck ResNet (stride on the 3x3 conv, torchvision v1.5) built op by op."""
    b = GraphBuilder(name, dtype)
    x = _conv_bn(b, Act(None, (3, image, image)), "conv1", "bn1", 64, 7, 2)
    c, h, w = x.shape
    x = b.elementwise("maxpool", "maxpool", [x], (c, conv_out(h, 3, 2, 1), conv_out(w, 3, 2, 1)))
    cin = 64
    for stage, (n, width) in enumerate(zip(blocks, (64, 128, 256, 512), strict=True), start=1):
        for i in range(n):
            p = f"layer{stage}.{i}"
            stride = 2 if (i == 0 and stage > 1) else 1
            y = _conv_bn(b, x, f"{p}.conv1", f"{p}.bn1", width, 1)
            y = _conv_bn(b, y, f"{p}.conv2", f"{p}.bn2", width, 3, stride)
            y = _conv_bn(b, y, f"{p}.conv3", f"{p}.bn3", width * 4, 1, act="")
            if i == 0:
                x = _conv_bn(b, x, f"{p}.downsample.0", f"{p}.downsample.1", width * 4, 1,
                             stride, act="")
            x = b.add(f"{p}.add", x, y)
            cin = width * 4
    x = b.elementwise("avgpool", "avgpool", [x], (cin,))
    b.linear(x, "fc", classes)
    return b


def resnet50(dtype: str = "fp16", image: int = 224) -> Model:
    """ResNet-50: 25,557,032 parameters (torchvision resnet50 IMAGENET1K_V1 model card)."""
    return resnet("resnet50", (3, 4, 6, 3), dtype, image).build(
        family="cnn", published_params=25_557_032,
        source="He et al. 2016, arXiv:1512.03385; torchvision resnet50 (25,557,032 params)",
        description=f"ResNet-50 v1.5, {image}x{image} image")


def resnet152(dtype: str = "fp16", image: int = 224) -> Model:
    """ResNet-152: 60,192,808 parameters (torchvision resnet152 model card)."""
    return resnet("resnet152", (3, 8, 36, 3), dtype, image).build(
        family="cnn", published_params=60_192_808,
        source="He et al. 2016, arXiv:1512.03385; torchvision resnet152 (60,192,808 params)",
        description=f"ResNet-152 v1.5, {image}x{image} image")


def mobilenetv2(dtype: str = "fp16", image: int = 224, classes: int = 1000) -> Model:
    """MobileNetV2 (width 1.0): 3,504,872 parameters (torchvision mobilenet_v2 model card)."""
    b = GraphBuilder("mobilenetv2", dtype)
    x = _conv_bn(b, Act(None, (3, image, image)), "features.0.0", "features.0.1", 32, 3, 2,
                 act="relu6")
    cin, idx = 32, 1
    for t, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)):
        for i in range(n):
            p, stride, hidden = f"features.{idx}.conv", (s if i == 0 else 1), cin * t
            y, j = x, 0
            if t != 1:
                y = _conv_bn(b, y, f"{p}.0.0", f"{p}.0.1", hidden, 1, act="relu6")
                j = 1
            y = _conv_bn(b, y, f"{p}.{j}.0", f"{p}.{j}.1", hidden, 3, stride, groups=hidden,
                         act="relu6")
            y = _conv_bn(b, y, f"{p}.{j + 1}", f"{p}.{j + 2}", c, 1, act="")
            x = b.add(f"features.{idx}.add", x, y) if stride == 1 and cin == c else y
            cin, idx = c, idx + 1
    x = _conv_bn(b, x, "features.18.0", "features.18.1", 1280, 1, act="relu6")
    x = b.elementwise("avgpool", "avgpool", [x], (1280,))
    b.linear(x, "classifier.1", classes)
    return b.build(family="cnn", published_params=3_504_872,
                   source="Sandler et al. 2018, arXiv:1801.04381; torchvision mobilenet_v2 "
                          "(3,504,872 params)",
                   description=f"MobileNetV2 1.0, {image}x{image} image")


class _Darknet:
    """Numbered darknet layers (conv = conv + BN + activation), so routes read like the cfg."""

    def __init__(self, b: GraphBuilder):
        self.b = b
        self.layers: list[Act] = []

    def conv(self, cout: int, k: int, stride: int = 1, act: str = "mish") -> Act:
        i = len(self.layers)
        x = self.b.conv2d(self.layers[-1], f"conv{i}", cout, k, stride, bias=False)
        self.layers.append(self.b.norm(x, f"bn{i}", "batchnorm", channel_axis=0, act=act))
        return self.layers[-1]

    def head(self, cout: int) -> Act:
        """Final linear 1x1 conv with bias and no batch norm (the YOLO detection outputs)."""
        i = len(self.layers)
        self.layers.append(self.b.conv2d(self.layers[-1], f"conv{i}", cout, 1))
        return self.layers[-1]

    def at(self, ref: int) -> Act:
        return self.layers[ref] if ref >= 0 else self.layers[len(self.layers) + ref]

    def route(self, *refs: int) -> Act:
        i = len(self.layers)
        parts = [self.at(r) for r in refs]
        out = parts[0] if len(parts) == 1 else self.b.concat(f"route{i}", parts)
        self.layers.append(out)
        return out

    def shortcut(self, ref: int) -> Act:
        i = len(self.layers)
        self.layers.append(self.b.add(f"shortcut{i}", self.layers[-1], self.at(ref)))
        return self.layers[-1]

    def pool(self, k: int, stride: int = 1) -> Act:
        """Darknet maxpool (padding k - 1): stride 1 keeps the size, stride 2 halves it."""
        i = len(self.layers)
        x = self.layers[-1]
        c, h, w = x.shape
        shape = (c, (h - 1) // stride + 1, (w - 1) // stride + 1)
        self.layers.append(self.b.elementwise(f"maxpool{i}", "maxpool", [x], shape))
        return self.layers[-1]

    def route_half(self) -> Act:
        """[route] groups=2 group_id=1: the second half of the channels (a view, no op)."""
        c, h, w = self.layers[-1].shape
        self.layers.append(Act(self.layers[-1].src, (c // 2, h, w)))
        return self.layers[-1]

    def upsample(self) -> Act:
        i = len(self.layers)
        c, h, w = self.layers[-1].shape
        self.layers.append(self.b.elementwise(f"upsample{i}", "upsample", [self.layers[-1]],
                                              (c, 2 * h, 2 * w)))
        return self.layers[-1]

    def csp_stage(self, cout: int, n: int, first: bool = False) -> None:
        """CSPDarknet53 downsample stage with `n` residual units (yolov4.cfg layout)."""
        half = cout if first else cout // 2
        self.conv(cout, 3, 2)
        self.conv(half, 1)
        self.route(-2)
        start = len(self.layers)
        self.conv(half, 1)
        for _ in range(n):
            self.conv(cout // 2 if first else half, 1)
            self.conv(half, 3)
            self.shortcut(-3)
        self.conv(half, 1)
        self.route(-1, start - 2)
        self.conv(cout, 1)


def yolov4(dtype: str = "fp16", image: int = 608, classes: int = 80) -> Model:
    """YOLOv4 (darknet yolov4.cfg), built layer by layer with the cfg's route/shortcut wiring."""
    b = GraphBuilder("yolov4", dtype)
    d = _Darknet(b)
    d.layers.append(Act(None, (3, image, image)))  # index shift: cfg layer i is d.layers[i+1]
    d.conv(32, 3)
    d.csp_stage(64, 1, first=True)
    d.csp_stage(128, 2)
    d.csp_stage(256, 8)
    c3 = len(d.layers) - 1
    d.csp_stage(512, 8)
    c4 = len(d.layers) - 1
    d.csp_stage(1024, 4)
    out = 3 * (classes + 5)
    # neck: SPP
    d.conv(512, 1, act="leaky")
    d.conv(1024, 3, act="leaky")
    d.conv(512, 1, act="leaky")
    d.pool(5)
    d.route(-2)
    d.pool(9)
    d.route(-4)
    d.pool(13)
    d.route(-1, -3, -5, -6)
    d.conv(512, 1, act="leaky")
    d.conv(1024, 3, act="leaky")
    p5 = d.conv(512, 1, act="leaky")
    p5_idx = len(d.layers) - 1
    # PANet top-down
    for ch, lateral in ((256, c4), (128, c3)):
        d.conv(ch, 1, act="leaky")
        d.upsample()
        d.route(lateral)
        d.conv(ch, 1, act="leaky")
        d.route(-1, -3)
        for _ in range(2):
            d.conv(ch, 1, act="leaky")
            d.conv(ch * 2, 3, act="leaky")
        d.conv(ch, 1, act="leaky")
        if ch == 256:
            p4_idx = len(d.layers) - 1
    # heads, bottom-up
    d.conv(256, 3, act="leaky")
    d.head(out)
    for ch, skip in ((256, p4_idx), (512, p5_idx)):
        d.route(-3)
        d.conv(ch, 3, 2, act="leaky")
        d.route(-1, skip)
        for _ in range(2):
            d.conv(ch, 1, act="leaky")
            d.conv(ch * 2, 3, act="leaky")
        d.conv(ch, 1, act="leaky")
        d.conv(ch * 2, 3, act="leaky")
        d.head(out)
    del p5
    return b.build(family="cnn", published_params=64_363_101,
                   source="Bochkovskiy et al. 2020, arXiv:2004.10934; darknet yolov4.cfg "
                          "(~64.36M params, 80 classes)",
                   description=f"YOLOv4 CSPDarknet53-SPP-PAN, {image}x{image} image")


def yolov4_tiny(dtype: str = "fp16", image: int = 416, classes: int = 80) -> Model:
    """YOLOv4-tiny (darknet yolov4-tiny.cfg), built layer by layer with the cfg's routes."""
    b = GraphBuilder("yolov4-tiny", dtype)
    d = _Darknet(b)
    d.layers.append(Act(None, (3, image, image)))  # index shift: cfg layer i is d.layers[i+1]
    d.conv(32, 3, 2, act="leaky")
    d.conv(64, 3, 2, act="leaky")
    for ch in (64, 128, 256):  # three CSP-tiny blocks, each ending in a 2x2 stride-2 maxpool
        d.conv(ch, 3, act="leaky")
        d.route_half()
        d.conv(ch // 2, 3, act="leaky")
        d.conv(ch // 2, 3, act="leaky")
        d.route(-1, -2)
        d.conv(ch, 1, act="leaky")
        if ch == 256:
            p4_idx = len(d.layers) - 1  # cfg layer 23: the route target of the second head
        d.route(-6, -1)
        d.pool(2, 2)
    d.conv(512, 3, act="leaky")
    d.conv(256, 1, act="leaky")
    d.conv(512, 3, act="leaky")
    out = 3 * (classes + 5)
    d.head(out)  # first YOLO head, 13x13 at 416
    d.route(-3)  # cfg: [yolo] is a layer too, so its "-4" is our -3
    d.conv(128, 1, act="leaky")
    d.upsample()
    d.route(-1, p4_idx)
    d.conv(256, 3, act="leaky")
    d.head(out)  # second YOLO head, 26x26 at 416
    return b.build(family="cnn", published_params=6_056_606,
                   source="Bochkovskiy et al. 2020 / Wang et al. 2021 (Scaled-YOLOv4, "
                          "arXiv:2011.08036); darknet cfg/yolov4-tiny.cfg (416x416, 80 classes): "
                          "6,056,606 params counted layer by layer from the cfg (21 convs with "
                          "BN scale and shift, 2 heads with bias; ~6.06M as usually quoted)",
                   description=f"YOLOv4-tiny CSPDarknet53-tiny, {image}x{image} image")
