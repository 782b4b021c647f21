"""The transformer encoder with dynamic batch and sequence (axonnx.architectures), quantized
by the project's own quantize_float in QDQ and QOperator, uint8 and int8 activations: every
matrix product becomes a ROUPMatMul, the exact plan is bit-identical at several (batch, seq),
an approximate plan equals the oracle, and inspect counts the multiplications."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from axonnx import InferenceSession
from axonnx.analysis.cost import PlanCost
from axonnx.architectures import transformer_encoder
from axonnx.errors import AxonnxError
from axonnx.model import with_outputs
from axonnx.ops.roupconv import read_assignment
from axonnx.ops.roupmatmul import OP_TYPE, roup_matmul
from axonnx.passes import ATTENTION, FULLY_CONNECTED_KIND
from axonnx.plan import Plan, plan_from_options
from axonnx.transform import inspect_model, prepared, transform_model
from axonnx.zoo import quantize_float

FORMS = [(fmt, act) for fmt in ("qdq", "qoperator") for act in ("uint8", "sym-int8")]
SHAPES = [(1, 5), (3, 17), (8, 64)]
D, HEADS, HIDDEN = 64, 4, 128


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    root = tmp_path_factory.mktemp("encoder")
    onnx.save(transformer_encoder(), root / "float.onnx")
    calibration = np.random.default_rng(0).standard_normal((16, 12, D)).astype(np.float32)
    return {form: onnx.load(quantize_float(root / "float.onnx", root / f"{'-'.join(form)}.onnx",
                                           calibration, fmt=form[0], activations=form[1]))
            for form in FORMS}


def session(model, optimize: bool = True):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return InferenceSession(model.SerializeToString(), sess_options=options)


def inputs(batch: int, seq: int) -> dict:
    return {"input": np.random.default_rng(batch * 100 + seq)
            .standard_normal((batch, seq, D)).astype(np.float32)}


@pytest.mark.parametrize("form", FORMS, ids="-".join)
def test_every_product_is_approximated_and_the_exact_plan_is_bit_identical(encoders, form):
    original = encoders[form]
    _, layers, survey = prepared(original, matmul=True)
    kinds = [layer.kind for layer in layers]
    assert not survey.refused and len(layers) == 16
    assert kinds.count(ATTENTION) == 4 and kinds.count(FULLY_CONNECTED_KIND) == 12
    rewritten = transform_model(original, Plan(matmul=True), exact_layers="roup")
    assert sum(n.op_type == OP_TYPE for n in rewritten.graph.node) == 16
    assert not any(n.op_type in ("MatMul", "QLinearMatMul") for n in rewritten.graph.node)
    want, got = session(original), session(rewritten)
    for shape in SHAPES:
        a, b = want.run(None, inputs(*shape))[0], got.run(None, inputs(*shape))[0]
        assert a.tobytes() == b.tobytes(), shape
    if form != ("qdq", "uint8"):  # see the next test
        a = session(original, False).run(None, inputs(8, 64))[0]
        assert a.tobytes() == got.run(None, inputs(8, 64))[0].tobytes()


def test_unoptimized_qdq_uint8_runs_in_float(encoders):
    """With graph optimizations off, onnxruntime computes the QDQ uint8 encoder's products
    as float MatMuls between DequantizeLinear and QuantizeLinear, which differs from its own
    integer QLinearMatMul (the default, optimized session) at (8, 64); the transformed model
    equals the integer semantics."""
    original = encoders[("qdq", "uint8")]
    rewritten = transform_model(original, Plan(matmul=True), exact_layers="roup")
    feeds = inputs(8, 64)
    as_float = session(original, False).run(None, feeds)[0]
    as_integer = session(original).run(None, feeds)[0]
    # Measured: 64% of the (LayerNorm-ed, ~unit) float outputs differ, by up to 0.08: a
    # product's rounding differs early and spreads.
    assert (as_float != as_integer).any()
    assert session(rewritten).run(None, feeds)[0].tobytes() == as_integer.tobytes()


def products_io(model, feeds):
    """Every ROUPMatMul's inputs and output, as onnxruntime computes them."""
    nodes = [n for n in model.graph.node if n.op_type == OP_TYPE]
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    names = list(dict.fromkeys(i for n in nodes for i in list(n.input) + [n.output[0]]
                               if i and i not in inits))
    values = dict(zip(names, session(with_outputs(model, names), False).run(names, feeds)))
    values.update(inits)
    return [(n, [values[i] if i else None for i in n.input], values[n.output[0]]) for n in nodes]


