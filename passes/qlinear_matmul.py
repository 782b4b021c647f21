"""``QLinearMatMulRule``: the QOperator ``QLinearMatMul``."""

from __future__ import annotations

import onnx

from ._layer import ConvLayer, GraphIndex, NoMatch
from ._matmul import matmul_layer


class QLinearMatMulRule:
    anchor = "QLinearMatMul"

    def match(self, node: onnx.NodeProto, index: GraphIndex) -> ConvLayer | NoMatch:
        if node.op_type != self.anchor or node.domain not in ("", "ai.onnx"):
            return NoMatch(node.name, "not a QLinearMatMul")
        a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp = node.input
        return matmul_layer(node, index, form="qoperator", a=a, b=b,
                             quant=(a_scale, a_zp, b_scale, b_zp, y_scale, y_zp),
                             output=node.output[0], replaced=[node.name])
