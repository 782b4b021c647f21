"""The C++ ROUPConv kernel (customops/roupconv) against its specification, the numpy oracle
axonnx/ops/roupconv.py, byte for byte; exact mode against onnxruntime's own QLinearConv; and
bad attributes failing session creation with a message that names the node."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import AttributeProto, TensorProto, helper, numpy_helper

from axonnx import InferenceSession, get_library_path
from axonnx.errors import AxonnxError
from axonnx.multipliers import LUT, ROUP, Skip, parse
from axonnx.ops.roupconv import DOMAIN, OP_TYPE, make_roupconv_node, roup_conv

from conftest import GEOMETRIES

ONNX_TYPES = {np.dtype(np.uint8): TensorProto.UINT8, np.dtype(np.int8): TensorProto.INT8}
INPUT_NAMES = ["x", "x_scale", "x_zero_point", "w", "w_scale", "w_zero_point", "y_scale",
               "y_zero_point", "B"]
ORT_ERRORS = (ort.capi.onnxruntime_pybind11_state.Fail,
              ort.capi.onnxruntime_pybind11_state.InvalidArgument,
              ort.capi.onnxruntime_pybind11_state.RuntimeException,
              ort.capi.onnxruntime_pybind11_state.InvalidGraph)


# ---- building and running single-node models ---------------------------------------------------

def single_node_model(node, args, *, weight_input=False):
    """A graph around one (QLinear|ROUP)Conv node: x (and, optionally, w) are graph inputs, the
    other operands initializers. IR 10: onnxruntime 1.31 loads IR <= 13."""
    x, w, y_zero_point = args[0], args[3], args[7]
    inputs = [helper.make_tensor_value_info("x", ONNX_TYPES[x.dtype], ["N", "C", "H", "W"])]
    if weight_input:
        inputs.append(helper.make_tensor_value_info("w", ONNX_TYPES[w.dtype], list(w.shape)))
    inits = [numpy_helper.from_array(np.asarray(value), name)
             for name, value in zip(INPUT_NAMES, args)
             if value is not None and name != "x" and not (weight_input and name == "w")]
    graph = helper.make_graph(
        [node], "single", inputs,
        [helper.make_tensor_value_info("y", ONNX_TYPES[np.asarray(y_zero_point).dtype], None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21),
                                                    helper.make_opsetid(DOMAIN, 1)])
    model.ir_version = 10
    return model


def node_inputs(args):
    names = INPUT_NAMES[:8]
    if args[8] is not None:
        names = INPUT_NAMES
    return names


def run(model, args, *, threads=1, weight_input=False):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = threads
    feeds = {"x": args[0]}
    if weight_input:
        feeds["w"] = args[3]
    return InferenceSession(model, options).run(None, feeds)[0]


def run_roupconv(args, conv_attributes, *, multipliers=(ROUP(0, 0),), index=None,
                 encoded="weight", threads=1, weight_input=False):
    index = np.zeros(args[3].shape, np.uint8) if index is None else index
    node = make_roupconv_node(node_inputs(args), ["y"], name="conv", multipliers=list(multipliers),
                              multiplier_index=index, encoded_operand=encoded,
                              conv_attributes=conv_attributes)
    model = single_node_model(node, args, weight_input=weight_input)
    return run(model, args, threads=threads, weight_input=weight_input)


def run_qlinearconv(args, conv_attributes):
    node = helper.make_node("QLinearConv", node_inputs(args), ["y"], name="conv", **conv_attributes)
    return run(single_node_model(node, args), args)


def oracle(args, conv_attributes, *, multipliers=(ROUP(0, 0),), index=None, encoded="weight"):
    return roup_conv(*args, multipliers=list(multipliers), multiplier_index=index,
                     encoded_operand=encoded, **conv_attributes)


def random_args(rng, *, xdt, wdt, ydt, n, c, m, hw, kernel, per_channel, bias, group=1,
                w_span=None, zero_weight_zero_point=False):
    """The nine QLinearConv operands, random: [x, xs, zx, w, ws, zw, ys, zy, B or None]."""
    xi, wi, yi = np.iinfo(xdt), np.iinfo(wdt), np.iinfo(ydt)
    lo, hi = w_span or (wi.min, wi.max)
    x = rng.integers(xi.min, xi.max + 1, (n, c, *hw)).astype(xdt)
    w = rng.integers(lo, hi + 1, (m, c // group, *kernel)).astype(wdt)
    zx = np.array(rng.integers(xi.min, xi.max + 1), xdt)
    shape = (m,) if per_channel else ()
    ws = (rng.random(shape) * 0.02 + 0.001).astype(np.float32)
    if zero_weight_zero_point:
        zw = np.zeros(shape, wdt)
    else:
        zw = rng.integers(wi.min, wi.max + 1, shape).astype(wdt)
    zy = np.array(rng.integers(yi.min, yi.max + 1), ydt)
    b = rng.integers(-5000, 5000, m).astype(np.int32) if bias else None
    return [x, np.float32(rng.random() * 0.05 + 0.005), zx, w, ws, zw,
            np.float32(rng.random() * 0.5 + 0.05), zy, b]


# ---- the kernel equals the oracle on random cases ----------------------------------------------

def random_lut(rng, name):
    a_signed, b_signed = bool(rng.integers(2)), bool(rng.integers(2))
    a = np.arange(256)[:, None] - (128 if a_signed else 0)
    b = np.arange(256)[None, :] - (128 if b_signed else 0)
    if rng.integers(2):
        table = a * b + rng.integers(-300, 300, (256, 256))  # an approximate product
    else:
        table = rng.integers(-(2**20), 2**20, (256, 256))    # anything at all
    return LUT(name, table, a_signed=a_signed, b_signed=b_signed, source="test")


def random_multiplier(rng, k):
    kind = rng.choice(["roup", "vector", "skip", "lut"], p=[0.45, 0.15, 0.15, 0.25])
    if kind == "roup":
        return ROUP(int(rng.integers(0, 4)), int(rng.integers(0, 9)))
    if kind == "vector":
        p = int(rng.integers(0, 4))
        return ROUP(p, None, widths=tuple(int(r) for r in rng.integers(0, 9, 4 - p)))
    if kind == "skip":
        return Skip()
    return random_lut(rng, f"t{k}")


def assignment(rng, style, n_mults, w_shape):
    m, c, kh, kw = w_shape
    if style == "uniform":
        index = np.full(w_shape, rng.integers(n_mults))
    elif style == "filter":
        index = np.broadcast_to(rng.integers(0, n_mults, (m, 1, 1, 1)), w_shape)
    elif style == "kernel":
        index = np.broadcast_to(rng.integers(0, n_mults, (m, c, 1, 1)), w_shape)
    elif style == "row":
        index = np.broadcast_to(rng.integers(0, n_mults, (m, c, kh, 1)), w_shape)
    else:
        index = rng.integers(0, n_mults, w_shape)
    return np.ascontiguousarray(index).astype(np.uint8)


@st.composite
def conv_cases(draw):
    dtypes = st.sampled_from([np.uint8, np.int8])
    xdt, wdt, ydt = draw(dtypes), draw(dtypes), draw(dtypes)
    if draw(st.booleans()):
        group = draw(st.integers(1, 3))
        c_per_group, m_per_group = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    else:  # depthwise
        group = draw(st.integers(1, 6))
        c_per_group, m_per_group = 1, draw(st.integers(1, 2))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    hw = (draw(st.integers(1, 9)), draw(st.integers(1, 9)))
    strides = [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
    dilations = [draw(st.integers(1, 2)), draw(st.integers(1, 2))]
    auto_pad = draw(st.sampled_from(["NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]))
    attrs = dict(strides=strides, dilations=dilations, group=group)
    if auto_pad == "NOTSET":
        attrs["pads"] = draw(st.lists(st.integers(0, 2), min_size=4, max_size=4))
        pads = attrs["pads"]
    else:
        attrs["auto_pad"] = auto_pad
        pads = [0, 0, 0, 0]
    if draw(st.booleans()):
        attrs["kernel_shape"] = list(kernel)
    # The window must fit (SAME always fits).
    for axis in range(2):
        span = dilations[axis] * (kernel[axis] - 1) + 1
        if auto_pad in ("NOTSET", "VALID") and hw[axis] + pads[axis] + pads[axis + 2] < span:
            hw = tuple(span if a == axis else s for a, s in enumerate(hw))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    c, m = c_per_group * group, m_per_group * group
    args = random_args(rng, xdt=xdt, wdt=wdt, ydt=ydt, n=draw(st.integers(1, 2)), c=c, m=m, hw=hw,
                       kernel=kernel, per_channel=draw(st.booleans()), bias=draw(st.booleans()),
                       group=group)
    mults = [random_multiplier(rng, k) for k in range(draw(st.integers(1, 5)))]
    style = draw(st.sampled_from(["uniform", "filter", "kernel", "row", "position"]))
    index = assignment(rng, style, len(mults), args[3].shape)
    return dict(args=args, attrs=attrs, mults=mults, index=index,
                encoded=draw(st.sampled_from(["weight", "activation"])),
                weight_input=draw(st.booleans()), threads=draw(st.sampled_from([1, 2])))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_cases())
def test_kernel_equals_oracle(case):
    kw = dict(multipliers=case["mults"], index=case["index"], encoded=case["encoded"])
    spread_outputs(case["args"], case["attrs"], case["mults"], case["index"], case["encoded"])
    expected = oracle(case["args"], case["attrs"], **kw)
    got = run_roupconv(case["args"], case["attrs"], threads=case["threads"],
                       weight_input=case["weight_input"], **kw)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert got.tobytes() == expected.tobytes()


def resnet_like_case(seed, *, xdt=np.int8, per_channel=True):
    rng = np.random.default_rng(seed)
    args = random_args(rng, xdt=xdt, wdt=np.int8, ydt=xdt, n=3, c=16, m=32, hw=(17, 15),
                       kernel=(3, 3), per_channel=per_channel, bias=True,
                       zero_weight_zero_point=True)
    return rng, args


@pytest.mark.parametrize("encoded", ["weight", "activation"])
def test_larger_mixed_layer_is_exact_with_threads(encoded):
    """Many pixel runs and row tiles, every multiplier kind, two threads."""
    rng, args = resnet_like_case(1)
    mults = [parse(n) for n in ("ROUP(0,0)", "ROUP(1,4)", "ROUP(2,6)", "SKIP", "ROUP(0;r=4/2/1/0)")]
    mults.append(random_lut(rng, "noisy"))
    index = assignment(rng, "position", len(mults), args[3].shape)
    attrs = dict(pads=[1, 1, 1, 1], strides=[1, 1])
    expected = oracle(args, attrs, multipliers=mults, index=index, encoded=encoded)
    for threads in (1, 2):
        got = run_roupconv(args, attrs, multipliers=mults, index=index, encoded=encoded,
                           threads=threads)
        assert got.tobytes() == expected.tobytes()


def test_portable_loops_equal_avx2():
    """AXONNX_NO_AVX2=1 selects the portable loops; they give the same bytes (a fresh process:
    the choice is made when the library loads)."""
    script = textwrap.dedent("""
        import numpy as np, sys
        sys.path.insert(0, sys.argv[1])
        import test_kernel as t
        rng, args = t.resnet_like_case(2, xdt=np.uint8)
        mults = [t.parse(n) for n in ("ROUP(0,0)", "ROUP(1,4)", "SKIP")] + [t.random_lut(rng, "l")]
        index = t.assignment(rng, "position", len(mults), args[3].shape)
        for encoded in ("weight", "activation"):
            attrs = dict(pads=[0, 1, 2, 1], strides=[2, 1])
            got = t.run_roupconv(args, attrs, multipliers=mults, index=index, encoded=encoded)
            want = t.oracle(args, attrs, multipliers=mults, index=index, encoded=encoded)
            assert got.tobytes() == want.tobytes(), encoded
        print("ok")
    """)
    env = dict(os.environ, AXONNX_NO_AVX2="1", PYTHONSAFEPATH="1")
    done = subprocess.run([sys.executable, "-c", script, os.path.dirname(__file__)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def lut_with_errors(rng, name, error):
    """The exact product plus ``error`` ([256, 256]), operands signed or not at random."""
    a_signed, b_signed = bool(rng.integers(2)), bool(rng.integers(2))
    a = np.arange(256)[:, None] - (128 if a_signed else 0)
    b = np.arange(256)[None, :] - (128 if b_signed else 0)
    return LUT(name, a * b + error, a_signed=a_signed, b_signed=b_signed, source="test")


def small_error_lut(rng, name, bound):
    """An approximate product whose errors lie in [-bound, bound)."""
    return lut_with_errors(rng, name, rng.integers(-bound, bound, (256, 256)))


def periodic_lut(rng, name, bound):
    """Errors in [-bound, bound) whose rows (one per second operand, over the first) repeat every 64,
    128 or 256 indices, chosen per row: the error kernel's 1-, 2- and 4-line rows, mixed in every
    channel."""
    period = rng.choice([64, 128, 256], 256)
    error = rng.integers(-bound, bound, (256, 256))
    error = error[np.arange(256)[:, None] % period[None, :], np.arange(256)[None, :]]
    return lut_with_errors(rng, name, error)


@pytest.mark.parametrize("switch", ["AXONNX_NO_AMX", "AXONNX_NO_VNNI", "AXONNX_NO_AVX2", None])
def test_simd_paths_equal_oracle(switch):
    """Every kernel choice (AMX and AVX-512 VNNI/VBMI by default, AVX-512 VNNI without AMX with
    AXONNX_NO_AMX=1, AVX2 with AXONNX_NO_VNNI=1, portable with AXONNX_NO_AVX2=1) gives the oracle's
    bytes: u8 x s8 rows (uint8 and int8 activations, zero
    points 0 and not, 7-bit and full-range weights, so that the AVX2 pair bound sends some rows to
    the int16 GEMM), and LUT error rows that fit int8, int16 and only int32."""
    script = textwrap.dedent("""
        import numpy as np, sys
        sys.path.insert(0, sys.argv[1])
        import test_kernel as t
        for seed, xdt in ((3, np.uint8), (4, np.int8)):
            rng, args = t.resnet_like_case(seed, xdt=xdt)
            for zx, wmax in ((0, 63), (37, 127)):
                args[2] = xdt(zx if xdt == np.uint8 else zx - 128)
                args[3] = rng.integers(-wmax, wmax + 1, args[3].shape).astype(np.int8)
                mults = [t.parse(n) for n in ("ROUP(0,0)", "ROUP(1,4)", "ROUP(2,6)", "SKIP")]
                mults += [t.small_error_lut(rng, "l8", 100), t.small_error_lut(rng, "l16", 3000),
                          t.small_error_lut(rng, "l32", 2**20)]
                for style in ("filter", "position"):
                    index = t.assignment(rng, style, len(mults), args[3].shape)
                    for encoded in ("weight", "activation"):
                        attrs = dict(pads=[1, 0, 2, 1], strides=[1, 2])
                        kw = dict(multipliers=mults, index=index, encoded=encoded)
                        got = t.run_roupconv(args, attrs, threads=2, **kw)
                        want = t.oracle(args, attrs, **kw)
                        assert got.tobytes() == want.tobytes(), (seed, zx, style, encoded)
        print("ok")
    """)
    run_in_dispatch_mode(script, switch, timeout=300)


def run_check_in_dispatch_mode(check: str, switch: str | None, timeout: int = 600) -> None:
    """Run this module's function ``check`` in a child process in dispatch mode ``switch``."""
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, sys.argv[1])
        import test_kernel as t
        t.{check}()
        print("ok")
    """)
    run_in_dispatch_mode(script, switch, timeout=timeout)


def run_in_dispatch_mode(script: str, switch: str | None, timeout: int) -> None:
    """Run ``script`` (which prints "ok") in a child process whose kernel dispatch is
    chosen at library load: every AXONNX_NO_* switch cleared, then ``switch`` set."""
    env = dict(os.environ, PYTHONSAFEPATH="1")
    for name in ("AXONNX_NO_AMX", "AXONNX_NO_VNNI", "AXONNX_NO_AVX2"):
        env.pop(name, None)
    if switch:
        env[switch] = "1"
    done = subprocess.run([sys.executable, "-c", script, os.path.dirname(__file__)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


@pytest.mark.parametrize("xdt", [np.uint8, np.int8], ids=["u8", "s8"])
@pytest.mark.parametrize("encoded", ["weight", "activation"])
def test_implicit_im2col_geometries_equal_oracle(xdt, encoded):
    """Plans whose rows all run on the u8 x s8 GEMM (weights in [-63, 63], zero weight zero point,
    ROUP and SKIP only) read the input band in place, one band per stride phase, along virtual
    output rows: strides 1-3, dilations 1-2, uneven pads, widths that are and are not multiples of
    16, channel counts around multiples of 4, groups, one and several row tasks, two threads."""
    rng = np.random.default_rng(11 if xdt == np.uint8 else 12)
    mults = [parse(n) for n in ("ROUP(0,0)", "ROUP(1,4)", "ROUP(2,6)", "SKIP", "ROUP(0;r=4/2/1/0)")]
    cases = [((1, 1), (1, 1), [1, 1, 1, 1], (3, 3), (33, 31), 5, 1),
             ((2, 2), (1, 1), [1, 1, 1, 1], (3, 3), (17, 16), 4, 1),
             ((2, 1), (1, 2), [0, 2, 1, 0], (3, 2), (9, 21), 3, 1),
             ((3, 3), (2, 1), [2, 1, 0, 2], (3, 3), (20, 19), 9, 1),
             ((1, 3), (2, 2), [1, 0, 2, 2], (2, 3), (12, 40), 8, 2),
             ((2, 2), (1, 1), [0, 0, 0, 0], (1, 1), (16, 16), 16, 1),
             ((1, 2), (1, 1), [0, 0, 0, 0], (1, 1), (7, 5), 6, 3),
             ((1, 1), (1, 1), [0, 0, 0, 0], (3, 3), (3, 3), 1, 1)]
    for strides, dilations, pads, kernel, hw, c, group in cases:
        args = random_args(rng, xdt=xdt, wdt=np.int8, ydt=xdt, n=2, c=c, m=12 if group != 3 else 6,
                           hw=hw, kernel=kernel, per_channel=True, bias=True, group=group,
                           w_span=(-63, 63), zero_weight_zero_point=True)
        attrs = dict(strides=list(strides), dilations=list(dilations), pads=pads, group=group)
        for style in ("uniform", "filter", "position"):
            index = assignment(rng, style, len(mults), args[3].shape)
            kw = dict(multipliers=mults, index=index, encoded=encoded)
            want = oracle(args, attrs, **kw)
            for threads in (1, 2):
                got = run_roupconv(args, attrs, threads=threads, **kw)
                assert got.tobytes() == want.tobytes(), (strides, dilations, pads, kernel, hw, c, style)


# ---- exact mode is onnxruntime's QLinearConv -----------------------------------------------------



@pytest.mark.parametrize("geometry", GEOMETRIES, ids=range(len(GEOMETRIES)))
@pytest.mark.parametrize("xdt, wdt", [(np.int8, np.int8), (np.uint8, np.uint8), (np.uint8, np.int8)],
                         ids=["s8s8", "u8u8", "u8s8"])
@pytest.mark.parametrize("per_channel", [True, False], ids=["per-channel", "per-tensor"])
@pytest.mark.parametrize("group", [1, 2, 8], ids=["g1", "g2", "depthwise"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
def test_exact_equals_qlinearconv(geometry, xdt, wdt, per_channel, group, bias):
    rng = np.random.default_rng(abs(hash((str(geometry), xdt, per_channel, group, bias))) % 2**32)
    # onnxruntime's u8s8 AVX2 path saturates int16 pairs (docs/roupconv-op.md): small weights.
    span = (-64, 63) if (xdt, wdt) == (np.uint8, np.int8) else None
    c_per_group, m_per_group = (1, 1) if group == 8 else (3, 5)
    args = random_args(rng, xdt=xdt, wdt=wdt, ydt=xdt, n=2, c=c_per_group * group,
                       m=m_per_group * group, hw=(9, 8), kernel=(3, 3), per_channel=per_channel,
                       bias=bias, group=group, w_span=span, zero_weight_zero_point=wdt == np.int8)
    attrs = dict(geometry, group=group)
    expected = run_qlinearconv(args, attrs)
    assert run_roupconv(args, attrs).tobytes() == expected.tobytes()
    # An exact multiplier in either role, or as an exact table, changes nothing.
    assert run_roupconv(args, attrs, encoded="activation").tobytes() == expected.tobytes()
    index = rng.integers(0, 2, args[3].shape).astype(np.uint8)
    both = [ROUP(0, 0), LUT.exact(a_signed=bool(rng.integers(2)), b_signed=bool(rng.integers(2)))]
    assert run_roupconv(args, attrs, multipliers=both, index=index).tobytes() == expected.tobytes()


def test_node_without_multiplier_attributes_is_qlinearconv():
    rng = np.random.default_rng(3)
    args = random_args(rng, xdt=np.int8, wdt=np.int8, ydt=np.int8, n=2, c=4, m=6, hw=(7, 7),
                       kernel=(3, 3), per_channel=True, bias=True, zero_weight_zero_point=True)
    node = helper.make_node(OP_TYPE, INPUT_NAMES, ["y"], name="bare", domain=DOMAIN, pads=[1, 1, 1, 1])
    got = run(single_node_model(node, args), args)
    assert got.tobytes() == run_qlinearconv(args, dict(pads=[1, 1, 1, 1])).tobytes()


def test_exact_tables_equal_exact_roup():
    rng, args = resnet_like_case(4, xdt=np.uint8)
    attrs = dict(pads=[1, 1, 1, 1])
    exact = run_roupconv(args, attrs)
    for a_signed in (False, True):
        for b_signed in (False, True):
            table = LUT.exact(a_signed=a_signed, b_signed=b_signed)
            for encoded in ("weight", "activation"):
                got = run_roupconv(args, attrs, multipliers=[table], encoded=encoded)
                assert got.tobytes() == exact.tobytes()


def test_empty_optional_bias_name():
    rng = np.random.default_rng(8)
    args = random_args(rng, xdt=np.uint8, wdt=np.uint8, ydt=np.uint8, n=1, c=2, m=3, hw=(5, 5),
                       kernel=(3, 3), per_channel=False, bias=False)
    node = helper.make_node(OP_TYPE, INPUT_NAMES[:8] + [""], ["y"], name="c", domain=DOMAIN)
    assert run(single_node_model(node, args), args).tobytes() == oracle(args, {}).tobytes()


def test_session_helper():
    """axonnx.InferenceSession takes paths, bytes and protos and runs with the caller's own
    options object (its settings kept), on which it registers the library."""
    rng = np.random.default_rng(9)
    args = random_args(rng, xdt=np.int8, wdt=np.int8, ydt=np.int8, n=1, c=2, m=3, hw=(5, 5),
                       kernel=(3, 3), per_channel=False, bias=False)
    node = make_roupconv_node(INPUT_NAMES[:8], ["y"], name="c", multipliers=[ROUP(1, 4)],
                              multiplier_index=np.zeros(args[3].shape))
    model = single_node_model(node, args)
    expected = oracle(args, {}, multipliers=[ROUP(1, 4)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    for form in (model, model.SerializeToString()):
        session = InferenceSession(form, options)
        assert session.get_providers() == ["CPUExecutionProvider"]
        assert session.get_session_options().intra_op_num_threads == 1
        assert session.get_session_options().graph_optimization_level == \
            ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        assert session.run(None, {"x": args[0]})[0].tobytes() == expected.tobytes()
    # The library is registered on the caller's object (as enable() does), so plain
    # onnxruntime with the same options runs the op too.
    plain = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    assert plain.run(None, {"x": args[0]})[0].tobytes() == expected.tobytes()
    assert get_library_path().endswith("libaxonnx_customops.so")


# ---- bad nodes fail at session creation, naming the node ---------------------------------------

def bad_node(name="bad", weight_shape=(4, 2, 3, 3), weight_input=False, **attributes):
    rng = np.random.default_rng(0)
    args = random_args(rng, xdt=np.int8, wdt=np.int8, ydt=np.int8, n=1, c=weight_shape[1],
                       m=weight_shape[0], hw=(6, 6), kernel=weight_shape[2:], per_channel=False,
                       bias=False)
    prebuilt = [v for v in attributes.values() if isinstance(v, AttributeProto)]
    attributes = {k: v for k, v in attributes.items() if not isinstance(v, AttributeProto)}
    node = helper.make_node(OP_TYPE, INPUT_NAMES[:8], ["y"], name=name, domain=DOMAIN, **attributes)
    node.attribute.extend(prebuilt)
    return single_node_model(node, args, weight_input=weight_input), args


def index_tensor(array):
    return numpy_helper.from_array(np.asarray(array), name="multiplier_index")


def table_tensor(count):
    return numpy_helper.from_array(np.zeros((count, 256, 256), np.int32), name="lut_tables")


BAD_NODES = {
    "unknown multiplier": (dict(multipliers=["ROUP(0,0)", "MUL(3)"]), r"unknown multiplier 'MUL\(3\)'"),
    "malformed multiplier": (dict(multipliers=["ROUP(1,)"]), r"unknown multiplier"),
    "perforation out of range": (dict(multipliers=["ROUP(4,0)"]), r"perforation P=4"),
    "rounding vector length": (dict(multipliers=["ROUP(1;r=2/0)"]), r"needs 3 widths"),
    "rounding width too large": (dict(multipliers=["ROUP(0,12)"]), r"rounding widths must lie"),
    "not 8-bit": (dict(multipliers=["ROUP(1,2;N=16)"]), r"needs N=8"),
    "empty multiplier list": (
        dict(multipliers=helper.make_attribute("multipliers", [], attr_type=AttributeProto.STRINGS)),
        r"multipliers is empty"),
    "index out of range": (dict(multipliers=["ROUP(0,0)", "SKIP"],
                                multiplier_index=index_tensor(np.full((4, 2, 3, 3), 2, np.uint8))),
                           r"refers to multiplier 2, but the node names 2 multipliers"),
    "index shape": (dict(multiplier_index=index_tensor(np.zeros((4, 2, 3, 1), np.uint8))),
                    r"multiplier_index has shape \[4, 2, 3, 1\], the weight has \[4, 2, 3, 3\]"),
    "index rank": (dict(multiplier_index=index_tensor(np.zeros((72,), np.uint8))), r"rank-4"),
    "index type": (dict(multiplier_index=index_tensor(np.zeros((4, 2, 3, 3), np.int32))),
                   r"must be a uint8 tensor, got int32"),
    "encoded operand": (dict(encoded_operand="both"), r"encoded_operand must be 'weight' or 'activation'"),
    "LUT without tables": (dict(multipliers=["LUT(a)"]), r"lut_tables attribute is missing"),
    "LUT count": (dict(multipliers=["LUT(a)", "LUT(b)"], lut_tables=table_tensor(1)),
                  r"lut_tables has shape \[1, 256, 256\], but multipliers names 2"),
    "tables without LUT": (dict(multipliers=["ROUP(0,0)"], lut_tables=table_tensor(1)),
                           r"names no LUT"),
    "LUT signedness": (dict(multipliers=["LUT(a)"], lut_tables=table_tensor(1), lut_signedness=[1]),
                       r"lut_signedness needs 2 values per LUT"),
    "auto_pad": (dict(auto_pad="SAME"), r"unknown auto_pad 'SAME'"),
    "strides": (dict(strides=[1, 0]), r"strides values must lie in \[1, 16777216\]"),
    "pads near 2^63": (dict(pads=[2**63 - 1, 0, 2**63 - 1, 0]), r"pads values must lie in \[0, 16777216\]"),
    "dilations near 2^63": (dict(dilations=[2**62, 1]), r"dilations values must lie in"),
    "pads": (dict(pads=[1, 1]), r"pads must hold 4 values"),
    "kernel_shape": (dict(kernel_shape=[5, 5]), r"kernel_shape \[5, 5\] does not match"),
    "group": (dict(group=3), r"do not divide into group=3"),
    "attribute type": (dict(group=2.5), r"attribute 'group' must be an int"),
}


@pytest.mark.parametrize("attributes, message", BAD_NODES.values(), ids=BAD_NODES.keys())
def test_bad_node_fails_at_session_creation(attributes, message):
    model, _ = bad_node(name="layer3/conv", **attributes)
    options = ort.SessionOptions()
    with pytest.raises(ORT_ERRORS, match=r"\[ROUPConv\] node 'layer3/conv': (.|\n)*" + message):
        InferenceSession(model, options)


def test_too_few_inputs_is_named_at_session_creation():
    model, _ = bad_node(name="few")
    del model.graph.node[0].input[5:]
    with pytest.raises(ORT_ERRORS, match=r"\[ROUPConv\] node 'few': needs QLinearConv's 8 inputs"
                                          r"(.|\n)*got 5"):
        InferenceSession(model)


@pytest.mark.parametrize("which, value", [(1, 0.0), (1, np.nan), (4, np.inf), (6, 0.0),
                                          (6, -0.5)])
def test_bad_scales_fail_in_kernel_and_oracle(which, value):
    """x_scale (1), w_scale (4) or y_scale (6) that is zero, negative or not finite."""
    rng = np.random.default_rng(3)
    args = random_args(rng, xdt=np.uint8, wdt=np.int8, ydt=np.uint8, n=1, c=2, m=3, hw=(5, 5),
                       kernel=(3, 3), per_channel=True, bias=True)
    args[which] = (np.full_like(args[which], value) if np.ndim(args[which])
                   else np.float32(value))
    message = "x_scale, w_scale and y_scale must be positive finite numbers"
    with pytest.raises(AxonnxError, match=message):
        oracle(args, {})
    with pytest.raises(ORT_ERRORS, match=message):
        run_roupconv(args, {})


def test_accumulator_overflow_is_refused_like_the_oracle():
    """A bias near the int32 limit: the oracle's accumulator leaves int32, and the kernel,
    whose worst case then exceeds int32, refuses instead of wrapping."""
    rng = np.random.default_rng(4)
    args = random_args(rng, xdt=np.uint8, wdt=np.int8, ydt=np.uint8, n=1, c=2, m=3, hw=(5, 5),
                       kernel=(3, 3), per_channel=True, bias=True)
    args[2] = np.array(0, np.uint8)
    args[0] = np.full_like(args[0], 255)
    args[3] = np.full_like(args[3], 127)
    args[8] = np.full(3, 2**31 - 100, np.int32)
    with pytest.raises(AxonnxError, match="overflows int32"):
        oracle(args, {})
    with pytest.raises(ORT_ERRORS, match="accumulator of output channel 0 can overflow"):
        run_roupconv(args, {})
    args[8] = np.full(3, 2**31 - 10**7, np.int32)  # the worst case fits: the kernel runs
    assert run_roupconv(args, {}).tobytes() == oracle(args, {}).tobytes()


def test_bad_index_with_a_runtime_weight_fails_at_run():
    """Without a constant weight the index shape is checked on each run, with the same prefix."""
    model, args = bad_node(name="late", weight_input=True,
                           multiplier_index=index_tensor(np.zeros((4, 2, 1, 1), np.uint8)))
    session = InferenceSession(model)
    with pytest.raises(ORT_ERRORS, match=r"\[ROUPConv\] node 'late': multiplier_index has shape"):
        session.run(None, {"x": args[0], "w": args[3]})


def test_bad_input_shapes_fail_cleanly():
    model, args = bad_node(name="shapes", weight_input=True)
    session = InferenceSession(model)
    with pytest.raises(ORT_ERRORS, match=r"\[ROUPConv\] node 'shapes': x has 3 channels"):
        session.run(None, {"x": np.zeros((1, 3, 6, 6), np.int8), "w": args[3]})
    with pytest.raises(ORT_ERRORS, match=r"\[ROUPConv\] node 'shapes': the kernel does not fit"):
        session.run(None, {"x": np.zeros((1, 2, 2, 2), np.int8), "w": args[3]})


# ---- ImageNet-shaped layers: depthwise, 1x1, large channel counts, every dispatch mode ---------

def imagenet_shape_cases():
    """(name, args, attrs): depthwise 3x3 (strides 1 and 2, a dilation, a channel multiplier), 1x1
    convolutions as plain GEMMs (stride 1 and 2, few pixels and many), and 3x3 layers with large
    channel counts, in the shapes of MobileNetV2 and ResNet-50 (spatially smaller)."""
    rng = np.random.default_rng(20)
    cases = []
    for xdt in (np.uint8, np.int8):
        def add(name, c, m, hw, kernel, group, n=1, symmetric=False, **attrs):
            # symmetric: zero weight zero point (as onnxruntime quantizes weights), so that every
            # row fits the u8 x s8 GEMM and the input band is read in place
            args = random_args(rng, xdt=xdt, wdt=np.int8, ydt=xdt, n=n, c=c, m=m, hw=hw,
                               kernel=kernel, per_channel=True, bias=True, group=group,
                               zero_weight_zero_point=symmetric)
            cases.append((f"{name}-{np.dtype(xdt).name}", args, dict(attrs, group=group)))
        add("dw-s1", 40, 40, (15, 13), (3, 3), 40, n=2, pads=[1, 1, 1, 1])
        add("dw-s2", 36, 36, (14, 17), (3, 3), 36, pads=[1, 1, 1, 1], strides=[2, 2])
        add("dw-dil", 8, 8, (9, 11), (3, 3), 8, pads=[2, 1, 0, 2], dilations=[2, 2])
        add("dw-mult", 6, 18, (7, 8), (3, 3), 6, pads=[1, 1, 1, 1], strides=[1, 2])
        add("dw-1x1", 20, 20, (5, 6), (1, 1), 20)
        for symmetric in (True, False):
            add("1x1-few-pixels", 96, 200, (7, 7), (1, 1), 1, symmetric=symmetric)
            add("1x1-many-pixels", 24, 72, (30, 29), (1, 1), 1, symmetric=symmetric)
            add("1x1-s2", 64, 136, (13, 13), (1, 1), 1, strides=[2, 2], symmetric=symmetric)
            add("3x3-large-c", 160, 130, (6, 5), (3, 3), 1, pads=[1, 1, 1, 1], symmetric=symmetric)
            add("1x1-batch", 40, 96, (9, 9), (1, 1), 1, n=3, symmetric=symmetric)
            add("3x3-groups", 32, 192, (5, 7), (3, 3), 2, pads=[1, 0, 1, 0], strides=[2, 1],
                symmetric=symmetric)
            # channels in multiples of 64 (AMX tiles where the CPU has them): row blocks of 32
            # and 16 plus a remainder, odd column-tile counts
            add("amx-1x1", 128, 72, (9, 7), (1, 1), 1, symmetric=symmetric)
            add("amx-3x3-s2", 64, 48, (11, 10), (3, 3), 1, pads=[1, 1, 1, 1], strides=[2, 2],
                symmetric=symmetric)
            add("amx-3x3-batch", 64, 40, (6, 6), (3, 3), 1, n=2, pads=[1, 0, 0, 1],
                symmetric=symmetric)
    return cases


IMAGENET_MULTS = ("ROUP(0,0)", "ROUP(1,4)", "ROUP(2,6)", "SKIP", "ROUP(0;r=4/2/1/0)")


def spread_outputs(args, attrs, mults, index, encoded="weight") -> None:
    """Set y_scale (args[6]) so that the plan's outputs spread over the output range and few
    saturate."""
    acc = roup_conv(*args, multipliers=mults, multiplier_index=index, encoded_operand=encoded,
                    return_accumulator=True, **attrs)
    args[6] = np.float32(args[1] * np.max(args[4]) * max(1, np.abs(acc).max()) / 150)


def assert_threads_equal_oracle(args, attrs, mults, index, encoded, label) -> None:
    """The kernel with 1 and 2 threads gives the oracle's bytes."""
    kw = dict(multipliers=mults, index=index, encoded=encoded)
    want = oracle(args, attrs, **kw)
    for threads in (1, 2):
        got = run_roupconv(args, attrs, threads=threads, **kw)
        assert got.tobytes() == want.tobytes(), (*label, threads)


