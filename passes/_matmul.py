"""What the matrix-product rules share: a product ``Y = A B`` as the ConvLayer of a
ROUPMatMul (its weight in conv layout, see ``_layer``), and Gemm's attribute checks."""

from __future__ import annotations

import numpy as np
import onnx

from axonnx.errors import AxonnxError
from axonnx.ops.roupmatmul import conv_index

from ._layer import (
    ATTENTION, FULLY_CONNECTED_KIND, QUANT_TYPES, ConvLayer, GraphIndex, MatMulOperands, NoMatch,
    attribute,
)


def column_values(values: np.ndarray, groups: int, columns: int, what: str, layer: str
                  ) -> np.ndarray:
    """Per-tensor or per-column values ([N]) for the G*N filters of a conv-layout weight."""
    values = np.asarray(values).reshape(-1)
    if values.size not in (1, columns):
        raise AxonnxError(f"layer {layer!r}: {what} has {values.size} values for {columns} "
                          "columns")
    return np.tile(np.broadcast_to(values, (columns,)), groups)


def float16_refusal(node: onnx.NodeProto, index: GraphIndex, scales: tuple[str, ...],
                    form: str) -> NoMatch | None:
    """Scales other than float32. QLinearMatMul's float16 scales are taken (the rewrite
    widens them to float32: onnxruntime computes such a product in float32, checked bit for
    bit in tests/test_conformance.py); a QDQ product with float16 scales runs in float16."""
    dtypes = {c.dtype for s in scales if s and (c := index.constant(s)) is not None}
    if dtypes <= {np.dtype(np.float32)} or (form == "qoperator" and node.op_type == "QLinearMatMul"
                                            and dtypes <= {np.dtype(np.float32), np.dtype(np.float16)}):
        return None
    return NoMatch(node.name, f"its scales are {'/'.join(sorted(map(str, dtypes)))}, not float32: "
                              "the dequantized product is computed in that float type, which "
                              "ROUPMatMul's float32 requantization does not reproduce; quantize "
                              "with float32 scales")


