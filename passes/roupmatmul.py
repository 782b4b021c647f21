"""``ROUPMatMulRule``: a matrix product already rewritten, so that a model can be re-planned."""

from __future__ import annotations

import numpy as np
import onnx

from axonnx.ops.roupconv import DOMAIN, read_assignment
from axonnx.ops.roupmatmul import OP_TYPE, conv_index

from ._layer import (
    ATTENTION, FULLY_CONNECTED_KIND, ConvLayer, GraphIndex, MatMulOperands, NoMatch, padded,
)
from ._matmul import column_values


class ROUPMatMulRule:
    anchor = OP_TYPE

    def match(self, node: onnx.NodeProto, index: GraphIndex) -> ConvLayer | NoMatch:
        if node.op_type != OP_TYPE or node.domain != DOMAIN:
            return NoMatch(node.name, "not a ROUPMatMul")
        inputs = padded(node.input)
        assignment = read_assignment(node)
        b_scale, b_zp = index.constant(inputs[4]), index.constant(inputs[5])
        if b_scale is None or b_zp is None:
            return NoMatch(node.name, "a ROUPMatMul whose b_scale or b_zero_point is not "
                                      "constant cannot be re-planned")
        b = index.constant(inputs[3])
        if b is not None:
            stored = assignment.index if assignment.index is not None else np.zeros((1, 1))
            matmul_index = np.broadcast_to(stored, b.shape)
            weight, dynamic_shape, kind = conv_index(b), None, FULLY_CONNECTED_KIND
            operands = MatMulOperands(inputs[0], inputs[3], tuple(b.shape), b.shape[-2])
        else:
            if assignment.index is None:
                return NoMatch(node.name, "a ROUPMatMul of two activations needs its "
                                          "multiplier_index")
            matmul_index = assignment.index
            weight, dynamic_shape, kind = None, conv_index(matmul_index).shape, ATTENTION
            k = matmul_index.shape[-2]
            operands = MatMulOperands(inputs[0], inputs[3], tuple(matmul_index.shape),
                                      k if k > 1 else None)
        *batch, _, n = operands.index_shape
        groups = int(np.prod(batch, dtype=np.int64))
        index_conv = conv_index(np.ascontiguousarray(matmul_index))
        return ConvLayer(
            name=node.name, form="roupmatmul", inputs=inputs, output=node.output[0],
            attributes={}, weight=weight,
            w_scale=column_values(b_scale, groups, n, "b_scale", node.name).astype(np.float32),
            w_zero_point=column_values(b_zp, groups, n, "b_zero_point", node.name),
            replaced_nodes=[node.name],
            assignment=type(assignment)(assignment.multipliers, index_conv,
                                        assignment.encoded_operand),
            kind=kind, matmul=operands, dynamic_weight_shape=dynamic_shape)
