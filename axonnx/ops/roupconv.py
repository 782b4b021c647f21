"""The numpy oracle of ``ROUPConv``: this file *is* the op's specification.

ROUPConv is 2-D QLinearConv in which every weight position has its own multiplier
(docs/roupconv-op.md). The C++ kernel in ``customops/roupconv`` follows this file bit for
bit, and the passes and energy counts are tested against it. It favours obviousness over
speed: every term of the accumulator is formed as SPEC.md writes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

from axonnx.errors import AxonnxError
from axonnx.multipliers import LUT, Multiplier, parse

DOMAIN = "com.axonnx"
OP_TYPE = "ROUPConv"
OPSET_VERSION = 1
ENCODED_OPERANDS = ("weight", "activation")
AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")
MAX_MULTIPLIERS = 256  # multiplier_index is one byte per weight position


@dataclass(frozen=True)
class ConvGeometry:
    """Explicit 2-D conv geometry: every ONNX default and auto_pad resolved."""

    kernel: tuple[int, int]
    strides: tuple[int, int]
    dilations: tuple[int, int]
    pads: tuple[int, int, int, int]  # top, left, bottom, right
    group: int

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        out = []
        for axis, size in enumerate((height, width)):
            span = self.dilations[axis] * (self.kernel[axis] - 1) + 1
            padded = size + self.pads[axis] + self.pads[axis + 2]
            out.append((padded - span) // self.strides[axis] + 1)
        if min(out) < 1:
            raise AxonnxError(f"{OP_TYPE}: the kernel does not fit the {height}x{width} input")
        return out[0], out[1]


def resolve_geometry(weight_shape: Sequence[int], input_hw: Sequence[int], *,
                     auto_pad: str = "NOTSET", dilations=None, group: int = 1,
                     kernel_shape=None, pads=None, strides=None) -> ConvGeometry:
    """Apply the ONNX Conv rules for defaults and auto_pad."""
    if len(weight_shape) != 4:
        raise AxonnxError(f"{OP_TYPE} supports 2-D convolution only (weight rank 4), "
                          f"got a weight of rank {len(weight_shape)}")
    kernel = tuple(kernel_shape) if kernel_shape else tuple(weight_shape[2:])
    strides = tuple(strides) if strides else (1, 1)
    dilations = tuple(dilations) if dilations else (1, 1)
    if auto_pad not in AUTO_PADS:
        raise AxonnxError(f"{OP_TYPE}: unknown auto_pad {auto_pad!r}; use one of {AUTO_PADS}")
    if auto_pad == "NOTSET":
        pads = tuple(pads) if pads else (0, 0, 0, 0)
    elif auto_pad == "VALID":
        pads = (0, 0, 0, 0)
    else:
        begin, end = [], []
        for axis in range(2):
            size = input_hw[axis]
            out = -(-size // strides[axis])
            total = max(0, (out - 1) * strides[axis] + dilations[axis] * (kernel[axis] - 1) + 1 - size)
            small, large = total // 2, total - total // 2
            begin.append(small if auto_pad == "SAME_UPPER" else large)
            end.append(large if auto_pad == "SAME_UPPER" else small)
        pads = (begin[0], begin[1], end[0], end[1])
    return ConvGeometry(kernel, strides, dilations, pads, int(group))


def to_domain(values: np.ndarray, stored_dtype, signed: bool) -> np.ndarray:
    """Stored uint8/int8 values as int64 in a multiplier's signed or unsigned domain."""
    v = np.asarray(values).astype(np.int64)
    stored_signed = np.dtype(stored_dtype) == np.int8
    if stored_signed and not signed:
        return v + 128
    if signed and not stored_signed:
        return v - 128
    return v


def im2col(x: np.ndarray, pad_value: int, geometry: ConvGeometry) -> tuple[np.ndarray, int, int]:
    """[N, C, H, W] -> [N, C, kH, kW, Ho, Wo], padding with ``pad_value``."""
    n, c, h, w = x.shape
    top, left, bottom, right = geometry.pads
    padded = np.full((n, c, h + top + bottom, w + left + right), pad_value, dtype=np.int64)
    padded[:, :, top:top + h, left:left + w] = x
    ho, wo = geometry.output_size(h, w)
    (kh, kw), (sh, sw), (dh, dw) = geometry.kernel, geometry.strides, geometry.dilations
    cols = np.empty((n, c, kh, kw, ho, wo), dtype=np.int64)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = padded[:, :, i * dh:i * dh + sh * (ho - 1) + 1:sh,
                                      j * dw:j * dw + sw * (wo - 1) + 1:sw]
    return cols, ho, wo


