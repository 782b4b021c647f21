"""Rules that recognise a quantized 2-D convolution, in any of the forms axonnx rewrites.

Each rule matches at one anchor node and returns either a :class:`ConvLayer` (everything
the rewrite needs) or a :class:`NoMatch` carrying the reason it refused, so that
``axonnx inspect`` and the tests can say *why* a node was left alone.

* ``QLinearConvRule``: QOperator form, one ``QLinearConv`` node.
* ``QDQConvRule``: ``DequantizeLinear(x) , DequantizeLinear(w) [, DequantizeLinear(bias)]
  -> Conv -> QuantizeLinear``, as onnxruntime's ``quantize_static`` writes it.
* ``ROUPConvRule``: an already rewritten node, so that a model can be re-planned.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from axonnx.errors import AxonnxError
from axonnx.ops.roupconv import DOMAIN, OP_TYPE, Assignment, conv_attributes, read_assignment

QUANT_TYPES = (np.int8, np.uint8)


@dataclass
class NoMatch:
    node: str
    reason: str

    def __bool__(self) -> bool:
        return False


@dataclass
class ConvLayer:
    """A quantized 2-D conv found in a graph, in the terms of QLinearConv's inputs."""

    name: str
    form: str  # "qoperator" | "qdq" | "roupconv"
    inputs: list[str]  # x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp[, bias]
    output: str
    attributes: dict
    weight: np.ndarray
    w_scale: np.ndarray  # [M] float32
    w_zero_point: np.ndarray  # [M], weight dtype
    replaced_nodes: list[str]  # nodes the ROUPConv replaces (the anchor last)
    maybe_dead_nodes: list[str] = field(default_factory=list)  # removed if unused after
    assignment: Assignment | None = None  # for ROUPConv nodes

    @property
    def real_weight(self) -> np.ndarray:
        """Dequantised weights, the basis of the ranking policies."""
        m = self.weight.shape[0]
        zw = self.w_zero_point.astype(np.float64).reshape(m, 1, 1, 1)
        scale = self.w_scale.astype(np.float64).reshape(m, 1, 1, 1)
        return (self.weight.astype(np.float64) - zw) * scale


class GraphIndex:
    """Producers, consumers and constants of a graph, looked up by tensor name."""

    def __init__(self, graph: onnx.GraphProto):
        self.graph = graph
        self.producer = {o: n for n in graph.node for o in n.output if o}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for n in graph.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.initializers = {t.name: t for t in graph.initializer}
        self.graph_outputs = {o.name for o in graph.output}

    def constant(self, name: str) -> np.ndarray | None:
        if name in self.initializers:
            return numpy_helper.to_array(self.initializers[name])
        node = self.producer.get(name)
        if node is not None and node.op_type == "Constant":
            return numpy_helper.to_array(node.attribute[0].t)
        return None


def _per_channel(values: np.ndarray, channels: int, what: str, layer: str) -> np.ndarray:
    values = np.asarray(values).reshape(-1)
    if values.size not in (1, channels):
        raise AxonnxError(f"layer {layer!r}: {what} has {values.size} values for "
                          f"{channels} output channels")
    return np.broadcast_to(values, (channels,)).copy()


def _check_rank(node: onnx.NodeProto, weight: np.ndarray) -> None:
    if weight.ndim != 4:
        dims = weight.ndim - 2
        raise AxonnxError(
            f"node {node.name!r} is a {dims}-D convolution; axonnx rewrites 2-D "
            "convolutions only: exclude it from the model or reshape it to 2-D"
        )


class QLinearConvRule:
    anchor = "QLinearConv"

    def match(self, node: onnx.NodeProto, index: GraphIndex) -> ConvLayer | NoMatch:
        if node.op_type != "QLinearConv" or node.domain not in ("", "ai.onnx"):
            return NoMatch(node.name, "not a QLinearConv")
        weight = index.constant(node.input[3])
        if weight is None:
            return NoMatch(node.name, "the weight is not a constant initializer")
        _check_rank(node, weight)
        consts = [index.constant(node.input[i]) for i in (4, 5)]
        if any(c is None for c in consts):
            return NoMatch(node.name, "the weight scale or zero point is not constant")
        m = weight.shape[0]
        inputs = list(node.input) + [""] * (9 - len(node.input))
        return ConvLayer(
            name=node.name, form="qoperator", inputs=inputs[:9], output=node.output[0],
            attributes=conv_attributes(node), weight=weight,
            w_scale=_per_channel(consts[0], m, "w_scale", node.name).astype(np.float32),
            w_zero_point=_per_channel(consts[1], m, "w_zero_point", node.name),
            replaced_nodes=[node.name],
        )


