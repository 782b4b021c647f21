"""A small int8 transformer encoder block, built with onnx.helper (no downloads):
seq 8, d_model 16, one attention head, a 2-layer ReLU MLP."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SEQ, D_MODEL, HIDDEN = 8, 16, 32


def build_encoder(seed: int = 0, seq: int = SEQ, d: int = D_MODEL, hidden: int = HIDDEN,
                  gemm_head: bool = True, heads: int = 1) -> onnx.ModelProto:
    """x [1, seq, d] -> Q/K/V projections (MatMul + bias Add), per head Q x K^T / sqrt(d),
    softmax, x V ([1, heads, seq, d/heads] products), output projection, residual, MLP
    (MatMul, ReLU, MatMul), residual; with ``gemm_head`` a Gemm classifier on the first
    token (Gemm, transB=1)."""
    rng = np.random.default_rng(seed)
    inits = []

    def init(name, *shape, scale=None):
        scale = scale if scale is not None else 1.0 / np.sqrt(shape[0])
        inits.append(numpy_helper.from_array((rng.standard_normal(shape) * scale)
                                             .astype(np.float32), name))
        return name

    def const(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    nodes = []

    def node(op, ins, out, name, **attrs):
        nodes.append(helper.make_node(op, ins, [out], name=name, **attrs))
        return out

    def linear(x, fan_in, fan_out, name):
        y = node("MatMul", [x, init(f"{name}_w", fan_in, fan_out)], f"{name}_mm", name)
        return node("Add", [y, init(f"{name}_b", fan_out, scale=0.1)], f"{name}_out", f"{name}_bias")

    q = linear("x", d, d, "q_proj")
    k = linear("x", d, d, "k_proj")
    v = linear("x", d, d, "v_proj")
    split = const("split_heads", np.array([1, seq, heads, d // heads], np.int64))

    def by_head(t, perm):
        return node("Transpose", [node("Reshape", [t, split], f"{t}_split", f"{t}_split")],
                    f"{t}_heads", f"{t}_heads", perm=perm)

    q, v = by_head(q, [0, 2, 1, 3]), by_head(v, [0, 2, 1, 3])
    kt = by_head(k, [0, 2, 3, 1])  # [1, heads, d/heads, seq]
    scores = node("MatMul", [q, kt], "scores", "qk")
    scaled = node("Mul", [scores, const("inv_sqrt_d", np.float32(1 / np.sqrt(d)))], "scaled",
                  "scale")
    probs = node("Softmax", [scaled], "probs", "softmax", axis=-1)
    context = node("MatMul", [probs, v], "context", "pv")  # [1, heads, seq, d/heads]
    merged = node("Reshape", [node("Transpose", [context], "context_t", "merge_t", perm=[0, 2, 1, 3]),
                              const("merge_heads", np.array([1, seq, d], np.int64))],
                  "merged", "merge_heads")
    attn = linear(merged, d, d, "o_proj")
    res1 = node("Add", ["x", attn], "res1", "residual1")
    h = node("Relu", [linear(res1, d, hidden, "fc1")], "h", "relu")
    res2 = node("Add", [res1, linear(h, hidden, d, "fc2")], "res2", "residual2")
    out = res2
    if gemm_head:
        first = node("Gather", [res2, const("first", np.int64(0))], "cls", "first_token", axis=1)
        inits.append(numpy_helper.from_array((rng.standard_normal((4, d)) / 4).astype(np.float32),
                                             "head_w"))
        out = node("Gemm", [first, "head_w", init("head_b", 4, scale=0.1)], "logits", "head",
                   transB=1)
    graph = helper.make_graph(
        nodes, "encoder",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, seq, d])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def quantize_encoder(float_model: onnx.ModelProto, folder: Path, *, fmt: str = "qdq",
                     activation: str = "int8", per_channel: bool = False, seed: int = 1) -> Path:
    """quantize_static on random calibration data; IR 10 so onnxruntime loads it. uint8
    activations use reduce_range (7-bit weights), as for the conv models (conftest)."""
    from onnxruntime.quantization import (
        CalibrationDataReader, QuantFormat, QuantType, quantize_static,
    )

    shape = [d.dim_value for d in float_model.graph.input[0].type.tensor_type.shape.dim]
    rng = np.random.default_rng(seed)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"x": rng.standard_normal(shape).astype(np.float32)}
                                 for _ in range(8)])

        def get_next(self):
            return next(self.batches, None)

    folder.mkdir(parents=True, exist_ok=True)
    src = folder / "encoder_float.onnx"
    onnx.save(float_model, src)
    dst = folder / f"encoder_{fmt}_{activation}{'_pc' if per_channel else ''}.onnx"
    act = QuantType.QInt8 if activation == "int8" else QuantType.QUInt8
    quantize_static(str(src), str(dst), Reader(),
                    quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator,
                    activation_type=act, weight_type=QuantType.QInt8, per_channel=per_channel,
                    reduce_range=activation == "uint8",
                    extra_options={"ActivationSymmetric": activation == "int8"})
    model = onnx.load(dst)
    model.ir_version = 10  # onnx writes IR 14, which onnxruntime 1.3x cannot load
    onnx.save(model, dst)
    return dst
