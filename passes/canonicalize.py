"""Put a graph into the standard form the rules match, before matching (as onnxscript's
rewriter normalises first): constant subgraphs become initializers.

Exporters often write weights, biases, scales and zero points as ``Constant`` nodes, and
``quantize_static`` without ``quant_pre_process`` then quantizes such a weight at run time
(``Constant -> QuantizeLinear -> DequantizeLinear -> Conv``) and leaves a float bias. Folding
makes these initializers, so the rules see constant weights. Folding never changes a number:
``QuantizeLinear`` of a constant is computed as onnxruntime computes it (float32 division,
round half to even, saturate), ``Cast``/``Reshape``/``Transpose``/``Identity`` move bytes.
``DequantizeLinear`` is never folded: it is the QDQ pattern itself.

:func:`quantize_float_biases` is the second step: a QDQ conv or matrix product whose bias is
a float constant gets the int32 bias ``quantize_static`` writes for an initializer bias
(``round(bias / (x_scale * w_scale))``); onnxruntime runs such a layer in float, so its
outputs can differ from the integer layer's by one output step (README, "Real exports").
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ._layer import GraphIndex, attribute, constant_value

FOLDABLE = ("Constant", "QuantizeLinear", "Cast", "Reshape", "Transpose", "Identity",
            "Unsqueeze", "Squeeze")


@dataclass
class Canonicalized:
    """What canonicalisation did: folded nodes by op type, biases quantized, by layer."""

    folded: Counter = field(default_factory=Counter)
    quantized_biases: list[str] = field(default_factory=list)
    uint8_activations: int = 0  # int8 activation tensors stored as uint8 (uint8_activations.py)

    @property
    def changed(self) -> bool:
        return bool(self.folded or self.quantized_biases or self.uint8_activations)

    def describe(self) -> str:
        parts = []
        if self.folded:
            ops = ", ".join(f"{n} {op}" for op, n in sorted(self.folded.items()))
            parts.append(f"folded {sum(self.folded.values())} constant nodes into initializers "
                         f"({ops})")
        if self.quantized_biases:
            parts.append(f"quantized the float bias of {len(self.quantized_biases)} layer(s) to "
                         "int32 as quantize_static does")
        if self.uint8_activations:
            parts.append(f"stored {self.uint8_activations} int8 activation tensors as uint8 "
                         "(+128, zero points +128: the same values), which onnxruntime runs "
                         "faster")
        return "; ".join(parts)

    def as_dict(self) -> dict:
        return {"folded": dict(self.folded), "quantized_biases": list(self.quantized_biases),
                "uint8_activations": self.uint8_activations}


def quantize_linear(x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None,
                    axis: int = 1) -> np.ndarray:
    """onnxruntime's QuantizeLinear (MLAS): ``x / scale`` in float32, rounded half to even,
    plus the zero point, saturated to the zero point's type (default uint8)."""
    dtype = np.dtype(np.uint8) if zero_point is None else zero_point.dtype
    x = np.asarray(x, np.float32)
    scale = np.asarray(scale, np.float32)
    zp = np.zeros((), dtype) if zero_point is None else np.asarray(zero_point)
    if scale.ndim == 1 and scale.size > 1:  # per axis
        shape = [1] * x.ndim
        shape[axis % x.ndim] = scale.size
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    info = np.iinfo(dtype)
    q = np.rint(x / scale).astype(np.float64) + zp.astype(np.float64)
    return np.clip(q, info.min, info.max).astype(dtype)


def _fold(node: onnx.NodeProto, values: list[np.ndarray | None]) -> np.ndarray | None:
    op = node.op_type
    if op == "Constant":
        return constant_value(node)
    if values[0] is None:
        return None
    x = values[0]
    if op == "QuantizeLinear":
        if len(values) < 2 or values[1] is None or (len(values) > 2 and node.input[2]
                                                    and values[2] is None):
            return None
        zp = values[2] if len(values) > 2 and node.input[2] else None
        if x.dtype.kind != "f" or (zp is not None and zp.dtype.kind not in "iu"):
            return None  # float8 / int4 outputs: left to onnxruntime
        return quantize_linear(x, values[1], zp, attribute(node, "axis", 1))
    if op == "Cast":
        to = helper.tensor_dtype_to_np_dtype(attribute(node, "to", 1))
        if x.dtype.kind == "f" and np.dtype(to).kind in "iu":
            return None  # float -> int rounding and overflow differ between libraries
        return x.astype(to)
    if op == "Identity":
        return x
    if op == "Transpose":
        perm = attribute(node, "perm", None)
        return np.transpose(x, perm)
    if op == "Reshape":
        if len(values) < 2 or values[1] is None:
            return None
        shape = [int(d) for d in values[1]]
        if not attribute(node, "allowzero", 0):
            shape = [x.shape[i] if d == 0 else d for i, d in enumerate(shape)]
        return x.reshape(shape)
    if op in ("Unsqueeze", "Squeeze"):
        axes = values[1] if len(values) > 1 and node.input[1] else attribute(node, "axes", None)
        if axes is None:
            return np.squeeze(x) if op == "Squeeze" else None
        axes = [int(a) for a in np.asarray(axes).reshape(-1)]
        if op == "Squeeze":
            return np.squeeze(x, axis=tuple(a % x.ndim for a in axes))
        out_rank = x.ndim + len(axes)
        return np.expand_dims(x, tuple(sorted(a % out_rank for a in axes)))
    return None


