"""Rules that recognise a quantized 2-D convolution, in any of the forms axonnx rewrites.

Each rule matches at one anchor node and returns either a :class:`ConvLayer` (everything
the rewrite needs) or a :class:`NoMatch` carrying the reason it refused, so that
``axonnx inspect`` and the tests can say *why* a node was left alone.

* ``QLinearConvRule``: QOperator form, one ``QLinearConv`` node.
* ``QDQConvRule``: ``DequantizeLinear(x) , DequantizeLinear(w) [, DequantizeLinear(bias)]
  -> Conv -> QuantizeLinear``, as onnxruntime's ``quantize_static`` writes it.
* ``ROUPConvRule``: an already rewritten node, so that a model can be re-planned.

Matrix products are convolutions too: ``Y[M,N] = A[M,K] B[K,N]`` is a 1x1 conv of
``x = A^T`` as ``[1, K, M, 1]`` (K channels, M "pixels") with ``w = B^T`` as ``[N, K, 1, 1]``
(one filter per output column); G batched products of two activations (attention) are
a grouped 1x1 conv with group G. The matmul rules (``QLinearMatMulRule``,
``QDQMatMulRule``, ``QGemmRule``, ``QDQGemmRule``) return a ``ConvLayer`` in those terms
with a :class:`MatMulLowering` that says how the rewrite reshapes the operands.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from axonnx.errors import AxonnxError
from axonnx.ops.roupconv import DOMAIN, OP_TYPE, Assignment, conv_attributes, read_assignment

QUANT_TYPES = (np.int8, np.uint8)

# Layer kinds, as inspect and energy label them.
CONV = "conv"
FULLY_CONNECTED_KIND = "fully connected"
ATTENTION = "attention (activation x activation)"


@dataclass
class NoMatch:
    node: str
    reason: str

    def __bool__(self) -> bool:
        return False


@dataclass(frozen=True)
class MatMulLowering:
    """How a matrix product becomes a 1x1 ROUPConv: ``a`` (quantized, [..., M, K]) is
    reshaped to x = [1, G*K, M, 1]; a weight ``b`` that is not constant ([..., K, N], G
    matrices) to w = [G*N, K, 1, 1]; the conv output [1, G*N, M, 1] back to [..., M, N]."""

    a: str
    b: str | None  # the quantized second operand when it is not constant, else None
    groups: int
    k: int
    n: int


@dataclass
class ConvLayer:
    """A quantized 2-D conv found in a graph, in the terms of QLinearConv's inputs."""

    name: str
    form: str  # "qoperator" | "qdq" | "roupconv"
    inputs: list[str]  # x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp[, bias]
    output: str
    attributes: dict
    weight: np.ndarray | None  # None: not a constant (activation x activation)
    w_scale: np.ndarray  # [M] float32
    w_zero_point: np.ndarray  # [M], weight dtype
    replaced_nodes: list[str]  # nodes the ROUPConv replaces (the anchor last)
    maybe_dead_nodes: list[str] = field(default_factory=list)  # removed if unused after
    assignment: Assignment | None = None  # for ROUPConv nodes
    kind: str = CONV
    matmul: MatMulLowering | None = None  # for matrix products not yet rewritten
    dynamic_weight_shape: tuple[int, ...] | None = None  # the conv weight's, when not constant

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return tuple(self.weight.shape) if self.weight is not None else self.dynamic_weight_shape

    @property
    def weight_dtype(self) -> np.dtype:
        return self.w_zero_point.dtype

    def pixels(self, output_shape) -> int:
        """How often each weight position is used per sample, from the layer's output
        shape at batch 1: H_out x W_out of a conv, the rows M of a matrix product (its
        [.., M, N] output, or [1, G*N, M, 1] once rewritten, holds G*N values per row)."""
        if self.matmul is None:  # a conv, or a rewritten product: [N, M, H, W]
            return int(output_shape[2]) * int(output_shape[3])
        return int(np.prod(output_shape)) // self.weight_shape[0]

    @property
    def real_weight(self) -> np.ndarray | None:
        """Dequantised weights, the basis of the ranking policies (None when the weight is
        an activation)."""
        if self.weight is None:
            return None
        m = self.weight.shape[0]
        zw = self.w_zero_point.astype(np.float64).reshape(m, 1, 1, 1)
        scale = self.w_scale.astype(np.float64).reshape(m, 1, 1, 1)
        return (self.weight.astype(np.float64) - zw) * scale


