"""Float ONNX graphs of two ImageNet CNN architectures, ResNet-50 (v1.5) and MobileNetV2,
with random weights and batch norm folded into the convs: shapes to transform and
benchmark, built with onnx.helper (no downloads, no torch). Quantize them with
``axonnx.zoo.quantize_float`` or onnxruntime's ``quantize_static``.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from axonnx.errors import AxonnxError

OPSET = 17


class _Graph:
    """Nodes and initializers, with He-initialised convs (so activations keep their scale
    through depth; what the model computes does not matter, its shapes do)."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.names: dict[str, int] = {}

    def name(self, stem: str) -> str:
        self.names[stem] = self.names.get(stem, 0) + 1
        return f"{stem}{self.names[stem]}"

    def const(self, stem: str, value: np.ndarray) -> str:
        name = self.name(stem)
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list[str], **attrs) -> str:
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def conv(self, x: str, cin: int, cout: int, k: int, stride: int = 1, group: int = 1,
             act: str | None = "relu") -> str:
        fan_in = cin // group * k * k
        w = (self.rng.standard_normal((cout, cin // group, k, k)) * np.sqrt(2.0 / fan_in))
        b = self.rng.standard_normal(cout) * 0.05
        y = self.node("Conv", [x, self.const("w", w.astype(np.float32)),
                               self.const("b", b.astype(np.float32))],
                      kernel_shape=[k, k], strides=[stride, stride], group=group,
                      pads=[k // 2] * 4)
        if act == "relu":
            return self.node("Relu", [y])
        if act == "relu6":
            return self.node("Clip", [y, self.const("lo", np.float32(0)),
                                      self.const("hi", np.float32(6))])
        return y

    def head(self, x: str, features: int, classes: int) -> str:
        pooled = self.node("Flatten", [self.node("GlobalAveragePool", [x])])
        w = self.rng.standard_normal((classes, features)) / np.sqrt(features)
        return self.node("Gemm", [pooled, self.const("fc_w", w.astype(np.float32)),
                                  self.const("fc_b", np.zeros(classes, np.float32))], transB=1)

    def model(self, graph_name: str, output: str, size: int) -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes, graph_name,
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, size, size])],
            [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = 8
        return model


def resnet50(size: int = 224, classes: int = 1000, seed: int = 0) -> onnx.ModelProto:
    """ResNet-50 v1.5 (stride in the 3x3 conv of each bottleneck): 53 convs and a Gemm."""
    g = _Graph(seed)
    x = g.conv("input", 3, 64, 7, 2)
    x = g.node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin = 64
    for stage, (width, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3))):
        for block in range(blocks):
            stride = 2 if block == 0 and stage > 0 else 1
            out = width * 4
            y = g.conv(x, cin, width, 1)
            y = g.conv(y, width, width, 3, stride)
            y = g.conv(y, width, out, 1, act=None)
            shortcut = g.conv(x, cin, out, 1, stride, act=None) if block == 0 else x
            x = g.node("Relu", [g.node("Add", [y, shortcut])])
            cin = out
    return g.model("resnet50", g.head(x, cin, classes), size)


# MobileNetV2's inverted residual settings: expansion t, channels c, repeats n, stride s.
_MOBILENET_V2 = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                 (6, 160, 3, 2), (6, 320, 1, 1))


def mobilenet_v2(size: int = 224, classes: int = 1000, seed: int = 0) -> onnx.ModelProto:
    """MobileNetV2 (width 1.0, ReLU6 as Clip): 52 convs (17 depthwise) and a Gemm."""
    g = _Graph(seed)
    x = g.conv("input", 3, 32, 3, 2, act="relu6")
    cin = 32
    for t, c, n, s in _MOBILENET_V2:
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = cin * t
            y = g.conv(x, cin, hidden, 1, act="relu6") if t != 1 else x
            y = g.conv(y, hidden, hidden, 3, stride, group=hidden, act="relu6")
            y = g.conv(y, hidden, c, 1, act=None)
            x = g.node("Add", [x, y]) if stride == 1 and cin == c else y
            cin = c
    x = g.conv(x, cin, 1280, 1, act="relu6")
    return g.model("mobilenet_v2", g.head(x, 1280, classes), size)


ARCHITECTURES = {"resnet50": resnet50, "mobilenet_v2": mobilenet_v2}


def build(name: str, size: int = 224, seed: int = 0) -> onnx.ModelProto:
    if name not in ARCHITECTURES:
        raise AxonnxError(f"unknown architecture {name!r}; use one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name](size=size, seed=seed)