def requantize(acc: np.ndarray, x_scale, w_scale, y_scale, y_zero_point) -> np.ndarray:
    """onnxruntime's QLinearConv requantization, bit for bit: float32 scale
    ``x_scale * w_scale[m] / y_scale``, float32 product, round half to even, add the zero
    point, saturate. ``acc`` is [N, M, Ho, Wo]."""
    m = acc.shape[1]
    w_scale = np.broadcast_to(np.asarray(w_scale, np.float32).reshape(-1), (m,))
    scales = np.concatenate([np.asarray([x_scale, y_scale], np.float32).reshape(-1), w_scale])
    if not (np.isfinite(scales).all() and (scales > 0).all()):
        raise AxonnxError(f"{OP_TYPE}: x_scale, w_scale and y_scale must be positive finite "
                          "numbers")
    with np.errstate(over="ignore", invalid="ignore"):  # extreme scales overflow to inf
        scale = (np.float32(x_scale) * w_scale).astype(np.float32) / np.float32(y_scale)
        scaled = acc.astype(np.float32) * scale.astype(np.float32)[None, :, None, None]
    out_dtype = np.asarray(y_zero_point).dtype
    info = np.iinfo(out_dtype)
    zero_point = int(np.asarray(y_zero_point))
    # Saturate in float before rounding, as onnxruntime's MLAS does: rint(+inf) cast to an
    # integer would wrap to the minimum. A NaN (0 x inf) goes to the minimum, as MLAS's
    # max(value, minimum) gives.
    low, high = np.float32(info.min - zero_point), np.float32(info.max - zero_point)
    clamped = np.clip(np.where(np.isnan(scaled), low, scaled), low, high)
    return (np.rint(clamped).astype(np.int64) + zero_point).astype(out_dtype)


def checked_assignment(multipliers, multiplier_index, encoded_operand: str, weight_shape,
                       op_type: str = OP_TYPE) -> tuple[list[Multiplier], np.ndarray]:
    """The parsed multipliers and the int64 weight-shaped index, checked."""
    mults = [parse(m) if isinstance(m, str) else m for m in multipliers]
    if any(m.bits != 8 for m in mults):
        raise AxonnxError(f"{op_type}: operands are 8-bit, so every multiplier needs N=8")
    if encoded_operand not in ENCODED_OPERANDS:
        raise AxonnxError(f"{op_type}: encoded_operand must be one of {ENCODED_OPERANDS}")
    index = (np.zeros(weight_shape, np.int64) if multiplier_index is None
             else np.asarray(multiplier_index).astype(np.int64))
    if index.shape != tuple(weight_shape):
        raise AxonnxError(f"{op_type}: multiplier_index has shape {index.shape}, "
                          f"the weight has {tuple(weight_shape)}")
    if index.size and (index.min() < 0 or index.max() >= len(mults)):
        raise AxonnxError(f"{op_type}: multiplier_index refers past the "
                          f"{len(mults)} multipliers")
    return mults, index


def multiply_terms(mult: Multiplier, x_taps: np.ndarray, w_taps: np.ndarray, x_dtype, w_dtype,
                   zx: int, zw: int, encoded_operand: str) -> np.ndarray:
    """Each term's contribution to the accumulator, ``M(x, w)`` as SPEC.md feeds the
    multiplier, for stored activations ``x_taps`` and stored weights ``w_taps`` (broadcast
    against each other) with zero points ``zx`` and ``zw``."""
    # The rounded operand a is x when the weight is encoded, w otherwise.
    x_signed, w_signed = ((mult.a_signed, mult.b_signed) if encoded_operand == "weight"
                          else (mult.b_signed, mult.a_signed))
    if mult.zero_point_free:
        # SPEC: acc = sum M(x - zx, w - zw)
        xs, ws = x_taps - zx, w_taps - zw
        correction = 0
    else:
        # SPEC: acc = sum M(x_s, w_s) - zw_s sum x_s - zx_s sum w_s + K zx_s zw_s,
        # stored values moved into the table's domain.
        xs = to_domain(x_taps, x_dtype, x_signed)
        ws = to_domain(w_taps, w_dtype, w_signed)
        zxs = int(to_domain(zx, x_dtype, x_signed))
        zws = int(to_domain(zw, w_dtype, w_signed))
        correction = zxs * zws - zws * xs - zxs * ws
    if encoded_operand == "weight":
        products = mult.multiply(xs, ws)
    else:
        products = mult.multiply(np.broadcast_to(ws, np.broadcast_shapes(xs.shape, ws.shape)),
                                 xs)
    return products + correction