class GraphIndex:
    """Producers, consumers and constants of a graph, looked up by tensor name."""

    def __init__(self, graph: onnx.GraphProto, model: onnx.ModelProto | None = None):
        self.graph = graph
        self._model = model  # for static shapes (ONNX shape inference), on demand
        self._shapes: dict[str, tuple[int | None, ...]] | None = None
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

    def shape(self, name: str) -> tuple[int | None, ...] | None:
        """A tensor's static shape (None where a dim is symbolic), by ONNX shape inference,
        or where that stops (com.microsoft ops) by running a model with fixed input shapes
        once on zeros; None when unknown."""
        if name in self.initializers:
            return tuple(self.initializers[name].dims)
        if self._shapes is None:
            self._shapes = {}
            if self._model is not None:
                inferred = onnx.shape_inference.infer_shapes(self._model, strict_mode=False)
                g = inferred.graph
                for v in list(g.input) + list(g.value_info) + list(g.output):
                    t = v.type.tensor_type
                    if t.HasField("shape"):
                        self._shapes[v.name] = tuple(
                            d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                            for d in t.shape.dim)
        if name not in self._shapes and self._model is not None and name in self.producer:
            self._measure_shapes()
        return self._shapes.get(name)

    def _measure_shapes(self) -> None:
        from axonnx.model import tensor_shapes

        missing = [o for n in self.graph.node for o in n.output if o and o not in self._shapes]
        try:
            self._shapes.update(tensor_shapes(self._model, missing))
        except Exception:  # dynamic inputs, or a model onnxruntime cannot run: unknown
            pass
        self._model = None  # measured once


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
        assignment = read_assignment(node)
        if index.constant(node.input[3]) is None:
            # A rewritten activation x activation product: the assignment has the
            # weight's shape, the zero point its type.
            consts = [index.constant(node.input[i]) for i in (4, 5)]
            if any(c is None for c in consts) or assignment.index is None:
                return NoMatch(node.name, "a ROUPConv whose weight, scale and zero point are "
                                          "not constant needs its multiplier_index")
            m = assignment.index.shape[0]
            return ConvLayer(
                name=node.name, form="roupconv", inputs=_padded(node.input), output=node.output[0],
                attributes=conv_attributes(node), weight=None,
                w_scale=_per_channel(consts[0], m, "w_scale", node.name).astype(np.float32),
                w_zero_point=_per_channel(consts[1], m, "w_zero_point", node.name),
                replaced_nodes=[node.name], assignment=assignment, kind=ATTENTION,
                dynamic_weight_shape=tuple(assignment.index.shape))
        clone = onnx.NodeProto()
        clone.CopyFrom(node)
        clone.op_type, clone.domain = "QLinearConv", ""
        layer = super().match(clone, index)
        if layer:
            layer.form = "roupconv"
            layer.assignment = assignment
            layer.kind = FULLY_CONNECTED_KIND if _is_lowered(node, index) else CONV
        return layer


def _padded(inputs) -> list[str]:
    return list(inputs) + [""] * (9 - len(inputs))


def _is_lowered(node: onnx.NodeProto, index: GraphIndex) -> bool:
    """A ROUPConv the matmul rewrite wrote: its x is reshaped into it and its output
    reshaped back (see ``passes.rewrite``)."""
    before = index.producer.get(node.input[0])
    after = index.consumers.get(node.output[0], [])
    return (before is not None and before.op_type == "Reshape"
            and len(after) == 1 and after[0].op_type == "Reshape")


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


