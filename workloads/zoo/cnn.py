"""Convolutional networks: ResNet-18/50/152 (torchvision; 50 and 152 are v1.5), MobileNetV2,
GoogLeNet, Inception-v3 and ConvNeXt-T (torchvision), YOLOv4 (darknet yolov4.cfg: CSPDarknet53 +
SPP + PANet + three YOLO heads, 80 classes) and YOLOv4-tiny (darknet yolov4-tiny.cfg:
CSPDarknet53-tiny + two YOLO heads, 80 classes).

Every conv and batch norm is its own op with its own weights (BN scale and shift count as
parameters, running statistics do not, as in torchvision); activations are fused into the op
before them; residual adds, route and inception-branch concatenations are weightless ops.
"""

from __future__ import annotations

from workloads.model import Model
from workloads.zoo.layers import Act, GraphBuilder, conv_out


def _conv_bn(b: GraphBuilder, x: Act, conv: str, bn: str, cout: int, k: int, stride: int = 1,
             groups: int = 1, act: str = "relu") -> Act:
    x = b.conv2d(x, conv, cout, k, stride, groups=groups, bias=False)
    return b.norm(x, bn, "batchnorm", channel_axis=0, act=act)


def resnet(name: str, blocks: tuple[int, int, int, int], dtype: str = "fp16",
           image: int = 224, classes: int = 1000, basic: bool = False) -> GraphBuilder:
    """ResNet built op by op: bottleneck blocks (stride on the 3x3 conv, torchvision v1.5), or
    with `basic` the two-3x3 BasicBlock of ResNet-18/34 (downsample only where the shape
    changes)."""
    b = GraphBuilder(name, dtype)
    x = _conv_bn(b, Act(None, (3, image, image)), "conv1", "bn1", 64, 7, 2)
    c, h, w = x.shape
    x = b.elementwise("maxpool", "maxpool", [x], (c, conv_out(h, 3, 2, 1), conv_out(w, 3, 2, 1)))
    cin, expansion = 64, (1 if basic else 4)
    for stage, (n, width) in enumerate(zip(blocks, (64, 128, 256, 512), strict=True), start=1):
        for i in range(n):
            p = f"layer{stage}.{i}"
            stride = 2 if (i == 0 and stage > 1) else 1
            if basic:
                y = _conv_bn(b, x, f"{p}.conv1", f"{p}.bn1", width, 3, stride)
                y = _conv_bn(b, y, f"{p}.conv2", f"{p}.bn2", width, 3, act="")
            else:
                y = _conv_bn(b, x, f"{p}.conv1", f"{p}.bn1", width, 1)
                y = _conv_bn(b, y, f"{p}.conv2", f"{p}.bn2", width, 3, stride)
                y = _conv_bn(b, y, f"{p}.conv3", f"{p}.bn3", width * 4, 1, act="")
            if stride != 1 or cin != width * expansion:
                x = _conv_bn(b, x, f"{p}.downsample.0", f"{p}.downsample.1", width * expansion,
                             1, stride, act="")
            x = b.add(f"{p}.add", x, y)
            cin = width * expansion
    x = b.elementwise("avgpool", "avgpool", [x], (cin,))
    b.linear(x, "fc", classes)
    return b


def resnet18(dtype: str = "fp16", image: int = 224, classes: int = 1000) -> Model:
    """ResNet-18: 11,689,512 parameters (torchvision resnet18 IMAGENET1K_V1 model card)."""
    return resnet("resnet18", (2, 2, 2, 2), dtype, image, classes, basic=True).build(
        family="cnn", published_params=11_689_512,
        source="He et al. 2016, arXiv:1512.03385; torchvision resnet18 (11,689,512 params)",
        description=f"ResNet-18 (BasicBlock 2-2-2-2), {image}x{image} image")


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


def _pool(b: GraphBuilder, x: Act, name: str, kind: str, k: int, stride: int, pad: int = 0,
          ceil: bool = False) -> Act:
    """A max / average pooling window (`ceil`: PyTorch's ceil_mode)."""
    c, h, w = x.shape
    return b.elementwise(name, kind, [x], (c, conv_out(h, k, stride, pad, ceil),
                                           conv_out(w, k, stride, pad, ceil)))


