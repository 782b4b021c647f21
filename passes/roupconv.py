"""``ROUPConvRule`` and ``ROUPConvTransposeRule``: nodes already rewritten, so that a model
can be re-planned."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnx

from axonnx.ops.roupconv import DOMAIN, OP_TYPE, conv_attributes, read_assignment
from axonnx.ops.roupconvtranspose import OP_TYPE as TRANSPOSE_OP_TYPE
from axonnx.ops.roupconvtranspose import to_conv_layout, transpose_attributes

from ._layer import (
    ATTENTION, CONV, FULLY_CONNECTED_KIND, TRANSPOSED_CONV, ConvLayer, GraphIndex, NoMatch,
    padded, per_channel,
)
from .qlinearconv import QLinearConvRule


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
                name=node.name, form="roupconv", inputs=padded(node.input), output=node.output[0],
                attributes=conv_attributes(node), weight=None,
                w_scale=per_channel(consts[0], m, "w_scale", node.name).astype(np.float32),
                w_zero_point=per_channel(consts[1], m, "w_zero_point", node.name),
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


def _is_lowered(node: onnx.NodeProto, index: GraphIndex) -> bool:
    """A ROUPConv the matmul rewrite wrote: its x is reshaped into it and its output
    reshaped back (see ``passes.rewrite``)."""
    before = index.producer.get(node.input[0])
    after = index.consumers.get(node.output[0], [])
    return (before is not None and before.op_type == "Reshape"
            and len(after) == 1 and after[0].op_type == "Reshape")


class ROUPConvTransposeRule:
    """A ROUPConvTranspose already rewritten (re-planning): weight and assignment in conv
    layout, as ``QDQConvTransposeRule`` gives them."""

    anchor = TRANSPOSE_OP_TYPE

    def match(self, node: onnx.NodeProto, index: GraphIndex) -> ConvLayer | NoMatch:
        if node.op_type != TRANSPOSE_OP_TYPE or node.domain != DOMAIN:
            return NoMatch(node.name, "not a ROUPConvTranspose")
        weight = index.constant(node.input[3])
        consts = [index.constant(node.input[i]) for i in (4, 5)]
        if weight is None or any(c is None for c in consts):
            return NoMatch(node.name, "the weight, its scale or zero point is not constant")
        attributes = transpose_attributes(node)
        group = int(attributes.get("group", 1))
        assignment = read_assignment(node)
        if assignment.index is not None:
            assignment = replace(assignment, index=to_conv_layout(assignment.index, group))
        m = weight.shape[1] * group
        return ConvLayer(
            name=node.name, form="roupconv", inputs=padded(node.input), output=node.output[0],
            attributes=attributes, weight=to_conv_layout(weight, group),
            w_scale=per_channel(consts[0], m, "w_scale", node.name).astype(np.float32),
            w_zero_point=per_channel(consts[1], m, "w_zero_point", node.name),
            replaced_nodes=[node.name], assignment=assignment, kind=TRANSPOSED_CONV)