def _attribute(node: onnx.NodeProto, name: str, default):
    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def _matmul_layer(node: onnx.NodeProto, index: GraphIndex, *, form: str, a: str, b: str,
                  quant: tuple[str, ...], bias: str = "", trans_b: bool = False,
                  b_axis: int | None = None, output: str, replaced: list[str],
                  dead: list[str] = ()) -> ConvLayer | NoMatch:
    """The ConvLayer of ``Y = A B`` (``B^T`` when ``trans_b``), a 1x1 conv whose filters
    are B's columns. ``quant`` = (a_scale, a_zp, b_scale, b_zp, y_scale, y_zp) names;
    ``b_axis`` is the axis of B that per-channel scales run along (QDQ), None: columns."""
    a_scale, a_zp, b_scale_name, b_zp_name, y_scale, y_zp = quant
    b_scale = index.constant(b_scale_name)
    b_zp = index.constant(b_zp_name) if b_zp_name else None
    if b_scale is None or (b_zp_name and b_zp is None):
        return NoMatch(node.name, "the weight scale or zero point is not constant")
    if index.constant(a_scale) is None:
        return NoMatch(node.name, "the activation scale is not constant")
    weight = index.constant(b)
    if weight is not None:
        if weight.dtype.type not in QUANT_TYPES:
            return NoMatch(node.name, "the weight is not int8/uint8")
        if weight.ndim != 2:
            return NoMatch(node.name, f"the constant weight has rank {weight.ndim}; axonnx "
                                      "rewrites matrix products with a 2-D weight [K, N]")
        columns_axis = 0 if trans_b else 1
        if b_scale.size > 1 and b_axis is not None and b_axis % 2 != columns_axis:
            return NoMatch(node.name, f"per-channel weights quantized along axis {b_axis}, "
                                      "not along the output columns")
        filters = np.ascontiguousarray(weight if trans_b else weight.T)  # [N, K]
        n, k = filters.shape
        lowering = MatMulLowering(a, None, 1, k, n)
        conv_weight, dynamic_shape, kind = filters.reshape(n, k, 1, 1), None, FULLY_CONNECTED_KIND
        w_name, w_dtype = f"{node.name}_conv_weight", weight.dtype
    else:
        if trans_b:
            return NoMatch(node.name, "a Gemm whose weight is not constant")
        shape = index.shape(b)
        if shape is None or None in shape or len(shape) < 2:
            return NoMatch(node.name, "activation x activation product whose second operand "
                                      "has no static shape (its batch fixes the conv's group "
                                      "count); give the model fixed input shapes")
        a_shape = index.shape(a)
        if a_shape is not None and tuple(a_shape[:-2]) != tuple(shape[:-2]):
            return NoMatch(node.name, f"activation x activation product with broadcast batch "
                                      f"dims {tuple(a_shape[:-2])} x {tuple(shape[:-2])}")
        if b_scale.size > 1 or b_zp is None or b_zp.size > 1:
            return NoMatch(node.name, "activation x activation product without a per-tensor "
                                      "scale and zero point for the second operand")
        k, n = int(shape[-2]), int(shape[-1])
        groups = int(np.prod(shape[:-2], dtype=np.int64))
        lowering = MatMulLowering(a, b, groups, k, n)
        conv_weight, dynamic_shape, kind = None, (groups * n, k, 1, 1), ATTENTION
        w_name, w_dtype = b, b_zp.dtype
    m = lowering.groups * n
    w_zp = np.zeros(1, w_dtype) if b_zp is None else b_zp
    if bias and not _bias_matches(index, bias, m):
        return NoMatch(node.name, "the bias is not a constant int32 initializer of one value "
                                  "per output column")
    return ConvLayer(
        name=node.name, form=form,
        inputs=[a, a_scale, a_zp, w_name, b_scale_name, b_zp_name, y_scale, y_zp, bias],
        output=output, attributes={"group": lowering.groups} if lowering.groups > 1 else {},
        weight=conv_weight,
        w_scale=_per_channel(b_scale, m, "w_scale", node.name).astype(np.float32),
        w_zero_point=_per_channel(w_zp, m, "w_zero_point", node.name),
        replaced_nodes=replaced, maybe_dead_nodes=list(dead), kind=kind, matmul=lowering,
        dynamic_weight_shape=dynamic_shape,
    )


def _bias_matches(index: GraphIndex, name: str, columns: int) -> bool:
    bias = index.constant(name)
    return bias is not None and bias.dtype == np.int32 and bias.size == columns


class QLinearMatMulRule:
    anchor = "QLinearMatMul"

    def match(self, node: onnx.NodeProto, index: GraphIndex) -> ConvLayer | NoMatch:
        if node.op_type != self.anchor or node.domain not in ("", "ai.onnx"):
            return NoMatch(node.name, "not a QLinearMatMul")
        a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp = node.input
        return _matmul_layer(node, index, form="qoperator", a=a, b=b,
                             quant=(a_scale, a_zp, b_scale, b_zp, y_scale, y_zp),
                             output=node.output[0], replaced=[node.name])


class QGemmRule:
    """onnxruntime's QGemm (com.microsoft): A, a_scale, a_zp, B, b_scale, b_zp, C, y_scale,
    y_zp; quantized output only."""

    anchor = "QGemm"

    def match(self, node: onnx.NodeProto, index: GraphIndex) -> ConvLayer | NoMatch:
        if node.op_type != self.anchor or node.domain != "com.microsoft":
            return NoMatch(node.name, "not a QGemm")
        inputs = _padded(node.input)
        if not inputs[7]:
            return NoMatch(node.name, "QGemm with a float output (no y_scale): nothing to "
                                      "requantize as ROUPConv does")
        refused = _gemm_attributes(node)
        if refused is not None:  # a NoMatch is falsy
            return refused
        return _matmul_layer(node, index, form="qoperator", a=inputs[0], b=inputs[3],
                             quant=(inputs[1], inputs[2], inputs[4], inputs[5], inputs[7],
                                    inputs[8]),
                             bias=inputs[6], trans_b=bool(_attribute(node, "transB", 0)),
                             output=node.output[0], replaced=[node.name])


