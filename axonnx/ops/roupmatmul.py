"""The numpy oracle of ``ROUPMatMul``: this file *is* the op's specification.

ROUPMatMul is QLinearMatMul (or, without y_scale, MatMulInteger) in which every position of
B has its own multiplier (docs/roupmatmul-op.md). Each batch matrix product
``Y_i = A_i B_i`` *is* a 1x1 ROUPConv: x = A_i^T as [1, K, M, 1] (K channels, M pixels),
w = B_i^T as [N, K, 1, 1] (one filter per output column). So the per-position arithmetic
(zero-point-free operands, LUT corrections, requantization) is the conv oracle's, called
here on that view: there is one formula for both ops.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import onnx

from axonnx.errors import AxonnxError
from axonnx.multipliers import Multiplier
from axonnx.ops import roupconv
from axonnx.ops.roupconv import DOMAIN, OPSET_VERSION, Assignment, oracle_op

OP_TYPE = "ROUPMatMul"
REQUIRED_INPUTS = ("a", "a_scale", "a_zero_point", "b", "b_scale", "b_zero_point")
# then y_scale, y_zero_point (absent: int32 accumulators, as MatMulInteger) and the bias


def _columns(values, n: int, what: str) -> np.ndarray:
    values = np.asarray(values).reshape(-1)
    if values.size not in (1, n):
        raise AxonnxError(f"{OP_TYPE}: {what} must be a scalar or hold one value per column "
                          f"of b ({n}), got {values.size} values")
    return np.broadcast_to(values, (n,))


def roup_matmul(
    a: np.ndarray, a_scale, a_zero_point, b: np.ndarray, b_scale, b_zero_point,
    y_scale=None, y_zero_point=None, bias: np.ndarray | None = None, *,
    multipliers: Sequence[Multiplier | str] = ("ROUP(0,0)",),
    multiplier_index: np.ndarray | None = None, encoded_operand: str = "weight",
    return_accumulator: bool = False,
) -> np.ndarray:
    """Reference ROUPMatMul: numpy ``matmul`` broadcasting over the batch dims of a
    [..., M, K] and b [..., K, N]. ``multiplier_index`` broadcasts to b's shape (one
    multiplier per position of b, shared by every batch matrix of a it multiplies). Without
    ``y_scale`` the result is the int32 accumulator (MatMulInteger's output); with it, y of
    ``y_zero_point``'s dtype, requantized per column as QLinearMatMul."""
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim < 2 or b.ndim < 2:
        raise AxonnxError(f"{OP_TYPE}: a and b need rank 2 or more, got {a.shape} and {b.shape}")
    (m, k), (k_b, n) = a.shape[-2:], b.shape[-2:]
    if k != k_b:
        raise AxonnxError(f"{OP_TYPE}: a {a.shape} and b {b.shape} do not chain (K {k} != {k_b})")
    try:
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        index = (np.zeros(b.shape, np.int64) if multiplier_index is None
                 else np.broadcast_to(np.asarray(multiplier_index).astype(np.int64), b.shape))
    except ValueError:
        raise AxonnxError(f"{OP_TYPE}: a {a.shape}, b {b.shape} and multiplier_index do not "
                          "broadcast") from None
    if a_zero_point is not None and np.asarray(a_zero_point).size != 1:
        raise AxonnxError(f"{OP_TYPE}: a_zero_point must be a scalar (per-tensor a)")
    w_scale = _columns(b_scale if b_scale is not None else np.float32(1), n, "b_scale")
    w_zero = _columns(b_zero_point if b_zero_point is not None else np.zeros((), b.dtype), n,
                      "b_zero_point")
    zx = np.zeros((), a.dtype) if a_zero_point is None else np.asarray(a_zero_point).reshape(())
    bias = None if bias is None else np.asarray(bias).reshape(-1)  # [N] or QGemm's [1, N]
    integer_output = y_scale is None
    a_all = np.broadcast_to(a, batch + (m, k))
    b_all = np.broadcast_to(b, batch + (k, n))
    index_all = np.broadcast_to(index, batch + (k, n))
    out = np.empty(batch + (m, n), np.int64 if integer_output else np.asarray(y_zero_point).dtype)
    for i in np.ndindex(*batch):
        # The 1x1-conv view of one product (module docstring).
        x = a_all[i].T.reshape(1, k, m, 1)
        w = np.ascontiguousarray(b_all[i].T).reshape(n, k, 1, 1)
        idx = np.ascontiguousarray(index_all[i].T).reshape(n, k, 1, 1)
        y = roupconv.roup_conv(
            x, a_scale, zx, w, w_scale, w_zero, y_scale, y_zero_point, bias,
            multipliers=multipliers, multiplier_index=idx, encoded_operand=encoded_operand,
            return_accumulator=integer_output or return_accumulator)
        out[i] = y[0, :, :, 0].T
    if integer_output and not return_accumulator:
        if np.abs(out).max(initial=0) >= 2**31:
            raise AxonnxError(f"{OP_TYPE}: the accumulator overflows int32")
        return out.astype(np.int32)
    return out


# ---- the ONNX node -------------------------------------------------------------------------

def make_roupmatmul_node(inputs: Sequence[str], outputs: Sequence[str], *, name: str,
                         multipliers: Sequence[Multiplier], multiplier_index: np.ndarray,
                         encoded_operand: str = "weight") -> onnx.NodeProto:
    """A ROUPMatMul node; ``multiplier_index`` broadcasts to b's shape ([..., K, N])."""
    node = roupconv.make_roupconv_node(inputs, outputs, name=name, multipliers=multipliers,
                                       multiplier_index=multiplier_index,
                                       encoded_operand=encoded_operand)
    node.op_type = OP_TYPE
    return node


def conv_index(index: np.ndarray) -> np.ndarray:
    """A ROUPMatMul multiplier_index [..., K, N] in the plan's conv layout [G*N, K, 1, 1]
    (filters = output columns of each batch matrix of b, in order)."""
    index = np.asarray(index)
    k, n = index.shape[-2:]
    per_matrix = np.swapaxes(index.reshape(-1, k, n), 1, 2)  # [G, N, K]
    return np.ascontiguousarray(per_matrix).reshape(-1, k, 1, 1)


def matmul_index(conv: np.ndarray, b_shape: Sequence[int]) -> np.ndarray:
    """The inverse of :func:`conv_index`: a conv-layout [G*N, K, 1, 1] assignment as
    ROUPMatMul's multiplier_index of shape ``b_shape`` ([..., K, N], dims may be 1)."""
    *batch, k, n = b_shape
    per_matrix = np.asarray(conv).reshape(-1, n, k)
    return np.ascontiguousarray(np.swapaxes(per_matrix, 1, 2)).reshape(*batch, k, n)


def reference_op():
    """The oracle as an ``onnx.reference`` op (see ``roupconv.reference_op``)."""
    return oracle_op(OP_TYPE, roup_matmul)