def check_imagenet_shapes():
    """Every case under exact, ROUP(1,4), a filter-level mix, a per-position mix with a LUT, and
    ROUP(1,4) activation-encoded, with 1 and 2 threads, equals the oracle."""
    rng = np.random.default_rng(21)
    mults = [parse(n) for n in IMAGENET_MULTS] + [small_error_lut(rng, "l", 3000)]
    for name, args, attrs in imagenet_shape_cases():
        shape = args[3].shape
        plans = [("exact", np.zeros(shape, np.uint8), "weight"),
                 ("roup14", np.ones(shape, np.uint8), "weight"),
                 ("flam", assignment(rng, "filter", 3, shape), "weight"),
                 ("position+lut", assignment(rng, "position", len(mults), shape), "weight"),
                 ("roup14-act", np.ones(shape, np.uint8), "activation")]
        for plan, index, encoded in plans:
            assert_threads_equal_oracle(args, attrs, mults, index, encoded, (name, plan))


@pytest.mark.parametrize("switch", ["AXONNX_NO_AMX", "AXONNX_NO_VNNI", "AXONNX_NO_AVX2", None])
def test_imagenet_shapes_equal_oracle(switch):
    """Depthwise, 1x1 and large-channel layers equal the oracle in every CPU dispatch mode."""
    run_check_in_dispatch_mode("check_imagenet_shapes", switch)