def matmul_layer(node: onnx.NodeProto, index: GraphIndex, *, form: str, a: str, b: str,
                 quant: tuple[str, ...], bias: str = "", trans_b: bool = False,
                 b_axis: int | None = None, output: str, replaced: list[str],
                 dead: list[str] = (), b_dtype: np.dtype | None = None) -> ConvLayer | NoMatch:
    """The ConvLayer of ``Y = A B`` (``B^T`` when ``trans_b``). ``quant`` = (a_scale, a_zp,
    b_scale, b_zp, y_scale, y_zp) names; ``b_axis`` is the axis of B that per-channel
    scales run along (QDQ), None: columns. ``form="integer"`` (MatMulInteger): no scales
    (the ROUPMatMul's int32 form; the rewrite gives it unit scales), an activation B's zero
    point may be computed (DynamicQuantizeLinear), of type ``b_dtype``."""
    a_scale, a_zp, b_scale_name, b_zp_name, y_scale, y_zp = quant
    integer = form == "integer"
    b_scale = np.ones(1, np.float32) if integer else index.constant(b_scale_name)
    b_zp = index.constant(b_zp_name) if b_zp_name else None
    runtime_b_zp = integer and b_zp_name and b_zp is None and index.constant(b) is None
    if b_scale is None or (b_zp_name and b_zp is None and not runtime_b_zp):
        return NoMatch(node.name, "the weight scale or zero point is not constant")
    a_scale_value = np.ones(1, np.float32) if integer else index.constant(a_scale)
    if a_scale_value is None:
        return NoMatch(node.name, "the activation scale is not constant")
    refused = float16_refusal(node, index, (a_scale, b_scale_name, y_scale), form)
    if refused is not None:  # a NoMatch is falsy
        return refused
    a_zp_value = index.constant(a_zp) if a_zp else None
    a_zp_shape = index.shape(a_zp) if a_zp and a_zp_value is None else None
    if integer and ((a_zp_value is not None and a_zp_value.size != 1)
                    or (a_zp_shape is not None and np.prod(a_zp_shape, dtype=np.int64) != 1)):
        return NoMatch(node.name, "a_zero_point holds one value per row of a; ROUPMatMul "
                                  "subtracts one zero point from all of a (its operands are "
                                  "zero-point-free per tensor): quantize a per tensor")
    if a_scale_value.size != 1 or (a_zp_value is not None and a_zp_value.size != 1):
        return NoMatch(node.name, "the activation is not quantized per tensor (ROUPMatMul, as "
                                  "QLinearMatMul, takes one a_scale and a_zero_point)")
    a_shape = index.shape(a)
    if a_shape is not None and len(a_shape) < 2:
        return NoMatch(node.name, "a 1-D first operand (a vector times a matrix); ROUPMatMul "
                                  "takes [..., M, K]: reshape it to [1, K]")
    weight = index.constant(b)
    if weight is not None:
        if weight.dtype.type not in QUANT_TYPES:
            return NoMatch(node.name, "the weight is not int8/uint8")
        if weight.ndim < 2 or (trans_b and weight.ndim != 2):
            return NoMatch(node.name, f"the constant weight has rank {weight.ndim}; a matrix "
                                      "product needs [..., K, N] (a Gemm's [K, N] or [N, K])")
        columns_axis = weight.ndim - 2 if trans_b else weight.ndim - 1
        if b_scale.size > 1 and b_axis is not None and b_axis % weight.ndim != columns_axis:
            return NoMatch(node.name, f"per-channel weights quantized along axis {b_axis}, "
                                      "not along the output columns")
        matrices = np.swapaxes(weight, -1, -2) if trans_b else weight  # [..., K, N]
        k, n = matrices.shape[-2:]
        if any(v is not None and v.size not in (1, n) for v in (b_scale, b_zp)):
            return NoMatch(node.name, f"b's scale or zero point has {b_scale.size} values for "
                                      f"{n} columns (per matrix of a rank-{weight.ndim} b?); "
                                      "ROUPMatMul takes one per tensor or one per column")
        groups = int(np.prod(matrices.shape[:-2], dtype=np.int64))
        operands = MatMulOperands(a, b, tuple(matrices.shape), k)
        conv_weight, dynamic_shape, kind = conv_index(matrices), None, FULLY_CONNECTED_KIND
        w_dtype = weight.dtype
    else:
        if trans_b:
            return NoMatch(node.name, "a Gemm whose weight is not constant")
        if runtime_b_zp:  # DynamicQuantizeLinear's: a scalar; ROUPMatMul checks it per run
            b_zp = np.zeros(1, b_dtype)
        elif integer and b_zp is None:
            b_zp = np.zeros(1, b_dtype)
        if b_scale.size > 1 or b_zp is None or b_zp.size > 1:
            return NoMatch(node.name, "activation x activation product without a per-tensor "
                                      "scale and zero point for the second operand")
        shape = index.shape(b)
        if shape is not None and len(shape) < 2:
            return NoMatch(node.name, "a 1-D second operand (a matrix times a vector); "
                                      "ROUPMatMul takes [..., K, N]: reshape it to [K, 1]")
        # One index for every batch matrix; a dim that is not static gets one multiplier.
        k, n = (None, None) if shape is None else shape[-2:]
        groups = 1
        index_shape = (k or 1, n or 1)
        operands = MatMulOperands(a, b, index_shape, k)
        conv_weight, dynamic_shape, kind = None, conv_index(np.zeros(index_shape)).shape, ATTENTION
        w_dtype = b_zp.dtype
        n = index_shape[1]
    w_zp = np.zeros(1, w_dtype) if b_zp is None else b_zp
    columns = (weight.shape[-2] if trans_b else weight.shape[-1]) if weight is not None else None
    if bias and (columns is None or not bias_matches(index, bias, columns)):
        return NoMatch(node.name, "the bias is not a constant int32 initializer of one value "
                                  "per output column")
    return ConvLayer(
        name=node.name, form=form,
        inputs=[a, a_scale, a_zp, b, b_scale_name, b_zp_name, y_scale, y_zp, bias],
        output=output, attributes={}, weight=conv_weight,
        w_scale=column_values(b_scale, groups, n, "b_scale", node.name).astype(np.float32),
        w_zero_point=column_values(w_zp, groups, n, "b_zero_point", node.name),
        replaced_nodes=replaced, maybe_dead_nodes=list(dead), kind=kind, matmul=operands,
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