def _basic_conv(b: GraphBuilder, x: Act, p: str, cout: int, k: int | tuple[int, int],
                stride: int = 1, pad: int | None = None) -> Act:
    """torchvision's BasicConv2d (GoogLeNet, Inception-v3): bias-free conv `p.conv`, batch
    norm `p.bn` (eps 0.001; scale and shift), ReLU."""
    x = b.conv2d(x, f"{p}.conv", cout, k, stride, pad, bias=False)
    return b.norm(x, f"{p}.bn", "batchnorm", channel_axis=0, act="relu")


def googlenet(dtype: str = "fp16", image: int = 224, classes: int = 1000) -> Model:
    """GoogLeNet (Inception v1) as torchvision builds it for inference (aux classifiers off):
    6,624,904 parameters (torchvision googlenet model card)."""
    b = GraphBuilder("googlenet", dtype)
    x = _basic_conv(b, Act(None, (3, image, image)), "conv1", 64, 7, 2)
    x = _pool(b, x, "maxpool1", "maxpool", 3, 2, ceil=True)
    x = _basic_conv(b, x, "conv2", 64, 1)
    x = _basic_conv(b, x, "conv3", 192, 3)
    x = _pool(b, x, "maxpool2", "maxpool", 3, 2, ceil=True)
    # (name, 1x1, 3x3 reduce, 3x3, "5x5" reduce, "5x5", pool proj); torchvision's "5x5" branch
    # is a 3x3 conv (a known quirk of its port), which its published count reflects
    for name, c1, c3r, c3, c5r, c5, cp in (
            ("inception3a", 64, 96, 128, 16, 32, 32), ("inception3b", 128, 128, 192, 32, 96, 64),
            ("maxpool3", 0, 0, 0, 0, 0, 0),
            ("inception4a", 192, 96, 208, 16, 48, 64), ("inception4b", 160, 112, 224, 24, 64, 64),
            ("inception4c", 128, 128, 256, 24, 64, 64),
            ("inception4d", 112, 144, 288, 32, 64, 64),
            ("inception4e", 256, 160, 320, 32, 128, 128), ("maxpool4", 0, 0, 0, 0, 0, 0),
            ("inception5a", 256, 160, 320, 32, 128, 128),
            ("inception5b", 384, 192, 384, 48, 128, 128)):
        if name == "maxpool3":
            x = _pool(b, x, name, "maxpool", 3, 2, ceil=True)
            continue
        if name == "maxpool4":
            x = _pool(b, x, name, "maxpool", 2, 2, ceil=True)
            continue
        y1 = _basic_conv(b, x, f"{name}.branch1", c1, 1)
        y2 = _basic_conv(b, x, f"{name}.branch2.0", c3r, 1)
        y2 = _basic_conv(b, y2, f"{name}.branch2.1", c3, 3)
        y3 = _basic_conv(b, x, f"{name}.branch3.0", c5r, 1)
        y3 = _basic_conv(b, y3, f"{name}.branch3.1", c5, 3)
        y4 = _pool(b, x, f"{name}.branch4.0", "maxpool", 3, 1, 1, ceil=True)
        y4 = _basic_conv(b, y4, f"{name}.branch4.1", cp, 1)
        x = b.concat(f"{name}.concat", [y1, y2, y3, y4])
    x = b.elementwise("avgpool", "avgpool", [x], (x.shape[0],))
    b.linear(x, "fc", classes)
    return b.build(family="cnn", published_params=6_624_904,
                   source="Szegedy et al. 2015, arXiv:1409.4842; torchvision googlenet "
                          "(6,624,904 params; inference graph without the aux classifiers, "
                          "BN after every conv, 3x3 convs in the '5x5' branches)",
                   description=f"GoogLeNet (Inception v1, torchvision), {image}x{image} image")