# ---- depthwise channel blocks: small planes, 16 output channels per vector -----------------------

def depthwise_block_cases():
    """(name, args, attrs): depthwise layers for the channel-block kernel: 7x7 and 14x14 planes,
    stride 2, dilation, asymmetric pads, odd and even kernel widths, channel counts around
    multiples of 16 (a last block of 1-15 lanes), channel multipliers 2 and 3 (blocks that cut a
    group), two images, several output-row bands, uint8 and int8."""
    rng = np.random.default_rng(22)
    cases = []
    for xdt in (np.uint8, np.int8):
        def add(name, c, mult, hw, kernel, n=1, **attrs):
            args = random_args(rng, xdt=xdt, wdt=np.int8, ydt=xdt, n=n, c=c, m=c * mult, hw=hw,
                               kernel=kernel, per_channel=True, bias=True, group=c)
            cases.append((f"{name}-{np.dtype(xdt).name}", args, dict(attrs, group=c)))
        add("7x7", 40, 1, (7, 7), (3, 3), pads=[1, 1, 1, 1])
        add("14x14-s2", 17, 1, (14, 14), (3, 3), n=2, pads=[0, 1, 1, 0], strides=[2, 2])
        add("dil", 33, 1, (9, 8), (3, 3), pads=[2, 2, 2, 1], dilations=[2, 2])
        add("mult2", 12, 2, (7, 7), (3, 3), pads=[1, 1, 1, 1])
        add("mult3", 7, 3, (6, 5), (3, 3), pads=[1, 1, 1, 1], strides=[1, 2])
        add("5x5", 16, 1, (11, 10), (5, 5), pads=[2, 2, 2, 2], strides=[2, 1])
        add("2x4", 18, 1, (8, 9), (2, 4), pads=[0, 1, 1, 2])
        add("1x1", 20, 1, (3, 5), (1, 1))
        add("bands", 3, 1, (30, 23), (3, 3), pads=[1, 1, 1, 1])
    return cases


