"""``MatMulIntegerRule``: dynamic quantization's ``MatMulInteger`` is always refused."""

from __future__ import annotations

import onnx

from ._layer import GraphIndex, NoMatch


class MatMulIntegerRule:
    anchor = "MatMulInteger"

    def match(self, node: onnx.NodeProto, index: GraphIndex) -> NoMatch:
        return NoMatch(node.name, "MatMulInteger gives int32 accumulators (dynamic "
                                  "quantization); ROUPMatMul requantizes to 8 bits and has no "
                                  "int32-output form, so it stays exact: quantize statically "
                                  "(quantize_static) to approximate it")