def _inception_v3_block(b: GraphBuilder, x: Act, p: str, kind: str, arg: int = 0) -> Act:
    """One torchvision Inception-v3 block: 'A' (Mixed_5b-d, `arg` pool features), 'B'
    (Mixed_6a, grid 35 -> 17), 'C' (Mixed_6b-e, `arg` 7x7 channels), 'D' (Mixed_7a, grid
    17 -> 8) or 'E' (Mixed_7b-c)."""
    def conv(src: Act, n: str, cout: int, k: int | tuple[int, int], stride: int = 1,
             pad: int | None = None) -> Act:
        return _basic_conv(b, src, f"{p}.{n}", cout, k, stride, pad)

    def avg_pool_conv(cout: int) -> Act:
        y = _pool(b, x, f"{p}.avg_pool", "avgpool", 3, 1, 1)
        return conv(y, "branch_pool", cout, 1)

    if kind == "A":
        y5 = conv(conv(x, "branch5x5_1", 48, 1), "branch5x5_2", 64, 5)
        yd = conv(conv(conv(x, "branch3x3dbl_1", 64, 1), "branch3x3dbl_2", 96, 3),
                  "branch3x3dbl_3", 96, 3)
        parts = [conv(x, "branch1x1", 64, 1), y5, yd, avg_pool_conv(arg)]
    elif kind == "B":
        y3 = conv(x, "branch3x3", 384, 3, 2, 0)
        yd = conv(conv(conv(x, "branch3x3dbl_1", 64, 1), "branch3x3dbl_2", 96, 3),
                  "branch3x3dbl_3", 96, 3, 2, 0)
        parts = [y3, yd, _pool(b, x, f"{p}.max_pool", "maxpool", 3, 2)]
    elif kind == "C":
        y7 = conv(x, "branch7x7_1", arg, 1)
        y7 = conv(conv(y7, "branch7x7_2", arg, (1, 7)), "branch7x7_3", 192, (7, 1))
        yd = conv(x, "branch7x7dbl_1", arg, 1)
        for j, (cout, k) in enumerate(((arg, (7, 1)), (arg, (1, 7)), (arg, (7, 1)),
                                       (192, (1, 7))), start=2):
            yd = conv(yd, f"branch7x7dbl_{j}", cout, k)
        parts = [conv(x, "branch1x1", 192, 1), y7, yd, avg_pool_conv(192)]
    elif kind == "D":
        y3 = conv(conv(x, "branch3x3_1", 192, 1), "branch3x3_2", 320, 3, 2, 0)
        y7 = conv(x, "branch7x7x3_1", 192, 1)
        y7 = conv(conv(y7, "branch7x7x3_2", 192, (1, 7)), "branch7x7x3_3", 192, (7, 1))
        y7 = conv(y7, "branch7x7x3_4", 192, 3, 2, 0)
        parts = [y3, y7, _pool(b, x, f"{p}.max_pool", "maxpool", 3, 2)]
    else:  # "E": the 3x3 branches split into parallel 1x3 and 3x1 convs, concatenated
        y3 = conv(x, "branch3x3_1", 384, 1)
        y3 = b.concat(f"{p}.branch3x3_cat", [conv(y3, "branch3x3_2a", 384, (1, 3)),
                                             conv(y3, "branch3x3_2b", 384, (3, 1))])
        yd = conv(conv(x, "branch3x3dbl_1", 448, 1), "branch3x3dbl_2", 384, 3)
        yd = b.concat(f"{p}.branch3x3dbl_cat", [conv(yd, "branch3x3dbl_3a", 384, (1, 3)),
                                                conv(yd, "branch3x3dbl_3b", 384, (3, 1))])
        parts = [conv(x, "branch1x1", 320, 1), y3, yd, avg_pool_conv(192)]
    return b.concat(f"{p}.concat", parts)