def check_depthwise_blocks():
    """Every case under exact, ROUP(1,4), filter and per-position mixes of ROUP and SKIP (weight and
    activation encoded, full-range weights with nonzero zero points) and a mix with a LUT (the
    per-channel kernel), outputs spread over the range, 1 and 2 threads, equals the oracle."""
    rng = np.random.default_rng(23)
    mults = [parse(n) for n in IMAGENET_MULTS] + [small_error_lut(rng, "l", 3000)]
    for name, args, attrs in depthwise_block_cases():
        shape = args[3].shape
        plans = [("exact", np.zeros(shape, np.uint8), "weight"),
                 ("roup14", np.ones(shape, np.uint8), "weight"),
                 ("filter", assignment(rng, "filter", 5, shape), "weight"),
                 ("position", assignment(rng, "position", 5, shape), "weight"),
                 ("position-act", assignment(rng, "position", 5, shape), "activation"),
                 ("position+lut", assignment(rng, "position", len(mults), shape), "weight")]
        for plan, index, encoded in plans:
            spread_outputs(args, attrs, mults, index, encoded)
            assert_threads_equal_oracle(args, attrs, mults, index, encoded, (name, plan))


@pytest.mark.parametrize("switch", ["AXONNX_NO_AMX", "AXONNX_NO_VNNI", "AXONNX_NO_AVX2", None])
def test_depthwise_blocks_equal_oracle(switch):
    """The channel-block depthwise kernel (AVX-512 VNNI; AVX2 with AXONNX_NO_VNNI) and the portable
    per-channel one equal the oracle."""
    run_check_in_dispatch_mode("check_depthwise_blocks", switch)