def fold_constants(model: onnx.ModelProto) -> Canonicalized:
    """Replace every node of :data:`FOLDABLE` type whose inputs are all constant with an
    initializer holding its output, in place (one pass in graph order reaches chains)."""
    graph = model.graph
    report = Canonicalized()
    consts = {t.name: None for t in graph.initializer}
    outputs = {o.name for o in graph.output}
    index = GraphIndex(graph)
    values: dict[str, np.ndarray] = {}

    def value(name: str) -> np.ndarray | None:
        if not name:
            return None
        if name not in values and name in consts:
            values[name] = numpy_helper.to_array(index.initializers[name])
        return values.get(name)

    keep, new_inits = [], []
    for node in graph.node:
        if (node.op_type in FOLDABLE and node.domain in ("", "ai.onnx") and len(node.output) == 1
                and node.output[0] not in outputs
                and all(not i or i in consts for i in node.input)):
            folded = _fold(node, [value(i) for i in node.input])
            if folded is not None:
                name = node.output[0]
                values[name] = folded
                consts[name] = None
                new_inits.append(numpy_helper.from_array(np.asarray(folded), name))
                report.folded[node.op_type] += 1
                continue
        keep.append(node)
    if report.folded:
        del graph.node[:]
        graph.node.extend(keep)
        graph.initializer.extend(new_inits)
        used = {i for n in graph.node for i in n.input} | outputs
        live = [t for t in graph.initializer if t.name in used]
        del graph.initializer[:]
        graph.initializer.extend(live)
        # A folded tensor is now an initializer: drop its stale value_info.
        stale = [v for v in graph.value_info if v.name not in consts]
        del graph.value_info[:]
        graph.value_info.extend(stale)
    return report


def quantize_float_biases(model: onnx.ModelProto, report: Canonicalized,
                          ops: tuple[str, ...] = ("Conv",)) -> None:
    """Give each QDQ Conv/ConvTranspose/Gemm (activation and weight from constant-scale DequantizeLinear,
    output to QuantizeLinear) whose bias is a float constant the int32 bias
    ``quantize_static`` writes: ``round(bias / (x_scale * w_scale))`` through a
    DequantizeLinear of that scale. In place; the layers are recorded in ``report``. Only
    ``ops`` (the ones to be rewritten: Gemm only with --matmul) are touched, so a node that
    is left alone keeps its float bias."""
    graph = model.graph
    index = GraphIndex(graph)
    added_nodes: dict[str, onnx.NodeProto] = {}
    for node in graph.node:
        slot = 2  # Conv's and Gemm's bias
        if node.op_type not in ops or len(node.input) <= slot or not node.input[slot]:
            continue
        bias = index.constant(node.input[slot])
        dq_x, dq_w = (index.producer.get(i) for i in node.input[:2])
        consumers = index.consumers.get(node.output[0], [])
        if (bias is None or bias.dtype.kind != "f" or dq_x is None or dq_w is None
                or dq_x.op_type != "DequantizeLinear" or dq_w.op_type != "DequantizeLinear"
                or len(consumers) != 1 or consumers[0].op_type != "QuantizeLinear"):
            continue
        x_scale, w_scale = index.constant(dq_x.input[1]), index.constant(dq_w.input[1])
        if x_scale is None or w_scale is None or x_scale.size != 1:
            continue
        scale = (np.float32(x_scale.reshape(-1)[0]) * w_scale.astype(np.float32).reshape(-1)
                 ).astype(np.float32)
        if scale.size not in (1, bias.size) or not np.all(scale > 0):
            continue
        # float32 division and rounding, as quantize_static's quantize_bias_static
        q = np.rint(bias.astype(np.float32).reshape(-1) / scale).astype(np.float64)
        if np.abs(q).max(initial=0) >= 2**31:
            continue
        base = f"{node.name}_bias_quantized"
        graph.initializer.append(numpy_helper.from_array(q.astype(np.int32), base))
        graph.initializer.append(numpy_helper.from_array(
            np.broadcast_to(scale, q.shape).copy() if scale.size > 1 else scale.reshape(()),
            f"{base}_scale"))
        dq = helper.make_node("DequantizeLinear", [base, f"{base}_scale"], [f"{base}_float"],
                              name=f"{base}_dq", axis=0)
        added_nodes[node.name] = dq
        node.input[slot] = dq.output[0]
        report.quantized_biases.append(node.name)
    if added_nodes:
        ordered = []
        for node in graph.node:
            if node.name in added_nodes:
                ordered.append(added_nodes[node.name])
            ordered.append(node)
        del graph.node[:]
        graph.node.extend(ordered)


def canonicalize(model: onnx.ModelProto, matmul: bool = False) -> Canonicalized:
    """Fold constant subgraphs, then quantize float biases of QDQ convs (and with
    ``matmul`` Gemms); in place."""
    report = fold_constants(model)
    quantize_float_biases(model, report, ("Conv", "ConvTranspose", "Gemm") if matmul
                          else ("Conv", "ConvTranspose"))
    return report