class ROUPConvRule(QLinearConvRule):
    anchor = OP_TYPE

    def match(self, node: onnx.NodeProto, index: GraphIndex) -> ConvLayer | NoMatch:
        if node.op_type != OP_TYPE or node.domain != DOMAIN:
            return NoMatch(node.name, "not a ROUPConv")
        clone = onnx.NodeProto()
        clone.CopyFrom(node)
        clone.op_type, clone.domain = "QLinearConv", ""
        layer = super().match(clone, index)
        if layer:
            layer.form = "roupconv"
            layer.assignment = read_assignment(node)
        return layer


class QDQConvRule:
    anchor = "Conv"

    def match(self, node: onnx.NodeProto, index: GraphIndex) -> ConvLayer | NoMatch:
        if node.op_type != "Conv" or node.domain not in ("", "ai.onnx"):
            return NoMatch(node.name, "not a Conv")
        producers = [index.producer.get(i) for i in node.input]
        dq_x, dq_w = producers[0], producers[1]
        if dq_x is None or dq_x.op_type != "DequantizeLinear":
            return NoMatch(node.name, "the activation does not come from DequantizeLinear")
        if dq_w is None or dq_w.op_type != "DequantizeLinear":
            return NoMatch(node.name, "the weight does not come from DequantizeLinear")
        weight = index.constant(dq_w.input[0])
        if weight is None or weight.dtype.type not in QUANT_TYPES:
            return NoMatch(node.name, "the weight is not a constant int8/uint8 initializer")
        _check_rank(node, weight)
        m = weight.shape[0]
        w_axis = next((helper.get_attribute_value(a) for a in dq_w.attribute if a.name == "axis"), 1)
        w_scale = index.constant(dq_w.input[1])
        w_zp = index.constant(dq_w.input[2]) if len(dq_w.input) > 2 and dq_w.input[2] else None
        if w_scale is None:
            return NoMatch(node.name, "the weight scale is not constant")
        if w_scale.size > 1 and w_axis != 0:
            return NoMatch(node.name, f"per-channel weights quantized along axis {w_axis}, not 0")
        w_zp = np.zeros(1, weight.dtype) if w_zp is None else w_zp
        consumers = index.consumers.get(node.output[0], [])
        if len(consumers) != 1 or consumers[0].op_type != "QuantizeLinear":
            return NoMatch(node.name, "the Conv output does not go only to a QuantizeLinear")
        if node.output[0] in index.graph_outputs:
            return NoMatch(node.name, "the float Conv output is a graph output")
        q = consumers[0]
        x_scale = index.constant(dq_x.input[1])
        if x_scale is None:
            return NoMatch(node.name, "the activation scale is not constant")
        bias_name = ""
        replaced = [node.name, q.name]
        dead = [dq_x.name, dq_w.name]
        if len(node.input) > 2 and node.input[2]:
            dq_b = producers[2]
            if dq_b is None or dq_b.op_type != "DequantizeLinear":
                return NoMatch(node.name, "the bias is not an int32 DequantizeLinear")
            bias = index.constant(dq_b.input[0])
            b_scale = index.constant(dq_b.input[1])
            if bias is None or bias.dtype != np.int32 or b_scale is None:
                return NoMatch(node.name, "the bias is not a constant int32 initializer")
            expected = (np.float32(x_scale) * _per_channel(w_scale, m, "w_scale", node.name)
                        .astype(np.float32)).astype(np.float32)
            if not np.allclose(_per_channel(b_scale, m, "bias scale", node.name), expected,
                               rtol=1e-6, atol=0):
                return NoMatch(node.name, "the bias scale is not x_scale * w_scale")
            bias_name = dq_b.input[0]
            dead.append(dq_b.name)
        inputs = [dq_x.input[0], dq_x.input[1], dq_x.input[2] if len(dq_x.input) > 2 else "",
                  dq_w.input[0], dq_w.input[1], dq_w.input[2] if len(dq_w.input) > 2 else "",
                  q.input[1], q.input[2] if len(q.input) > 2 else "", bias_name]
        return ConvLayer(
            name=node.name, form="qdq", inputs=inputs, output=q.output[0],
            attributes=conv_attributes(node), weight=weight,
            w_scale=_per_channel(w_scale, m, "w_scale", node.name).astype(np.float32),
            w_zero_point=_per_channel(w_zp, m, "w_zero_point", node.name),
            replaced_nodes=replaced, maybe_dead_nodes=dead,
        )


RULES = (QLinearConvRule(), QDQConvRule(), ROUPConvRule())
FULLY_CONNECTED = ("QLinearMatMul", "MatMulInteger", "QGemm", "MatMul", "Gemm")
UNSUPPORTED_CONVS = ("ConvInteger", "QLinearConvTranspose", "ConvTranspose")
