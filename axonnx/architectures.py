"""Float ONNX graphs of two ImageNet CNN architectures, ResNet-50 (v1.5) and MobileNetV2,
(and small test models: a text detector, a text recognizer, a transformer encoder with
dynamic batch and sequence),
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

    def conv_transpose(self, x: str, cin: int, cout: int, k: int, stride: int = 2,
                       pad: int = 0, act: str | None = "relu") -> str:
        """An upsampler: ConvTranspose with weight [cin, cout, k, k] (H x stride out when
        k - 2 * pad == stride)."""
        w = self.rng.standard_normal((cin, cout, k, k)) * np.sqrt(2.0 / (cin * k * k / stride**2))
        b = self.rng.standard_normal(cout) * 0.05
        y = self.node("ConvTranspose", [x, self.const("w", w.astype(np.float32)),
                                        self.const("b", b.astype(np.float32))],
                      kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4)
        return self.node("Relu", [y]) if act == "relu" else y

    def head(self, x: str, features: int, classes: int) -> str:
        pooled = self.node("Flatten", [self.node("GlobalAveragePool", [x])])
        w = self.rng.standard_normal((classes, features)) / np.sqrt(features)
        return self.node("Gemm", [pooled, self.const("fc_w", w.astype(np.float32)),
                                  self.const("fc_b", np.zeros(classes, np.float32))], transB=1)

    def model(self, graph_name: str, output: str, input_dims: list,
              output_dims: list | None = None) -> onnx.ModelProto:
        """The model of the graph built so far: one float input "input", one float output."""
        graph = helper.make_graph(
            self.nodes, graph_name,
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, input_dims)],
            [helper.make_tensor_value_info(output, TensorProto.FLOAT, output_dims)], self.inits)
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
    return g.model("resnet50", g.head(x, cin, classes), ["N", 3, size, size])


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
    return g.model("mobilenet_v2", g.head(x, 1280, classes), ["N", 3, size, size])


ARCHITECTURES = {"resnet50": resnet50, "mobilenet_v2": mobilenet_v2}


def build(name: str, size: int = 224, seed: int = 0) -> onnx.ModelProto:
    if name not in ARCHITECTURES:
        raise AxonnxError(f"unknown architecture {name!r}; use one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name](size=size, seed=seed)


def text_detector(size: int = 64, width: int = 16, blocks: int = 2, seed: int = 0,
                  dynamic: bool = False) -> onnx.ModelProto:
    """A segmentation network shaped like a text detector (DBNet-like): a strided encoder of
    ``blocks`` residual blocks per stage (HardSwish and ReLU), a top-down path that
    upsamples (Resize) and concatenates, and a sigmoid probability map [N, 1, H/4, W/4].
    ``dynamic``: height and width are symbolic, as exported detectors ship."""
    g = _Graph(seed)
    x = g.conv("input", 3, width, 3, 2)
    features, cin = [], width
    for stage, mult in enumerate((1, 2, 4)):
        cout = width * mult
        x = g.conv(x, cin, cout, 3, 2 if stage else 1, act=None)
        x = g.node("HardSwish", [x])
        for _ in range(blocks):
            y = g.conv(g.conv(x, cout, cout, 3), cout, cout, 3, act=None)
            x = g.node("Relu", [g.node("Add", [x, y])])
        features.append((x, cout))
        cin = cout
    top, channels = features[-1]
    for skip, skip_channels in reversed(features[:-1]):
        up = g.node("Resize", [top, "", g.const("scales", np.array([1, 1, 2, 2], np.float32))],
                    mode="nearest")
        top = g.node("Concat", [up, skip], axis=1)
        top = g.conv(top, channels + skip_channels, skip_channels, 3)
        channels = skip_channels
    logits = g.conv(top, channels, 1, 1, act=None)
    prob = g.node("Sigmoid", [logits])
    return g.model("text_detector", prob, ["N", 3, "H", "W"] if dynamic else ["N", 3, size, size])


def text_recognizer(height: int = 32, width: int = 64, d: int = 32, heads: int = 2,
                    classes: int = 20, seed: int = 0) -> onnx.ModelProto:
    """A CNN + attention sequence model with a CTC-style head, shaped like a text line
    recognizer: convs reduce a [1, 3, height, width] line to a sequence of width/4 columns
    of ``d`` features, one transformer encoder layer (Q/K/V/output projections, two
    activation x activation products, softmax) and a per-column log-softmax over
    ``classes`` (blank included): [1, width/4, classes]."""
    g = _Graph(seed)
    x = g.conv("input", 3, 16, 3, 2)
    x = g.conv(x, 16, d, 3, 2)
    x = g.conv(x, d, d, 3)
    x = g.node("ReduceMean", [x], axes=[2], keepdims=0)  # [1, d, T] (opset 17: axes attribute)
    seq = g.node("Transpose", [x], perm=[0, 2, 1])  # [1, T, d]
    t = width // 4

    def linear(v: str, cin: int, cout: int) -> str:
        w = g.rng.standard_normal((cin, cout)) / np.sqrt(cin)
        b = g.rng.standard_normal(cout) * 0.05
        return g.node("Add", [g.node("MatMul", [v, g.const("lin_w", w.astype(np.float32))]),
                              g.const("lin_b", b.astype(np.float32))])

    def split_heads(v: str) -> str:  # [1, T, d] -> [1, heads, T, d/heads]
        r = g.node("Reshape", [v, g.const("shape", np.array([1, t, heads, d // heads], np.int64))])
        return g.node("Transpose", [r], perm=[0, 2, 1, 3])

    q, k, v = (split_heads(linear(seq, d, d)) for _ in range(3))
    kt = g.node("Transpose", [k], perm=[0, 1, 3, 2])
    scores = g.node("Mul", [g.node("MatMul", [q, kt]),
                            g.const("scale", np.float32(1 / np.sqrt(d // heads)))])
    context = g.node("MatMul", [g.node("Softmax", [scores], axis=-1), v])
    merged = g.node("Reshape", [g.node("Transpose", [context], perm=[0, 2, 1, 3]),
                                g.const("shape", np.array([1, t, d], np.int64))])
    x = g.node("Add", [seq, linear(merged, d, d)])
    x = g.node("Add", [x, linear(g.node("Relu", [linear(x, d, 2 * d)]), 2 * d, d)])
    out = g.node("LogSoftmax", [linear(x, d, classes)], axis=-1)
    return g.model("text_recognizer", out, [1, 3, height, width])


def unet_decoder(width: int = 8, seed: int = 0, size: int | None = None) -> onnx.ModelProto:
    """A small UNet-like encoder-decoder with a sigmoid probability map [N, 1, H, W]: three
    conv stages (the last two strided, H/4 at the bottom), two ConvTranspose upsamplers of
    stride 2 (a 2x2 kernel, then a 4x4 one with pads 1), skip connections by Concat and by
    Add. Batch, height and width are symbolic (H and W multiples of 4) unless ``size`` fixes
    the spatial ones."""
    g = _Graph(seed)
    s1 = g.conv("input", 3, width, 3)                          # H
    s2 = g.conv(s1, width, 2 * width, 3, 2)                    # H/2
    bottom = g.conv(s2, 2 * width, 4 * width, 3, 2)            # H/4
    up2 = g.conv_transpose(bottom, 4 * width, 2 * width, 2)    # H/2
    x = g.conv(g.node("Concat", [up2, s2], axis=1), 4 * width, 2 * width, 3)
    up1 = g.conv_transpose(x, 2 * width, width, 4, pad=1)      # H
    x = g.conv(g.node("Add", [up1, s1]), width, width, 3)
    prob = g.node("Sigmoid", [g.conv(x, width, 1, 1, act=None)])
    return g.model("unet_decoder", prob, ["N", 3, size, size] if size else ["N", 3, "H", "W"])


def transformer_encoder(d: int = 64, heads: int = 4, layers: int = 2, hidden: int = 128,
                        seed: int = 0) -> onnx.ModelProto:
    """A pre-trained-shaped transformer encoder with dynamic batch and sequence: float input
    [batch, seq, d] -> ``layers`` post-norm layers, each Q/K/V projections (MatMul + Add),
    per head Q x K^T / sqrt(d/heads), softmax, x V, output projection, residual and
    LayerNormalization, a ReLU FFN (d -> hidden -> d), residual and LayerNormalization:
    [batch, seq, d]. Every reshape copies the dynamic dims (0), so any batch and sequence
    length run; 8 matrix products per layer, 2 of them activation x activation."""
    if d % heads:
        raise AxonnxError(f"transformer_encoder: d ({d}) must divide into {heads} heads")
    g = _Graph(seed)

    def linear(v: str, cin: int, cout: int) -> str:
        w = g.rng.standard_normal((cin, cout)) / np.sqrt(cin)
        b = g.rng.standard_normal(cout) * 0.05
        return g.node("Add", [g.node("MatMul", [v, g.const("lin_w", w.astype(np.float32))]),
                              g.const("lin_b", b.astype(np.float32))])

    def norm(v: str) -> str:
        return g.node("LayerNormalization", [v, g.const("gamma", np.ones(d, np.float32)),
                                             g.const("beta", np.zeros(d, np.float32))], axis=-1)

    x = "input"
    for _ in range(layers):
        def split(v: str, perm: list[int]) -> str:  # [B, S, d] -> per head
            r = g.node("Reshape", [v, g.const("shape", np.array([0, 0, heads, d // heads], np.int64))])
            return g.node("Transpose", [r], perm=perm)

        q = split(linear(x, d, d), [0, 2, 1, 3])   # [B, h, S, d/h]
        kt = split(linear(x, d, d), [0, 2, 3, 1])  # [B, h, d/h, S]
        v = split(linear(x, d, d), [0, 2, 1, 3])
        scores = g.node("Mul", [g.node("MatMul", [q, kt]),
                                g.const("scale", np.float32(1 / np.sqrt(d // heads)))])
        context = g.node("MatMul", [g.node("Softmax", [scores], axis=-1), v])
        merged = g.node("Reshape", [g.node("Transpose", [context], perm=[0, 2, 1, 3]),
                                    g.const("shape", np.array([0, 0, d], np.int64))])
        x = norm(g.node("Add", [x, linear(merged, d, d)]))
        x = norm(g.node("Add", [x, linear(g.node("Relu", [linear(x, d, hidden)]), hidden, d)]))
    return g.model("transformer_encoder", x, ["batch", "seq", d], ["batch", "seq", d])
