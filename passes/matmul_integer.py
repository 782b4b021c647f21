"""``MatMulIntegerRule``: dynamic quantization's ``MatMulInteger`` (quantize_dynamic writes
DynamicQuantizeLinear -> MatMulInteger -> Cast -> Mul [-> Add]) as the int32 form of
ROUPMatMul: only the MatMulInteger is replaced; the Cast and the scale Mul after it stay."""

from __future__ import annotations

import numpy as np
import onnx

from ._layer import ConvLayer, GraphIndex, NoMatch, padded
from ._matmul import matmul_layer


def element_type(index: GraphIndex, name: str) -> np.dtype | None:
    """A tensor's element type: an initializer's, DynamicQuantizeLinear's (uint8), or a
    declared one (graph inputs and value_info); None when unknown."""
    constant = index.constant(name)
    if constant is not None:
        return constant.dtype
    producer = index.producer.get(name)
    if producer is not None and producer.op_type == "DynamicQuantizeLinear":
        return np.dtype(np.uint8)
    graph = index.graph
    for info in list(graph.input) + list(graph.value_info) + list(graph.output):
        if info.name == name and info.type.tensor_type.elem_type:
            return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(info.type.tensor_type.elem_type))
    return None


class MatMulIntegerRule:
    anchor = "MatMulInteger"

    def match(self, node: onnx.NodeProto, index: GraphIndex) -> ConvLayer | NoMatch:
        if node.op_type != self.anchor or node.domain not in ("", "ai.onnx"):
            return NoMatch(node.name, "not a MatMulInteger")
        a, b, a_zp, b_zp = padded(node.input)[:4]
        a_dtype, b_dtype = element_type(index, a), element_type(index, b)
        if a_dtype is None or b_dtype is None:
            return NoMatch(node.name, "the element type of a or b is unknown (declare it in the "
                                      "graph's value_info)")
        layer = matmul_layer(node, index, form="integer", a=a, b=b,
                             quant=("", a_zp, "", b_zp, "", ""), output=node.output[0],
                             replaced=[node.name], b_dtype=b_dtype)
        if layer:
            layer.x_dtype = a_dtype
        return layer