def _gemm_attributes(node: onnx.NodeProto) -> NoMatch | None:
    if _attribute(node, "transA", 0):
        return NoMatch(node.name, "Gemm with transA=1")
    if _attribute(node, "alpha", 1.0) != 1.0 or _attribute(node, "beta", 1.0) != 1.0:
        return NoMatch(node.name, "Gemm with alpha or beta other than 1")
    return None


class QDQMatMulRule:
    """``DequantizeLinear(a), DequantizeLinear(b) [, DequantizeLinear(int32 bias)] ->
    MatMul|Gemm -> QuantizeLinear``."""

    anchor = "MatMul"

    def match(self, node: onnx.NodeProto, index: GraphIndex) -> ConvLayer | NoMatch:
        if node.op_type != self.anchor or node.domain not in ("", "ai.onnx"):
            return NoMatch(node.name, f"not a {self.anchor}")
        if self.anchor == "Gemm":
            refused = _gemm_attributes(node)
            if refused is not None:  # a NoMatch is falsy
                return refused
        producers = [index.producer.get(i) for i in node.input]
        dq_a, dq_b = producers[0], producers[1]
        if dq_a is None or dq_a.op_type != "DequantizeLinear":
            return NoMatch(node.name, "the activation does not come from DequantizeLinear")
        if dq_b is None or dq_b.op_type != "DequantizeLinear":
            return NoMatch(node.name, "the weight does not come from DequantizeLinear")
        consumers = index.consumers.get(node.output[0], [])
        if len(consumers) != 1 or consumers[0].op_type != "QuantizeLinear":
            return NoMatch(node.name, f"the {self.anchor} output does not go only to a "
                                      "QuantizeLinear")
        if node.output[0] in index.graph_outputs:
            return NoMatch(node.name, f"the float {self.anchor} output is a graph output")
        q = consumers[0]
        dead = [dq_a.name, dq_b.name]
        bias = ""
        if len(node.input) > 2 and node.input[2]:
            dq_c = producers[2]
            if dq_c is None or dq_c.op_type != "DequantizeLinear":
                return NoMatch(node.name, "the bias is not an int32 DequantizeLinear")
            x_scale, w_scale = index.constant(dq_a.input[1]), index.constant(dq_b.input[1])
            c_scale = index.constant(dq_c.input[1])
            if x_scale is None or w_scale is None or c_scale is None or not np.allclose(
                    c_scale.reshape(-1), (np.float32(x_scale) * w_scale.astype(np.float32)
                                          .reshape(-1)).astype(np.float32), rtol=1e-6, atol=0):
                return NoMatch(node.name, "the bias scale is not x_scale * w_scale")
            bias = dq_c.input[0]
            dead.append(dq_c.name)
        opt = lambda n, i: n.input[i] if len(n.input) > i else ""  # noqa: E731
        return _matmul_layer(
            node, index, form="qdq", a=dq_a.input[0], b=dq_b.input[0],
            quant=(dq_a.input[1], opt(dq_a, 2), dq_b.input[1], opt(dq_b, 2), q.input[1],
                   opt(q, 2)),
            bias=bias, trans_b=bool(_attribute(node, "transB", 0)),
            b_axis=_attribute(dq_b, "axis", 1), output=q.output[0],
            replaced=[node.name, q.name], dead=dead)


class QDQGemmRule(QDQMatMulRule):
    anchor = "Gemm"


class MatMulIntegerRule:
    anchor = "MatMulInteger"

    def match(self, node: onnx.NodeProto, index: GraphIndex) -> NoMatch:
        return NoMatch(node.name, "MatMulInteger gives int32 accumulators (dynamic "
                                  "quantization); ROUPConv requantizes to 8 bits, so it stays "
                                  "exact: quantize statically (quantize_static) to approximate it")


RULES = (QLinearConvRule(), QDQConvRule(), ROUPConvRule())
MATMUL_RULES = (QLinearMatMulRule(), QDQMatMulRule(), QGemmRule(), QDQGemmRule(),
                MatMulIntegerRule())
UNSUPPORTED_CONVS = {
    op: f"{op} is not supported: ROUPConv computes a forward convolution, and a transposed "
        "one (each input pixel scattered over the output) has no ROUPConv form; it stays exact"
    for op in ("ConvTranspose", "QLinearConvTranspose")}
UNSUPPORTED_CONVS["ConvInteger"] = (
    "ConvInteger gives int32 accumulators (dynamic quantization); ROUPConv requantizes to "
    "8 bits, so it stays exact")