def roup_conv(
    x: np.ndarray, x_scale, x_zero_point, w: np.ndarray, w_scale, w_zero_point,
    y_scale, y_zero_point, bias: np.ndarray | None = None, *,
    multipliers: Sequence[Multiplier | str] = ("ROUP(0,0)",),
    multiplier_index: np.ndarray | None = None,
    encoded_operand: str = "weight",
    auto_pad: str = "NOTSET", dilations=None, group: int = 1, kernel_shape=None,
    pads=None, strides=None, return_accumulator: bool = False,
) -> np.ndarray:
    """Reference ROUPConv. Returns y (dtype of ``y_zero_point``), or the int64
    accumulator [N, M, Ho, Wo] when ``return_accumulator`` is set."""
    mults, index = checked_assignment(multipliers, multiplier_index, encoded_operand, w.shape)

    geometry = resolve_geometry(w.shape, x.shape[2:], auto_pad=auto_pad, dilations=dilations,
                                group=group, kernel_shape=kernel_shape, pads=pads,
                                strides=strides)
    n, c, _, _ = x.shape
    m_out, c_per_group = w.shape[:2]
    g = geometry.group
    if c != c_per_group * g or m_out % g:
        raise AxonnxError(f"{OP_TYPE}: {c} input channels and weight {w.shape} do not "
                          f"fit group={g}")
    zx = np.asarray(x_zero_point).reshape(())
    zw = np.broadcast_to(np.asarray(w_zero_point).reshape(-1), (m_out,))
    m_per_group = m_out // g

    # Padding holds x's zero point, so its zero-point-free value is an exact 0.
    cols, ho, wo = im2col(x.astype(np.int64), int(zx), geometry)
    acc = np.zeros((n, m_out, ho, wo), dtype=np.int64)
    for mi, mult in enumerate(mults):
        for out_ch in range(m_out):
            mask = index[out_ch] == mi
            if not mask.any():
                continue
            grp = out_ch // m_per_group
            window = cols[:, grp * c_per_group:(grp + 1) * c_per_group][:, mask]  # [N, k, Ho, Wo]
            w_taps = w[out_ch][mask].astype(np.int64)[None, :, None, None]
            terms = multiply_terms(mult, window, w_taps, x.dtype, w.dtype, int(zx),
                                   int(zw[out_ch]), encoded_operand)
            acc[:, out_ch] += terms.sum(axis=1)
    if bias is not None:
        acc += np.asarray(bias, dtype=np.int64)[None, :, None, None]
    if return_accumulator:
        return acc
    if np.abs(acc).max(initial=0) >= 2**31:
        raise AxonnxError(f"{OP_TYPE}: the accumulator overflows int32")
    return requantize(acc, x_scale, w_scale, y_scale, y_zero_point)


# ---- the ONNX node: building it and reading its assignment back -------------------------

def make_roupconv_node(
    inputs: Sequence[str], outputs: Sequence[str], *, name: str,
    multipliers: Sequence[Multiplier], multiplier_index: np.ndarray,
    encoded_operand: str = "weight", conv_attributes: dict | None = None,
    op_type: str = OP_TYPE,
) -> onnx.NodeProto:
    """A ROUPConv node (or, with ``op_type``, a ROUPConvTranspose one: the same multiplier
    attributes). ``conv_attributes`` are QLinearConv's attributes, copied as-is."""
    if not multipliers:
        raise AxonnxError(f"{op_type} node {name!r}: needs at least one multiplier")
    if len(multipliers) > MAX_MULTIPLIERS:
        raise AxonnxError(f"{op_type} node {name!r}: at most {MAX_MULTIPLIERS} multipliers per node")
    index = np.asarray(multiplier_index).astype(np.uint8)
    attrs = dict(conv_attributes or {})
    attrs["multipliers"] = [m.name for m in multipliers]
    attrs["multiplier_index"] = numpy_helper.from_array(index, name="multiplier_index")
    if encoded_operand != "weight":
        attrs["encoded_operand"] = encoded_operand
    luts = [m for m in multipliers if isinstance(m, LUT)]
    if luts:
        attrs["lut_tables"] = numpy_helper.from_array(
            np.stack([m.table for m in luts]).astype(np.int32), name="lut_tables")
        attrs["lut_signedness"] = [int(s) for m in luts for s in (m.a_signed, m.b_signed)]
    return helper.make_node(op_type, list(inputs), list(outputs), name=name, domain=DOMAIN,
                            **attrs)


