"""Quantized matrix products (fully connected and attention) as ROUPMatMul: a small int8
transformer encoder block, quantized by onnxruntime, transformed and compared."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from axonnx.cli import app
from axonnx.energy import energy_report
from axonnx.errors import AxonnxError
from axonnx.model import with_outputs
from axonnx.ops.roupconv import read_assignment
from axonnx.ops.roupmatmul import OP_TYPE, roup_matmul
from axonnx.passes import ATTENTION, FULLY_CONNECTED_KIND, survey_convs
from axonnx.plan import Plan, plan_from_options
from axonnx.transform import inspect_model, plan_of, prepared, transform_model

from test_encoder import products_io
from transformer_model import build_encoder, quantize_encoder

FORMS = [("qdq", "int8", True), ("qoperator", "int8", False), ("qdq", "uint8", False),
         ("qoperator", "uint8", True)]
KINDS = {"q_proj": FULLY_CONNECTED_KIND, "k_proj": FULLY_CONNECTED_KIND,
         "v_proj": FULLY_CONNECTED_KIND, "qk": ATTENTION, "pv": ATTENTION,
         "o_proj": FULLY_CONNECTED_KIND, "fc1": FULLY_CONNECTED_KIND,
         "fc2": FULLY_CONNECTED_KIND, "head": FULLY_CONNECTED_KIND}
# Multiplications per sample (seq 8, d 16, hidden 32): weight positions x rows.
MACS = {"q_proj": 16 * 16 * 8, "k_proj": 16 * 16 * 8, "v_proj": 16 * 16 * 8,
        "qk": 8 * 16 * 8, "pv": 16 * 8 * 8, "o_proj": 16 * 16 * 8, "fc1": 32 * 16 * 8,
        "fc2": 16 * 32 * 8, "head": 4 * 16 * 1}
APPROXIMATE = plan_from_options(flam="ROUP(0,0),ROUP(1,4),ROUP(2,6)", matmul=True)


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    root = tmp_path_factory.mktemp("encoders")
    float_model = build_encoder()
    models = {form: onnx.load(quantize_encoder(float_model, root / "-".join(map(str, form)),
                                               fmt=form[0], activation=form[1],
                                               per_channel=form[2]))
              for form in FORMS}
    for fmt in ("qdq", "qoperator"):  # two heads: batched attention products
        models[(fmt, "heads")] = onnx.load(quantize_encoder(
            build_encoder(heads=2), root / f"{fmt}-heads", fmt=fmt))
    return models


def session(model, optimize: bool):
    from axonnx import InferenceSession

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return InferenceSession(model.SerializeToString(), sess_options=options)


def sample(seed: int = 3) -> dict:
    return {"x": np.random.default_rng(seed).standard_normal((1, 8, 16)).astype(np.float32)}


def base(name: str) -> str:
    return name.removesuffix("_quant")


@pytest.mark.parametrize("form", FORMS, ids=lambda f: "-".join(map(str, f)))
def test_exact_plan_gives_identical_output_bytes(encoders, form):
    original = encoders[form]
    _, layers, survey = prepared(original, matmul=True)
    assert {base(layer.name): layer.kind for layer in layers} == KINDS
    assert not survey.refused
    rewritten = transform_model(original, Plan(matmul=True), exact_layers="roup")
    onnx.checker.check_model(rewritten, full_check=True)
    assert sum(n.op_type == OP_TYPE for n in rewritten.graph.node) == 9
    assert not any(n.op_type in ("QLinearMatMul", "MatMul", "QGemm", "Gemm")
                   for n in rewritten.graph.node)
    names = [layer.output for layer in layers] + [o.name for o in original.graph.output]
    for optimize in (False, True):  # also where onnxruntime fuses QDQ into QLinearMatMul
        want = session(with_outputs(original, names), optimize).run(names, sample())
        got = session(with_outputs(rewritten, names), optimize).run(names, sample())
        for name, a, b in zip(names, want, got):
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), (name, optimize)


@pytest.mark.parametrize("form", FORMS[:2], ids=lambda f: "-".join(map(str, f)))
def test_approximate_plan_equals_the_oracle(encoders, form):
    original = encoders[form]
    rewritten = transform_model(original, APPROXIMATE)
    exact = transform_model(original, Plan(matmul=True), exact_layers="roup")
    differ = 0
    for (node, inputs, got), (_, _, exact_out) in zip(products_io(rewritten, sample()),
                                                      products_io(exact, sample())):
        assignment = read_assignment(node)
        assert len(assignment.multipliers) == 3 or base(node.name) == "head", node.name
        want = roup_matmul(*inputs, multipliers=assignment.multipliers,
                           multiplier_index=assignment.index,
                           encoded_operand=assignment.encoded_operand)
        assert want.dtype == got.dtype and want.tobytes() == got.tobytes(), node.name
        differ += got.tobytes() != exact_out.tobytes()
    assert differ >= 5  # the plan does change the products


def test_attention_layers_are_ranked_by_index_and_klms_leaves_them_exact(encoders):
    original = encoders[("qdq", "int8", True)]
    rewritten = transform_model(original, APPROXIMATE)
    nodes = {base(n.name): read_assignment(n) for n in rewritten.graph.node if n.op_type == OP_TYPE}
    qk = nodes["qk"]  # b = K^T [K=16, N=8 keys]: columns (filters) 0-2, 3-4, 5-7 by index
    assert qk.index.shape == (16, 8)
    assert [qk.multipliers[i].name for i in qk.index[0, :]] == (
        ["ROUP(0,0)"] * 3 + ["ROUP(1,4)"] * 2 + ["ROUP(2,6)"] * 3)
    meta = {p.key: json.loads(p.value) for p in rewritten.metadata_props if p.key == "axonnx.notes"}
    assert any("ranks by index" in note for note in meta["axonnx.notes"])
    klms = transform_model(original, plan_from_options(klms=1, matmul=True), exact_layers="roup")
    skipped = {base(n.name): read_assignment(n).per_position_names()
               for n in klms.graph.node if n.op_type == OP_TYPE}
    assert (skipped["qk"] == "ROUP(0,0)").all() and (skipped["fc1"] == "SKIP").any()
    # By default the exact product stays onnxruntime's (on uint8 activations).
    klms = transform_model(original, plan_from_options(klms=1, matmul=True))
    assert {base(n.name) for n in klms.graph.node if n.op_type == OP_TYPE} == set(skipped) - {"qk", "pv"}


def test_energy_counts_matmul_multiplications_per_kind(encoders):
    original = encoders[("qdq", "int8", True)]
    info = inspect_model(original, matmul=True)
    assert {base(layer.name): layer.macs_per_image for layer in info.layers} == MACS
    rewritten = transform_model(original, plan_from_options(llam="ROUP(1,4)", matmul=True))
    info = inspect_model(rewritten)  # the recorded plan says matmul
    assert info.plan_verified and info.plan.matmul
    assert {base(layer.name): layer.kind for layer in info.layers} == KINDS
    assert {base(layer.name): layer.multiplications for layer in info.layers} == {
        name: {"ROUP(1,4)": macs} for name, macs in MACS.items()}
    report = energy_report(info.multiplications, formats=info.operand_formats, kinds=info.kinds)
    per_kind = report.per_kind
    assert per_kind[ATTENTION]["multiplications"] == MACS["qk"] + MACS["pv"]
    assert per_kind[FULLY_CONNECTED_KIND]["multiplications"] == sum(
        v for k, v in MACS.items() if KINDS[k] == FULLY_CONNECTED_KIND)
    assert all(0 < row["gain"] < 1 for row in per_kind.values())
    # Re-planning the rewritten model works on the ROUPConv nodes in place.
    again = transform_model(rewritten, APPROXIMATE)
    assert inspect_model(again).plan_verified
    assert sum(n.op_type == OP_TYPE for n in again.graph.node) == 9


def test_without_matmul_the_products_stay_exact_and_are_named(encoders):
    original = encoders[("qoperator", "int8", False)]
    survey = survey_convs(original)
    assert not survey.layers
    assert {base(k): v for k, v in survey.fully_connected.items()} == KINDS
    with pytest.raises(AxonnxError, match="--matmul"):
        transform_model(original, plan_from_options(llam="ROUP(1,4)"))


def test_cli_inspect_and_energy_label_the_kinds(encoders, tmp_path):
    path = tmp_path / "encoder.onnx"
    onnx.save(encoders[("qdq", "int8", True)], path)
    runner = CliRunner()
    result = runner.invoke(app, ["inspect", str(path), "--matmul", "--json"])
    assert result.exit_code == 0, result.output
    layers = json.loads(result.stdout)["layers"]
    assert {base(layer["name"]): layer["kind"] for layer in layers} == KINDS
    result = runner.invoke(app, ["energy", str(path), "--matmul", "--json"])
    assert result.exit_code == 0, result.output
    per_kind = json.loads(result.stdout)["per_kind"]
    assert per_kind[ATTENTION]["multiplications"] == 2048
    out = tmp_path / "approx.onnx"
    result = runner.invoke(app, ["transform", str(path), "-o", str(out), "--llam", "ROUP(1,4)",
                                 "--matmul"])
    assert result.exit_code == 0, result.output
    assert plan_of(onnx.load(out)).matmul


@pytest.mark.parametrize("fmt", ["qdq", "qoperator"])
def test_two_attention_heads_are_batched_products(encoders, fmt):
    original = encoders[(fmt, "heads")]
    rewritten = transform_model(original, Plan(matmul=True), exact_layers="roup")
    indexes = {base(n.name): read_assignment(n).index.shape
               for n in rewritten.graph.node if n.op_type == OP_TYPE}
    assert indexes["qk"] == (8, 8) and indexes["pv"] == (8, 8)  # one [K, N] for both heads
    for optimize in (False, True):
        want = session(original, optimize).run(None, sample())[0]
        got = session(rewritten, optimize).run(None, sample())[0]
        assert want.tobytes() == got.tobytes(), optimize
    approximate = transform_model(original, APPROXIMATE)
    for node, inputs, got in products_io(approximate, sample()):
        assignment = read_assignment(node)
        want = roup_matmul(*inputs, multipliers=assignment.multipliers,
                           multiplier_index=assignment.index)
        assert want.tobytes() == got.tobytes(), node.name
    info = inspect_model(approximate)
    assert {base(layer.name): layer.macs_per_image for layer in info.layers
            if layer.kind == ATTENTION} == {"qk": 2 * 8 * 8 * 8, "pv": 2 * 8 * 8 * 8}


def test_cnn_fully_connected_heads_are_bit_identical(quantized_models, random_input):
    """The conv test models' Gemm head (QGemm, or QDQ Gemm after Flatten)."""
    x = random_input(3)
    for form in [("qoperator", "int8", True), ("qdq", "int8", True), ("qoperator", "uint8", False)]:
        original = onnx.load(quantized_models[form])
        rewritten = transform_model(original, Plan(matmul=True), exact_layers="roup")
        kinds = [layer.kind for layer in prepared(rewritten)[1]]
        assert kinds == ["conv"] * 4 + [FULLY_CONNECTED_KIND], form
        for optimize in (False, True):
            want = session(original, optimize).run(None, {"x": x})[0]
            got = session(rewritten, optimize).run(None, {"x": x})[0]
            assert want.tobytes() == got.tobytes(), (form, optimize)