def roup14_products_equal_the_oracle(quantized, dtype=None) -> int:
    """Runs ``quantized`` under ROUP(1,4) at (batch, seq) = (3, 17), checks every ROUPMatMul's
    output against the oracle on its actual inputs, and returns how many products differ from
    the exact plan's (so that a caller can check the plan did change them). ``dtype``: the
    element type every product must have."""
    # Both as the model stores its activations (int8 stays int8), so that outputs compare.
    rewritten = transform_model(quantized, plan_from_options(llam="ROUP(1,4)", matmul=True),
                                exact_layers="roup")
    exact = transform_model(quantized, Plan(matmul=True), exact_layers="roup")
    differ = 0
    for (node, ins, got), (_, _, exact_out) in zip(products_io(rewritten, inputs(3, 17)),
                                                   products_io(exact, inputs(3, 17))):
        assignment = read_assignment(node)
        want = roup_matmul(*ins, multipliers=assignment.multipliers,
                           multiplier_index=assignment.index)
        assert want.dtype == got.dtype and want.tobytes() == got.tobytes(), node.name
        assert dtype is None or got.dtype == dtype, node.name
        differ += got.tobytes() != exact_out.tobytes()
    return differ


@pytest.mark.parametrize("form", [("qdq", "sym-int8"), ("qoperator", "uint8")], ids="-".join)
def test_approximate_plan_equals_the_oracle(encoders, form):
    assert roup14_products_equal_the_oracle(encoders[form]) >= 12  # the plan changes them


def test_inspect_counts_the_multiplications_at_an_input_shape(encoders):
    seq = 9
    info = inspect_model(encoders[("qdq", "sym-int8")], input_shape=f"1,{seq},{D}", matmul=True)
    per_layer = [seq * D * D] * 3 + [HEADS * seq * seq * (D // HEADS)] * 2 + [
        seq * D * D, seq * D * HIDDEN, seq * HIDDEN * D]
    assert sorted(layer.macs_per_image for layer in info.layers) == sorted(per_layer * 2)
    attention = [layer for layer in info.layers if layer.kind == ATTENTION]
    # With the input shape fixed, seq is static: one multiplier per (k, n) of the [K, N] index.
    assert [layer.weight_shape for layer in attention] == [(seq, D // HEADS, 1, 1),
                                                           (D // HEADS, seq, 1, 1)] * 2
    # Without it, the dynamic dims of the index are 1 (uniform along the sequence).
    _, layers, _ = prepared(encoders[("qdq", "sym-int8")], matmul=True)
    assert [layer.matmul.index_shape for layer in layers if layer.kind == ATTENTION] == [
        (D // HEADS, 1), (1, D // HEADS)] * 2


def test_a_missing_input_shape_suggests_one_of_the_models_rank(encoders):
    with pytest.raises(AxonnxError, match=rf"--input-shape 1,128,{D} "):
        inspect_model(encoders[("qdq", "uint8")], matmul=True)


def test_sensitivity_and_explore_count_the_products_at_the_input_shape(encoders, tmp_path):
    """On the dynamic encoder, `axonnx sensitivity` and a tiny `axonnx explore` (--matmul,
    label-free metric) score plans over every product, multiplications counted at
    --input-shape; the Python API takes it too."""
    model = encoders[("qdq", "uint8")]
    onnx.save(model, tmp_path / "encoder.onnx")
    np.savez(tmp_path / "inputs.npz", input=inputs(4, 12)["input"])
    products = [layer.name for layer in prepared(model, matmul=True)[1]]
    assert len(products) == 16
    common = [str(tmp_path / "encoder.onnx"), "--data", str(tmp_path / "inputs.npz"), "--matmul",
              "--metric", "snr", "--input-shape", f"4,12,{D}", "--workers", "1"]

    def axonnx(*args):
        done = subprocess.run([sys.executable, "-P", "-m", "axonnx", *args], capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]

    axonnx("sensitivity", *common, "--out", str(tmp_path / "sens"), "--multipliers", "ROUP(1,4)")
    result = json.loads((tmp_path / "sens" / "sensitivity_single.json").read_text())
    assert result["layers"] == products
    axonnx("explore", *common, "--out", str(tmp_path / "explore"), "--approach", "llam",
           "--multipliers", "ROUP(0,0),ROUP(1,4)", "--pop", "4", "--gens", "1")
    run = json.loads((tmp_path / "explore" / "run.json").read_text())
    assert run["space"]["layers"] == products

    seq = 9
    pixels = PlanCost.for_model(model, matmul=True, input_shape=f"1,{seq},{D}").pixels
    # A weight position is used once per row of a: seq rows, times the heads in attention.
    assert sorted(pixels.values()) == [seq] * 12 + [HEADS * seq] * 4
