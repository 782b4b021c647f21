"""What the matrix-product rules share: a product ``Y = A B`` as the ConvLayer of a 1x1
conv whose filters are B's columns (see ``_layer``), and Gemm's attribute checks."""

from __future__ import annotations

import numpy as np
import onnx

from ._layer import (
    ATTENTION, FULLY_CONNECTED_KIND, QUANT_TYPES, ConvLayer, GraphIndex, MatMulLowering, NoMatch,
    attribute, per_channel,
)


def matmul_layer(node: onnx.NodeProto, index: GraphIndex, *, form: str, a: str, b: str,
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
    if bias and not bias_matches(index, bias, m):
        return NoMatch(node.name, "the bias is not a constant int32 initializer of one value "
                                  "per output column")
    return ConvLayer(
        name=node.name, form=form,
        inputs=[a, a_scale, a_zp, w_name, b_scale_name, b_zp_name, y_scale, y_zp, bias],
        output=output, attributes={"group": lowering.groups} if lowering.groups > 1 else {},
        weight=conv_weight,
        w_scale=per_channel(b_scale, m, "w_scale", node.name).astype(np.float32),
        w_zero_point=per_channel(w_zp, m, "w_zero_point", node.name),
        replaced_nodes=replaced, maybe_dead_nodes=list(dead), kind=kind, matmul=lowering,
        dynamic_weight_shape=dynamic_shape,
    )


def bias_matches(index: GraphIndex, name: str, columns: int) -> bool:
    bias = index.constant(name)
    return bias is not None and bias.dtype == np.int32 and bias.size == columns


def gemm_refusal(node: onnx.NodeProto) -> NoMatch | None:
    if attribute(node, "transA", 0):
        return NoMatch(node.name, "Gemm with transA=1")
    if attribute(node, "alpha", 1.0) != 1.0 or attribute(node, "beta", 1.0) != 1.0:
        return NoMatch(node.name, "Gemm with alpha or beta other than 1")
    return None