@dataclass(frozen=True)
class Assignment:
    """The multiplier assignment a ROUPConv node carries."""

    multipliers: tuple[Multiplier, ...]
    index: np.ndarray  # int, weight-shaped
    encoded_operand: str = "weight"

    def per_position_names(self) -> np.ndarray:
        return np.asarray([m.name for m in self.multipliers], dtype=object)[self.index]


REQUIRED_INPUTS = ("x", "x_scale", "x_zero_point", "w", "w_scale", "w_zero_point", "y_scale",
                   "y_zero_point")  # then the optional bias B


def check_required_inputs(model: onnx.ModelProto) -> None:
    """Every ROUPConv node names its eight required inputs: an empty name ("" is ONNX's
    "absent") must be refused before a session runs the node."""
    for node in model.graph.node:
        if node.op_type != OP_TYPE or node.domain != DOMAIN:
            continue
        names = list(node.input) + [""] * max(0, len(REQUIRED_INPUTS) - len(node.input))
        missing = [what for what, name in zip(REQUIRED_INPUTS, names) if not name]
        if missing:
            raise AxonnxError(f"{OP_TYPE} node {node.name!r} lacks its required input(s) "
                              f"{', '.join(missing)}; every one of {', '.join(REQUIRED_INPUTS)} "
                              "must name a tensor")


def read_assignment(node: onnx.NodeProto) -> Assignment:
    """The assignment of a ROUPConv node, LUT tables included (no files needed)."""
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    try:
        names = [n.decode() if isinstance(n, bytes) else n
                 for n in attrs.get("multipliers", [b"ROUP(0,0)"])]
    except UnicodeDecodeError:
        raise AxonnxError(f"{OP_TYPE} node {node.name!r}: its 'multipliers' attribute is not "
                          "UTF-8 text; write multiplier names such as ROUP(1,4)") from None
    luts = {}
    if "lut_tables" in attrs:
        tables = numpy_helper.to_array(attrs["lut_tables"])
        signedness = list(attrs.get("lut_signedness", [0, 0] * len(tables)))
        lut_names = [n[4:-1] for n in names if n.startswith("LUT(")]
        for k, lut_name in enumerate(lut_names):
            luts[lut_name] = LUT(lut_name, tables[k], a_signed=bool(signedness[2 * k]),
                                 b_signed=bool(signedness[2 * k + 1]), source="model")
    mults = tuple(parse(n, luts=luts) for n in names)
    index = attrs.get("multiplier_index")
    index = None if index is None else numpy_helper.to_array(index).astype(np.int64)
    encoded = attrs.get("encoded_operand", b"weight")
    encoded = encoded.decode() if isinstance(encoded, bytes) else encoded
    return Assignment(mults, index, encoded)


def conv_attributes(node: onnx.NodeProto) -> dict:
    """The QLinearConv attributes of a (QLinear|ROUP)Conv node, as python values."""
    keep = ("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides")
    out = {}
    for a in node.attribute:
        if a.name in keep:
            value = helper.get_attribute_value(a)
            out[a.name] = value.decode() if isinstance(value, bytes) else value
    return out


def oracle_op(op_type: str, compute, node_attributes=lambda node: {}):
    """An ``onnx.reference`` op ``op_type`` of this domain that runs ``compute`` (an oracle
    taking the node's inputs in order) with the node's assignment and
    ``node_attributes(node)``. Each op's ``reference_op`` is one of these."""
    from onnx.reference.op_run import OpRun

    def _run(self, *inputs, **_attributes):
        assignment = read_assignment(self.onnx_node)
        return (compute(*inputs, multipliers=assignment.multipliers,
                        multiplier_index=assignment.index,
                        encoded_operand=assignment.encoded_operand,
                        **node_attributes(self.onnx_node)),)

    return type(op_type, (OpRun,), {"op_domain": DOMAIN, "_run": _run})


def reference_op():
    """The oracle as an ``onnx.reference`` op, for ``ReferenceEvaluator(model,
    new_ops=[reference_op()])``: a pure-Python way to run a transformed model."""
    return oracle_op(OP_TYPE, roup_conv, conv_attributes)
