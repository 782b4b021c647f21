"""``QLinearConvRule``: the QOperator form, one ``QLinearConv`` node."""

from __future__ import annotations

import numpy as np
import onnx

from axonnx.ops.roupconv import conv_attributes

from ._layer import ConvLayer, GraphIndex, NoMatch, per_channel, rank_refusal, run_time_weight_reason


class QLinearConvRule:
    anchor = "QLinearConv"

    def match(self, node: onnx.NodeProto, index: GraphIndex) -> ConvLayer | NoMatch:
        if node.op_type != "QLinearConv" or node.domain not in ("", "ai.onnx"):
            return NoMatch(node.name, "not a QLinearConv")
        weight = index.constant(node.input[3])
        if weight is None:
            return NoMatch(node.name, run_time_weight_reason(index, node.input[3]))
        refused = rank_refusal(node, weight)
        if refused is not None:  # a NoMatch is falsy
            return refused
        consts = [index.constant(node.input[i]) for i in (4, 5)]
        if any(c is None for c in consts):
            return NoMatch(node.name, "the weight scale or zero point is not constant")
        m = weight.shape[0]
        inputs = list(node.input) + [""] * (9 - len(node.input))
        return ConvLayer(
            name=node.name, form="qoperator", inputs=inputs[:9], output=node.output[0],
            attributes=conv_attributes(node), weight=weight,
            w_scale=per_channel(consts[0], m, "w_scale", node.name).astype(np.float32),
            w_zero_point=per_channel(consts[1], m, "w_zero_point", node.name),
            replaced_nodes=[node.name],
        )