# ---- LUT errors: byte planes in registers, k slices, channel pairs ---------------------------------

def lut_error_cases():
    """(name, args, attrs): layers for the LUT error kernels: K past one 256-k slice (a partial last
    slice), column runs of 1-4 parts of 64 and a tail, strided 3x3, 1x1, a 7x7 plane, depthwise (the
    per-channel kernel), uint8 and int8 activations, weight zero points zero and not."""
    rng = np.random.default_rng(24)
    cases = []
    for xdt in (np.uint8, np.int8):
        def add(name, c, m, hw, kernel, group=1, symmetric=True, **attrs):
            args = random_args(rng, xdt=xdt, wdt=np.int8, ydt=xdt, n=1, c=c, m=m, hw=hw, kernel=kernel,
                               per_channel=True, bias=True, group=group, zero_weight_zero_point=symmetric)
            cases.append((f"{name}-{np.dtype(xdt).name}", args, dict(attrs, group=group)))
        add("3x3-slices", 72, 12, (7, 7), (3, 3), pads=[1, 1, 1, 1])
        add("1x1-partial-slice", 300, 10, (5, 6), (1, 1), symmetric=False)
        add("3x3-s2", 20, 9, (20, 19), (3, 3), pads=[1, 1, 1, 1], strides=[2, 2])
        add("1x1-many-columns", 16, 6, (17, 16), (1, 1))
        add("dw", 10, 10, (11, 13), (3, 3), group=10, pads=[1, 1, 1, 1], symmetric=False)
    return cases