# ---- refusals, with their reasons -------------------------------------------------------

def qdq_product(op: str, *, b_constant: bool, dims=("n", 4, 8), **attrs) -> onnx.ModelProto:
    """DequantizeLinear(a), DequantizeLinear(b) -> op -> QuantizeLinear, int8."""
    k, n = dims[-1], 6
    inits = [numpy_helper.from_array(np.float32(0.05), "s"), numpy_helper.from_array(np.int8(0), "z")]
    inputs = [helper.make_tensor_value_info("a", TensorProto.INT8, list(dims))]
    if b_constant:
        inits.append(numpy_helper.from_array(np.ones((k, n), np.int8), "b"))
    else:
        inputs.append(helper.make_tensor_value_info("b", TensorProto.INT8, list(dims[:-2]) + [k, n]))
    nodes = [helper.make_node("DequantizeLinear", ["a", "s", "z"], ["fa"], name="dq_a"),
             helper.make_node("DequantizeLinear", ["b", "s", "z"], ["fb"], name="dq_b"),
             helper.make_node(op, ["fa", "fb"], ["fy"], name="product", **attrs),
             helper.make_node("QuantizeLinear", ["fy", "s", "z"], ["y"], name="q")]
    graph = helper.make_graph(nodes, "g", inputs,
                              [helper.make_tensor_value_info("y", TensorProto.INT8, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def reasons(model) -> dict[str, str]:
    return {r.node: r.reason for r in survey_convs(model, matmul=True).refused}


def test_refusals_say_why():
    assert "transA" in reasons(qdq_product("Gemm", b_constant=True, dims=(8, 4), transA=1))["product"]
    assert "alpha" in reasons(qdq_product("Gemm", b_constant=True, dims=(4, 8), alpha=0.5))["product"]
    assert "1-D first operand" in reasons(qdq_product("MatMul", b_constant=True, dims=(8,)))["product"]
    half = qdq_product("MatMul", b_constant=True)
    half.graph.initializer[0].CopyFrom(numpy_helper.from_array(np.float16(0.05), "s"))
    assert "float16, not float32" in reasons(half)["product"]
    # Accepted: a constant b, an activation b of dynamic batch, and broadcast batch dims.
    for model in (qdq_product("MatMul", b_constant=True), qdq_product("MatMul", b_constant=False),
                  _broadcast()):
        assert survey_convs(model, matmul=True).layers
    integer = helper.make_model(helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["y"], name="mmi"),
         helper.make_node("ConvTranspose", ["x", "w"], ["t"], name="deconv")], "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT if n in "xw" else TensorProto.UINT8,
                                       [1, 2, 2, 2]) for n in ("a", "b", "x", "w")],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("y", "t")]))
    found = reasons(integer)
    # MatMulInteger is taken (ROUPMatMul's int32 form; tests/test_dynamic_quant.py).
    assert "mmi" not in found
    assert [layer.name for layer in survey_convs(integer, matmul=True).layers] == ["mmi"]
    assert "a float ConvTranspose" in found["deconv"]


def _broadcast() -> onnx.ModelProto:
    model = qdq_product("MatMul", b_constant=False, dims=(2, 4, 8))
    model.graph.input[1].type.tensor_type.shape.dim[0].dim_value = 1  # b [1, 8, 6]
    return model
