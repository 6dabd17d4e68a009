"""Export tiny_detector_dynamic.onnx and tiny_detector_640.onnx: a small YOLOv8-style detector
(Conv-BN-SiLU stem, C2f blocks, SPPF, an upsampling neck with concats, a decoupled head whose
outputs are reshaped and concatenated with shapes taken from the input at run time) exported
by PyTorch's TorchScript exporter, once with dynamic batch/height/width (what `yolo export
dynamic=True` and most PyTorch exports produce) and once static at 640x640.

Run by hand (needs `pip install torch==2.13.0 onnx`; CI uses the committed files):
    python tests/data/onnx/make_detector.py
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).parent


class Conv(nn.Module):
    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(c2)
        self.act = nn.SiLU()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class C2f(nn.Module):
    def __init__(self, c1: int, c2: int, n: int = 1):
        super().__init__()
        self.c = c2 // 2
        self.cv1 = Conv(c1, 2 * self.c)
        self.cv2 = Conv((2 + n) * self.c, c2)
        self.m = nn.ModuleList(nn.Sequential(Conv(self.c, self.c, 3), Conv(self.c, self.c, 3))
                               for _ in range(n))

    def forward(self, x):
        y = list(self.cv1(x).chunk(2, 1))
        y.extend(m(y[-1]) + y[-1] for m in self.m)
        return self.cv2(torch.cat(y, 1))


class SPPF(nn.Module):
    def __init__(self, c1: int, c2: int):
        super().__init__()
        self.cv1, self.cv2 = Conv(c1, c1 // 2), Conv(c1 * 2, c2)
        self.m = nn.MaxPool2d(5, 1, 2)

    def forward(self, x):
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(torch.cat((x, y1, y2, self.m(y2)), 1))


class TinyDetector(nn.Module):
    """Backbone strides 8/16/32, FPN neck, head with 4*reg box bins + nc classes per cell
    (YOLOv8n is w=16, nc=80, reg=16; this one is narrower so the files stay small)."""

    def __init__(self, w: int = 4, nc: int = 8, reg: int = 4):
        super().__init__()
        self.no = nc + 4 * reg
        self.b1 = nn.Sequential(Conv(3, w, 3, 2), Conv(w, 2 * w, 3, 2), C2f(2 * w, 2 * w),
                                Conv(2 * w, 4 * w, 3, 2), C2f(4 * w, 4 * w))
        self.b2 = nn.Sequential(Conv(4 * w, 8 * w, 3, 2), C2f(8 * w, 8 * w))
        self.b3 = nn.Sequential(Conv(8 * w, 8 * w, 3, 2), C2f(8 * w, 8 * w), SPPF(8 * w, 8 * w))
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.n1, self.n2 = C2f(16 * w, 8 * w), C2f(12 * w, 4 * w)
        self.heads = nn.ModuleList(nn.Sequential(Conv(c, c, 3), nn.Conv2d(c, self.no, 1))
                                   for c in (4 * w, 8 * w, 8 * w))

    def forward(self, x):
        p3 = self.b1(x)
        p4 = self.b2(p3)
        p5 = self.b3(p4)
        n4 = self.n1(torch.cat((self.up(p5), p4), 1))
        n3 = self.n2(torch.cat((self.up(n4), p3), 1))
        outs = [h(p) for h, p in zip(self.heads, (n3, n4, p5), strict=True)]
        b = x.shape[0]
        return torch.cat([o.view(b, self.no, -1) for o in outs], 2).sigmoid()


def main() -> None:
    torch.manual_seed(0)
    model = TinyDetector().eval()
    for m in model.modules():  # trained-like BatchNorm (exporters merge identical tensors)
        if isinstance(m, nn.BatchNorm2d):
            for t in (m.weight.data, m.bias.data, m.running_mean):
                t.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 1.5)
    x = torch.zeros(1, 3, 640, 640)
    common = dict(input_names=["images"], output_names=["output0"], opset_version=17,
                  dynamo=False, do_constant_folding=True)
    torch.onnx.export(model, (x,), HERE / "tiny_detector_640.onnx", **common)
    torch.onnx.export(model, (x,), HERE / "tiny_detector_dynamic.onnx",
                      dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"},
                                    "output0": {0: "batch", 2: "anchors"}}, **common)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    folded = sum(c.weight.numel() + c.out_channels for c in convs)  # BN folded into a bias
    print(f"torch parameters {sum(p.numel() for p in model.parameters()):,}; "
          f"exported (BatchNorm folded into {len(convs)} conv biases) {folded:,}")


if __name__ == "__main__":
    main()
