"""``QGemmRule``: onnxruntime's ``QGemm`` (com.microsoft) with a quantized output."""

from __future__ import annotations

import onnx

from ._layer import ConvLayer, GraphIndex, NoMatch, attribute, padded
from ._matmul import gemm_refusal, matmul_layer


class QGemmRule:
    """onnxruntime's QGemm (com.microsoft): A, a_scale, a_zp, B, b_scale, b_zp, C, y_scale,
    y_zp; quantized output only."""

    anchor = "QGemm"

    def match(self, node: onnx.NodeProto, index: GraphIndex) -> ConvLayer | NoMatch:
        if node.op_type != self.anchor or node.domain != "com.microsoft":
            return NoMatch(node.name, "not a QGemm")
        inputs = padded(node.input)
        if not inputs[7]:
            return NoMatch(node.name, "QGemm with a float output (no y_scale): nothing to "
                                      "requantize as ROUPConv does")
        refused = gemm_refusal(node)
        if refused is not None:  # a NoMatch is falsy
            return refused
        return matmul_layer(node, index, form="qoperator", a=inputs[0], b=inputs[3],
                             quant=(inputs[1], inputs[2], inputs[4], inputs[5], inputs[7],
                                    inputs[8]),
                             bias=inputs[6], trans_b=bool(attribute(node, "transB", 0)),
                             output=node.output[0], replaced=[node.name])