def check_lut_errors():
    """Every case under a uniform LUT whose error rows fit int8 (all of period 256, or of periods 64,
    128 and 256 mixed), int16, and neither; a filter-level mix of the four with ROUP(0,0); a
    per-position mix of ROUP, SKIP and the LUTs; 1 and 2 threads; equals the oracle."""
    rng = np.random.default_rng(25)
    luts = [small_error_lut(rng, "l8", 120), periodic_lut(rng, "l8p", 128), small_error_lut(rng, "l16", 3000),
            small_error_lut(rng, "l32", 2**20)]
    mults = luts + [parse("ROUP(0,0)"), parse("ROUP(1,4)"), parse("SKIP")]
    for name, args, attrs in lut_error_cases():
        shape = args[3].shape
        plans = [(f"uniform-{lut.name}", np.full(shape, i, np.uint8)) for i, lut in enumerate(luts)]
        plans += [("filter", assignment(rng, "filter", 5, shape)),
                  ("position", assignment(rng, "position", len(mults), shape))]
        for plan, index in plans:
            spread_outputs(args, attrs, mults, index)
            assert_threads_equal_oracle(args, attrs, mults, index, "weight", (name, plan))


@pytest.mark.parametrize("switch", ["AXONNX_NO_AMX", "AXONNX_NO_VNNI", "AXONNX_NO_AVX2", None])
def test_lut_errors_equal_oracle(switch):
    """The LUT error kernels (AVX-512 VBMI byte planes; AVX2 gathers with AXONNX_NO_VNNI; portable
    loops) equal the oracle."""
    run_check_in_dispatch_mode("check_lut_errors", switch)
