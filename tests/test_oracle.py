"""The numpy oracle of ROUPConv: (a) with exact multipliers it equals onnxruntime's own
QLinearConv byte for byte; (b) with approximate ones it equals a brute-force per-product
transcription of SPEC.md."""

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from axonnx.multipliers import LUT, parse
from axonnx.ops.roupconv import roup_conv

from conftest import GEOMETRIES

TYPES = {np.uint8: TensorProto.UINT8, np.int8: TensorProto.INT8}


def random_case(rng, xdt, wdt, per_channel, group, m_per_group=3, c_per_group=2, hw=(7, 6),
                k=(3, 3), w_span=None):
    c, m = c_per_group * group, m_per_group * group
    info_x = np.iinfo(xdt)
    lo, hi = w_span or ((-127, 127) if wdt == np.int8 else (0, 255))
    x = rng.integers(info_x.min, info_x.max + 1, (2, c, *hw)).astype(xdt)
    w = rng.integers(lo, hi + 1, (m, c_per_group, *k)).astype(wdt)
    zx = np.array(rng.integers(info_x.min, info_x.max), xdt)
    if per_channel:
        ws = (rng.random(m) * 0.01 + 0.001).astype(np.float32)
        zw = (rng.integers(0, 9, m) if wdt == np.uint8 else np.zeros(m)).astype(wdt)
    else:
        ws, zw = np.float32(0.004), np.array(5 if wdt == np.uint8 else 0, wdt)
    zy = np.array(rng.integers(info_x.min, info_x.max), xdt)
    bias = rng.integers(-3000, 3000, m).astype(np.int32)
    return [x, np.float32(0.02), zx, w, ws, zw, np.float32(0.07), zy, bias]