def inception_v3(dtype: str = "fp16", image: int = 299, classes: int = 1000) -> Model:
    """Inception-v3 as torchvision builds it, without the auxiliary classifier (the inference
    graph an exported .tflite holds): 23,834,568 parameters."""
    b = GraphBuilder("inception-v3", dtype)
    x = _basic_conv(b, Act(None, (3, image, image)), "Conv2d_1a_3x3", 32, 3, 2, 0)
    x = _basic_conv(b, x, "Conv2d_2a_3x3", 32, 3, pad=0)
    x = _basic_conv(b, x, "Conv2d_2b_3x3", 64, 3)
    x = _pool(b, x, "maxpool1", "maxpool", 3, 2)
    x = _basic_conv(b, x, "Conv2d_3b_1x1", 80, 1)
    x = _basic_conv(b, x, "Conv2d_4a_3x3", 192, 3, pad=0)
    x = _pool(b, x, "maxpool2", "maxpool", 3, 2)
    for p, kind, arg in (("Mixed_5b", "A", 32), ("Mixed_5c", "A", 64), ("Mixed_5d", "A", 64),
                         ("Mixed_6a", "B", 0), ("Mixed_6b", "C", 128), ("Mixed_6c", "C", 160),
                         ("Mixed_6d", "C", 160), ("Mixed_6e", "C", 192), ("Mixed_7a", "D", 0),
                         ("Mixed_7b", "E", 0), ("Mixed_7c", "E", 0)):
        x = _inception_v3_block(b, x, p, kind, arg)
    x = b.elementwise("avgpool", "avgpool", [x], (x.shape[0],))
    b.linear(x, "fc", classes)
    return b.build(family="cnn", published_params=23_834_568,
                   source="Szegedy et al. 2016, arXiv:1512.00567; torchvision inception_v3 "
                          "without AuxLogits: 23,834,568 params = the model card's 27,161,264 "
                          "minus the aux head's 3,326,696 (1x1 768->128 conv + BN, 5x5 "
                          "128->768 conv + BN, 768->1000 fc)",
                   description=f"Inception-v3 (torchvision, no aux classifier), "
                               f"{image}x{image} image")


def convnext_tiny(dtype: str = "fp16", image: int = 224, classes: int = 1000) -> Model:
    """ConvNeXt-T: 28,589,128 parameters (torchvision convnext_tiny model card)."""
    b = GraphBuilder("convnext-tiny", dtype)
    x = b.conv2d(Act(None, (3, image, image)), "features.0.0", 96, 4, 4, pad=0)
    c, h, w = x.shape
    x = b.norm(Act(x.src, (h * w, c)), "features.0.1")  # LayerNorm2d, channels last (a view)
    for stage, (depth, dim) in enumerate(zip((3, 3, 9, 3), (96, 192, 384, 768), strict=True)):
        idx = 2 * stage + 1
        if stage:  # downsample: LayerNorm2d, then a 2x2 stride-2 conv with bias
            p = f"features.{idx - 1}"
            y = b.norm(x, f"{p}.0")
            x = b.conv2d(Act(y.src, (c, h, w)), f"{p}.1", dim, 2, 2, pad=0)
            c, h, w = x.shape
            x = Act(x.src, (h * w, c))
        for i in range(depth):
            p = f"features.{idx}.{i}"
            y = b.conv2d(Act(x.src, (c, h, w)), f"{p}.block.0", c, 7, groups=c)
            y = b.norm(Act(y.src, (h * w, c)), f"{p}.block.2")
            y = b.linear(y, f"{p}.block.3", 4 * c, act="gelu")
            y = b.linear(y, f"{p}.block.5", c)
            gamma = b.tensor(f"{p}.layer_scale", c, 1, 1)
            y = b.op(f"{p}.layer_scale_mul", "mul", [y], y.shape, y.numel, [gamma])
            x = b.add(f"{p}.add", x, y)
    x = b.elementwise("avgpool", "avgpool", [Act(x.src, (c, h, w))], (c,))
    x = b.norm(x, "classifier.0")
    b.linear(x, "classifier.2", classes)
    return b.build(family="cnn", published_params=28_589_128,
                   source="Liu et al. 2022, arXiv:2201.03545; torchvision convnext_tiny "
                          "(28,589,128 params)",
                   description=f"ConvNeXt-T (3-3-9-3, dims 96-768), {image}x{image} image")


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
