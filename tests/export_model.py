"""A small float CNN shaped like the exported models users bring (a text detector or
recognizer from a training framework): HardSwish activations, a residual Add, a Concat of
two branches, GlobalAveragePool, a Gemm head and a Softmax; optionally weights and biases as
``Constant`` nodes (as exporters write them when nothing folds them), dynamic H and W, and
a ConvTranspose (left exact). Quantized with ``quantize_static`` defaults by the tests."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CLASSES = 4


def build_export_model(seed: int = 0, *, constant_weights: bool = False,
                       activation: str = "HardSwish", dynamic_hw: bool = False,
                       transpose: bool = False, size: int = 16) -> onnx.ModelProto:
    """x [N, 3, H, W] -> conv 3->8 act -> conv 8->8 act -> Add(residual) -> [conv 8->4 act,
    conv 8->4 act] -> Concat -> [ConvTranspose 8->8 stride 2 -> conv 8->8 stride 2] ->
    GlobalAveragePool -> Flatten -> Gemm(8->4) -> Softmax. ``activation`` names the op after
    each conv (HardSwish, Relu, Sigmoid) or None."""
    rng = np.random.default_rng(seed)
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []

    def const(name: str, value: np.ndarray) -> str:
        value = np.asarray(value, np.float32)
        if constant_weights:
            nodes.append(helper.make_node("Constant", [], [name], name=f"{name}_const",
                                          value=numpy_helper.from_array(value, name)))
        else:
            inits.append(numpy_helper.from_array(value, name))
        return name

    def conv(x: str, cin: int, cout: int, name: str, k: int = 3, stride: int = 1,
             op: str = "Conv") -> str:
        shape = (cin, cout, k, k) if op == "ConvTranspose" else (cout, cin, k, k)
        w = rng.standard_normal(shape) * np.sqrt(2.0 / (cin * k * k))
        b = rng.standard_normal(cout) * 0.1
        attrs = dict(strides=[stride, stride], pads=[k // 2] * 4)
        if op == "ConvTranspose":
            attrs = dict(strides=[stride, stride], pads=[0, 0, 0, 0], output_padding=[0, 0])
        nodes.append(helper.make_node(op, [x, const(f"{name}_w", w), const(f"{name}_b", b)],
                                      [f"{name}_out"], name=name, **attrs))
        y = f"{name}_out"
        if activation is not None and op == "Conv":
            nodes.append(helper.make_node(activation, [y], [f"{name}_act"], name=f"{name}_act"))
            y = f"{name}_act"
        return y

    x = conv("x", 3, 8, "stem")
    y = conv(x, 8, 8, "body")
    nodes.append(helper.make_node("Add", [x, y], ["residual"], name="residual"))
    left = conv("residual", 8, 4, "left", k=1)
    right = conv("residual", 8, 4, "right")
    nodes.append(helper.make_node("Concat", [left, right], ["joined"], name="concat", axis=1))
    last = "joined"
    if transpose:
        up = conv(last, 8, 8, "up", k=2, stride=2, op="ConvTranspose")
        last = conv(up, 8, 8, "down", stride=2)
    nodes += [helper.make_node("GlobalAveragePool", [last], ["pooled"], name="pool"),
              helper.make_node("Flatten", ["pooled"], ["flat"], name="flatten")]
    wf = rng.standard_normal((CLASSES, 8)) / np.sqrt(8)
    nodes += [helper.make_node("Gemm", ["flat", const("fc_w", wf),
                                        const("fc_b", rng.standard_normal(CLASSES) * 0.1)],
                               ["logits"], name="fc", transB=1),
              helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=-1)]
    hw = ["H", "W"] if dynamic_hw else [size, size]
    graph = helper.make_graph(
        nodes, "export_like",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, *hw])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def quantize_defaults(float_model: onnx.ModelProto, folder, name: str = "export_int8.onnx",
                      *, size: int = 16, seed: int = 1, **options):
    """``quantize_static`` with onnxruntime's defaults (QDQ, int8 activations, per-tensor
    int8 weights), on random calibration images of ``size`` x ``size``; IR 10 so that
    onnxruntime loads it."""
    from pathlib import Path

    from onnxruntime.quantization import CalibrationDataReader, quantize_static

    rng = np.random.default_rng(seed)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"x": rng.standard_normal((1, 3, size, size)).astype(np.float32)}
                                 for _ in range(4)])

        def get_next(self):
            return next(self.batches, None)

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    src, dst = folder / f"float_{name}", folder / name
    onnx.save(float_model, src)
    quantize_static(str(src), str(dst), Reader(), **options)
    model = onnx.load(dst)
    model.ir_version = 10  # onnx writes IR 14, which onnxruntime 1.3x cannot load
    onnx.save(model, dst)
    return dst