def qlinearconv(args, attrs):
    names = ["x", "xs", "zx", "w", "ws", "zw", "ys", "zy", "b"]
    inits = [numpy_helper.from_array(np.asarray(v), n) for v, n in zip(args[1:], names[1:])]
    node = helper.make_node("QLinearConv", names, ["y"], **attrs)
    xdt = args[0].dtype.type
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TYPES[xdt], None)],
                              [helper.make_tensor_value_info("y", TYPES[xdt], None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    return session.run(None, {"x": args[0]})[0]




@pytest.mark.parametrize("geometry", GEOMETRIES, ids=range(len(GEOMETRIES)))
@pytest.mark.parametrize("xdt, wdt", [(np.int8, np.int8), (np.uint8, np.uint8), (np.uint8, np.int8)],
                         ids=["s8s8", "u8u8", "u8s8"])
@pytest.mark.parametrize("per_channel", [True, False])
@pytest.mark.parametrize("group", [1, 2, 6])
def test_exact_oracle_equals_qlinearconv(geometry, xdt, wdt, per_channel, group):
    rng = np.random.default_rng(hash((str(geometry), per_channel, group)) % 2**32)
    # onnxruntime's u8s8 AVX2 path saturates int16 pairs: keep those weights small.
    span = (-64, 63) if (xdt, wdt) == (np.uint8, np.int8) else None
    args = random_case(rng, xdt, wdt, per_channel, group, m_per_group=1 if group == 6 else 3,
                       c_per_group=1 if group == 6 else 2, w_span=span)
    attrs = dict(geometry, group=group)
    expected = qlinearconv(args, attrs)
    assert np.array_equal(roup_conv(*args, **attrs), expected)
    assert np.array_equal(roup_conv(*args[:8], **attrs), qlinearconv(args[:8] + [np.zeros_like(args[8])], attrs))


def brute_force(args, mults, index, encoded, attrs):
    """SPEC.md term by term with Python ints, padding with x's zero point: ROUP and SKIP
    see zero-point-free operands, sum M(x - zx, w - zw) (ROUP by its golden scalar model);
    a LUT sees stored operands in its domain, sum M(a,b) - zb*a - za*b + za*zb; + bias."""
    x, xs, zx, w, ws, zw, ys, zy, b = args
    n, c, h, wd = x.shape
    m = w.shape[0]
    top, left, bottom, right = attrs.get("pads", [0, 0, 0, 0])
    sh, sw = attrs.get("strides", [1, 1])
    kh, kw = w.shape[2:]
    ho = (h + top + bottom - kh) // sh + 1
    wo = (wd + left + right - kw) // sw + 1
    zw = np.broadcast_to(zw, (m,))

    def dom(v, stored, signed):
        v = int(v)
        if stored == np.int8 and not signed:
            return v + 128
        if stored == np.uint8 and signed:
            return v - 128
        return v

    acc = np.zeros((n, m, ho, wo), np.int64)
    for b_i in range(n):
        for o in range(m):
            for i in range(ho):
                for j in range(wo):
                    total = int(b[o])
                    for ci in range(c):
                        for p in range(kh):
                            for q in range(kw):
                                r, s = i * sh + p - top, j * sw + q - left
                                xv = x[b_i, ci, r, s] if 0 <= r < h and 0 <= s < wd else zx
                                mult = mults[index[o, ci, p, q]]
                                if mult.zero_point_free:
                                    xa, wb = int(xv) - int(zx), int(w[o, ci, p, q]) - int(zw[o])
                                    a, bb = (xa, wb) if encoded == "weight" else (wb, xa)
                                    golden = getattr(mult, "multiply_scalar", None)
                                    total += (golden(a, bb) if golden
                                              else int(mult.multiply(np.array(a), np.array(bb))))
                                    continue
                                if encoded == "weight":
                                    a_s, b_s = mult.a_signed, mult.b_signed
                                    a, za = dom(xv, x.dtype.type, a_s), dom(zx, x.dtype.type, a_s)
                                    bb, zb = dom(w[o, ci, p, q], w.dtype.type, b_s), dom(zw[o], w.dtype.type, b_s)
                                else:
                                    a_s, b_s = mult.a_signed, mult.b_signed
                                    a, za = dom(w[o, ci, p, q], w.dtype.type, a_s), dom(zw[o], w.dtype.type, a_s)
                                    bb, zb = dom(xv, x.dtype.type, b_s), dom(zx, x.dtype.type, b_s)
                                prod = int(mult.multiply(np.array(a), np.array(bb)))
                                total += prod - zb * a - za * bb + za * zb
                    acc[b_i, o, i, j] = total
    return acc


@pytest.mark.parametrize("encoded", ["weight", "activation"])
@pytest.mark.parametrize("xdt, wdt", [(np.uint8, np.int8), (np.int8, np.uint8)])
def test_approximate_oracle_equals_brute_force(encoded, xdt, wdt):
    rng = np.random.default_rng(11)
    args = random_case(rng, xdt, wdt, True, 1, m_per_group=2, c_per_group=2, hw=(4, 5))
    table = rng.integers(0, 60000, (256, 256))
    mults = [parse("ROUP(0,0)"), parse("ROUP(1,4)"), parse("SKIP"), parse("ROUP(2;r=3/0)"),
             LUT("noisy", table, a_signed=False, b_signed=False)]
    index = rng.integers(0, len(mults), args[3].shape)
    attrs = dict(pads=[1, 0, 1, 1], strides=[2, 1])
    acc = roup_conv(*args, multipliers=mults, multiplier_index=index, encoded_operand=encoded,
                    return_accumulator=True, **attrs)
    assert np.array_equal(acc, brute_force(args, mults, index, encoded, attrs))


def test_exact_lut_equals_exact_roup():
    rng = np.random.default_rng(5)
    args = random_case(rng, np.uint8, np.int8, True, 2)
    index = rng.integers(0, 2, args[3].shape)
    exact = roup_conv(*args, pads=[1, 1, 1, 1], group=2)
    for signed in (False, True):
        mults = [parse("ROUP(0,0)"), LUT.exact(a_signed=signed, b_signed=signed)]
        got = roup_conv(*args, multipliers=mults, multiplier_index=index, pads=[1, 1, 1, 1], group=2)
        assert np.array_equal(got, exact)
