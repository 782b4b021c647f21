"""The numpy oracle of ``ROUPConvTranspose``: this file *is* the op's specification.

ROUPConvTranspose is a 2-D ConvTranspose on quantized operands (QLinearConv's inputs and
requantization, ConvTranspose's weight layout ``[C_in, C_out/group, kH, kW]`` and
attributes) in which every weight position has its own multiplier
(docs/roupconvtranspose-op.md). Only the real products count: every input pixel meets every
weight position of its group once, and padding only crops the output, so it never reaches a
multiplier. Each product is formed by the ROUPConv oracle's :func:`multiply_terms`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import onnx

from axonnx.errors import AxonnxError
from axonnx.multipliers import Multiplier
from axonnx.ops.roupconv import (
    AUTO_PADS, DOMAIN, checked_assignment, conv_attributes, multiply_terms, oracle_op,
    requantize,
)

OP_TYPE = "ROUPConvTranspose"


@dataclass(frozen=True)
class TransposeGeometry:
    """Resolved 2-D ConvTranspose geometry: output pixel ``o = i * stride - pad_begin +
    k * dilation`` for input pixel i and tap k, kept when ``0 <= o < out``."""

    kernel: tuple[int, int]
    strides: tuple[int, int]
    dilations: tuple[int, int]
    pad_begin: tuple[int, int]  # top, left
    out: tuple[int, int]
    group: int


def resolve_transpose_geometry(weight_shape: Sequence[int], input_hw: Sequence[int], *,
                               auto_pad: str = "NOTSET", dilations=None, group: int = 1,
                               kernel_shape=None, output_padding=None, output_shape=None,
                               pads=None, strides=None) -> TransposeGeometry:
    """ONNX ConvTranspose's defaults, ``output_shape`` and ``auto_pad``, as onnxruntime 1.32
    resolves them (checked against it): with an output shape or SAME_* (whose output is
    ``input * stride``, or the natural size where that is smaller), the total padding
    ``max(0, natural - output)`` is split with the odd one at the start, except for
    SAME_UPPER, at the end; ``output_padding`` must be below the stride."""
    if len(weight_shape) != 4:
        raise AxonnxError(f"{OP_TYPE} supports 2-D transposed convolution only (weight rank 4), "
                          f"got a weight of rank {len(weight_shape)}")
    kernel = tuple(kernel_shape) if kernel_shape else tuple(weight_shape[2:])
    strides = tuple(strides) if strides else (1, 1)
    dilations = tuple(dilations) if dilations else (1, 1)
    adj = tuple(output_padding) if output_padding else (0, 0)
    if auto_pad not in AUTO_PADS:
        raise AxonnxError(f"{OP_TYPE}: unknown auto_pad {auto_pad!r}; use one of {AUTO_PADS}")
    if any(a < 0 or a >= s for a, s in zip(adj, strides)):  # onnxruntime refuses them too
        raise AxonnxError(f"{OP_TYPE}: output_padding {list(adj)} must lie in [0, stride) "
                          f"for strides {list(strides)}")
    pads = tuple(pads) if pads and auto_pad == "NOTSET" else (0, 0, 0, 0)
    wanted = tuple(output_shape[-2:]) if output_shape else None
    begin, out = [], []
    for axis in range(2):
        size, stride = int(input_hw[axis]), strides[axis]
        natural = (size - 1) * stride + adj[axis] + (kernel[axis] - 1) * dilations[axis] + 1
        if wanted is None and auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
            begin.append(pads[axis])
            out.append(natural - pads[axis] - pads[axis + 2])
            continue
        target = wanted[axis] if wanted else size * stride
        total = max(0, natural - target)
        begin.append(total // 2 if auto_pad == "SAME_UPPER" else total - total // 2)
        out.append(int(target) if wanted else natural - total)
        span = (kernel[axis] - 1) * dilations[axis] + 1
        if (out[-1] + total - span) // stride + 1 != size:  # onnxruntime's consistency check
            raise AxonnxError(f"{OP_TYPE}: output_shape {list(wanted)} does not fit the "
                              f"{input_hw[0]}x{input_hw[1]} input (at most {natural + stride - 1 - adj[axis]} "
                              f"along axis {axis}); fix the output_shape attribute")
    if min(out) < 1:
        raise AxonnxError(f"{OP_TYPE}: the padding leaves no output for the "
                          f"{input_hw[0]}x{input_hw[1]} input")
    return TransposeGeometry(kernel, strides, dilations, (begin[0], begin[1]),
                             (out[0], out[1]), int(group))


def roup_conv_transpose(
    x: np.ndarray, x_scale, x_zero_point, w: np.ndarray, w_scale, w_zero_point,
    y_scale, y_zero_point, bias: np.ndarray | None = None, *,
    multipliers: Sequence[Multiplier | str] = ("ROUP(0,0)",),
    multiplier_index: np.ndarray | None = None,
    encoded_operand: str = "weight",
    auto_pad: str = "NOTSET", dilations=None, group: int = 1, kernel_shape=None,
    output_padding=None, output_shape=None, pads=None, strides=None,
    return_accumulator: bool = False,
) -> np.ndarray:
    """Reference ROUPConvTranspose: y[n, o, oh, ow] = requantize(B[o] + sum over input
    pixels (ih, iw), channels c of o's group and taps (kh, kw) that land on (oh, ow) of
    M(x[n, c, ih, iw] - zx, w[c, o, kh, kw] - zw[o])). ``w_scale`` and ``w_zero_point``
    are scalars or per output channel ([C_out]). Returns y, or the int64 accumulator
    [N, C_out, H_out, W_out] when ``return_accumulator`` is set."""
    mults, index = checked_assignment(multipliers, multiplier_index, encoded_operand, w.shape,
                                      OP_TYPE)
    geometry = resolve_transpose_geometry(
        w.shape, x.shape[2:], auto_pad=auto_pad, dilations=dilations, group=group,
        kernel_shape=kernel_shape, output_padding=output_padding, output_shape=output_shape,
        pads=pads, strides=strides)
    n, c, h, wd = x.shape
    c_in, o_per_group, kh, kw = w.shape
    g = geometry.group
    if c != c_in or c_in % g:
        raise AxonnxError(f"{OP_TYPE}: {c} input channels and weight {w.shape} do not "
                          f"fit group={g}")
    c_per_group, m_out = c_in // g, o_per_group * g
    zx = int(np.asarray(x_zero_point).reshape(()))
    zw = np.broadcast_to(np.asarray(w_zero_point).reshape(-1), (m_out,))
    (sh, sw), (dh, dw) = geometry.strides, geometry.dilations
    # Every product lands on the full (uncropped) output; padding then crops it.
    full_h, full_w = (h - 1) * sh + (kh - 1) * dh + 1, (wd - 1) * sw + (kw - 1) * dw + 1
    full = np.zeros((n, m_out, full_h, full_w), dtype=np.int64)
    xs = x.astype(np.int64)
    for o in range(m_out):
        grp, o_local = divmod(o, o_per_group)
        channels = slice(grp * c_per_group, (grp + 1) * c_per_group)
        x_group = xs[:, channels]  # [N, Cg, H, W]
        for mi, mult in enumerate(mults):
            for i in range(kh):
                for j in range(kw):
                    mask = index[channels, o_local, i, j] == mi
                    if not mask.any():
                        continue
                    w_taps = w[channels, o_local, i, j][mask].astype(np.int64)[None, :, None, None]
                    terms = multiply_terms(mult, x_group[:, mask], w_taps, x.dtype, w.dtype, zx,
                                           int(zw[o]), encoded_operand)
                    full[:, o, i * dh:i * dh + (h - 1) * sh + 1:sh,
                         j * dw:j * dw + (wd - 1) * sw + 1:sw] += terms.sum(axis=1)
    (top, left), (out_h, out_w) = geometry.pad_begin, geometry.out
    acc = np.zeros((n, m_out, out_h, out_w), dtype=np.int64)
    rows = slice(max(0, top), min(full_h, top + out_h))
    cols = slice(max(0, left), min(full_w, left + out_w))
    acc[:, :, rows.start - top:rows.stop - top, cols.start - left:cols.stop - left] = \
        full[:, :, rows, cols]
    if bias is not None:
        acc += np.asarray(bias, dtype=np.int64)[None, :, None, None]
    if return_accumulator:
        return acc
    if np.abs(acc).max(initial=0) >= 2**31:
        raise AxonnxError(f"{OP_TYPE}: the accumulator overflows int32")
    return requantize(acc, x_scale, w_scale, y_scale, y_zero_point)


def transpose_attributes(node: onnx.NodeProto) -> dict:
    """The ConvTranspose attributes of a (ROUP)ConvTranspose node, as python values."""
    out = conv_attributes(node)
    for a in node.attribute:
        if a.name in ("output_padding", "output_shape"):
            out[a.name] = list(onnx.helper.get_attribute_value(a))
    return out


# ---- the equivalent conv layout of plans ------------------------------------------------

def to_conv_layout(w: np.ndarray, group: int) -> np.ndarray:
    """A ConvTranspose weight [C_in, C_out/g, kH, kW] as the conv layout plans use,
    [C_out, C_in/g, kH, kW] (filter = output channel on axis 0; taps not flipped, so a
    kernel row is a row of the original weight)."""
    c_in, o_g, kh, kw = w.shape
    c_g = c_in // group
    return (np.asarray(w).reshape(group, c_g, o_g, kh, kw).transpose(0, 2, 1, 3, 4)
            .reshape(group * o_g, c_g, kh, kw))


def from_conv_layout(w: np.ndarray, group: int) -> np.ndarray:
    """The inverse of :func:`to_conv_layout`."""
    m, c_g, kh, kw = w.shape
    o_g = m // group
    return (np.asarray(w).reshape(group, o_g, c_g, kh, kw).transpose(0, 2, 1, 3, 4)
            .reshape(group * c_g, o_g, kh, kw))


def reference_op():
    """The oracle as an ``onnx.reference`` op (see ``roupconv.reference_op``)."""
    return oracle_op(OP_TYPE, roup_conv_transpose, transpose_attributes)
