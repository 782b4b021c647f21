"""``QDQMatMulRule`` and ``QDQGemmRule``: ``DequantizeLinear(a), DequantizeLinear(b)
[, DequantizeLinear(int32 bias)] -> MatMul|Gemm -> QuantizeLinear``."""

from __future__ import annotations

import numpy as np
import onnx

from ._layer import ConvLayer, GraphIndex, NoMatch, attribute
from ._matmul import gemm_refusal, matmul_layer


class QDQMatMulRule:
    """``DequantizeLinear(a), DequantizeLinear(b) [, DequantizeLinear(int32 bias)] ->
    MatMul|Gemm -> QuantizeLinear``."""

    anchor = "MatMul"

    def match(self, node: onnx.NodeProto, index: GraphIndex) -> ConvLayer | NoMatch:
        if node.op_type != self.anchor or node.domain not in ("", "ai.onnx"):
            return NoMatch(node.name, f"not a {self.anchor}")
        if self.anchor == "Gemm":
            refused = gemm_refusal(node)
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
        return matmul_layer(
            node, index, form="qdq", a=dq_a.input[0], b=dq_b.input[0],
            quant=(dq_a.input[1], opt(dq_a, 2), dq_b.input[1], opt(dq_b, 2), q.input[1],
                   opt(q, 2)),
            bias=bias, trans_b=bool(attribute(node, "transB", 0)),
            b_axis=attribute(dq_b, "axis", 1), output=q.output[0],
            replaced=[node.name, q.name], dead=dead)


class QDQGemmRule(QDQMatMulRule):
    anchor = "Gemm"
