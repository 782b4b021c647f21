"""Layers a plan keeps exact stay the model's own onnxruntime op where onnxruntime runs them
faster (uint8 activations, transposed convs); ``exact_layers="roup"`` rewrites them too."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from axonnx.cli import app
from axonnx.ops.roupconv import DOMAIN, read_assignment
from axonnx.plan import Plan, plan_from_options
from axonnx.transform import inspect_model, prepared, transform_model, transform_with_summary

from test_encoder import encoders, inputs  # noqa: F401 (a fixture)
from test_passes import run


def _custom_ops(model: onnx.ModelProto) -> Counter:
    return Counter(n.op_type for n in model.graph.node if n.domain == DOMAIN)


@pytest.mark.parametrize("form", [("qoperator", "uint8", False), ("qdq", "uint8", True)],
                         ids=lambda f: "-".join(map(str, f)))
def test_uint8_exact_layers_stay_the_models_own_ops(quantized_models, form, random_input):
    original = onnx.load(quantized_models[form])
    work, layers, _ = prepared(original)
    model, summary = transform_with_summary(original, Plan())
    assert not _custom_ops(model)
    assert sorted(summary.kept_original) == sorted(layer.name for layer in layers)
    assert (Counter(n.op_type for n in model.graph.node)
            == Counter(n.op_type for n in work.graph.node))
    x = random_input(3)
    for optimize in (False, True):
        assert run(model, x, optimize).tobytes() == run(original, x, optimize).tobytes()
    assert "4 of them left as the model's own op" in "\n".join(summary.lines())
    assert "uint8" not in summary.canonical  # nothing to shift


def test_int8_qoperator_exact_layers_become_roup_nodes(quantized_models):
    # onnxruntime's int8-activation QLinearConv is its slow path on x86 (3.6x slower on
    # MobileNetV2 than ROUPConv), and the QLinearAdds between them keep the int8 type.
    model, summary = transform_with_summary(
        onnx.load(quantized_models[("qoperator", "int8", True)]), Plan())
    assert _custom_ops(model) == {"ROUPConv": 4}
    assert summary.kept_original == [] and "uint8" not in summary.canonical


@pytest.mark.parametrize("per_channel", [True, False])
def test_int8_qdq_activations_become_uint8_and_exact_layers_stay_onnxruntimes(
        quantized_models, per_channel, random_input):
    original = onnx.load(quantized_models[("qdq", "int8", per_channel)])
    model, summary = transform_with_summary(original, Plan())
    assert not _custom_ops(model) and len(summary.kept_original) == 4
    assert "int8 activation tensors as uint8" in summary.canonical
    x = random_input(3)
    # As written, onnxruntime runs the same float convs on the same values.
    assert run(model, x, False).tobytes() == run(original, x, False).tobytes()
    # The ROUP nodes compute the same on the uint8 values as on the int8 ones.
    plan = plan_from_options(flam="ROUP(0,0),ROUP(1,4),SKIP")
    shifted = transform_model(original, plan)
    kept_int8 = transform_model(original, plan, exact_layers="roup")
    assert _custom_ops(shifted) == _custom_ops(kept_int8) == {"ROUPConv": 4}
    assert run(shifted, x, False).tobytes() == run(kept_int8, x, False).tobytes()


def test_a_mixed_plan_runs_the_same_bytes_either_way_and_reads_back(quantized_models,
                                                                     random_input):
    original = onnx.load(quantized_models[("qoperator", "uint8", False)])
    _, layers, _ = prepared(original)
    first = layers[0].name
    plan = plan_from_options(llam="ROUP(1,4)", layers=first)
    mixed = transform_model(original, plan)
    assert _custom_ops(mixed) == {"ROUPConv": 1}
    assert next(n for n in mixed.graph.node if n.domain == DOMAIN).name == first
    everywhere = transform_model(original, plan, exact_layers="roup")
    assert _custom_ops(everywhere) == {"ROUPConv": 4}
    x = random_input(4)
    assert run(mixed, x, True).tobytes() == run(everywhere, x, True).tobytes()
    # The layers left as QLinearConv read back as exact, and the plan as the model's.
    info = inspect_model(mixed)
    assert info.plan_verified is True
    kept = [layer for layer in info.layers if layer.name != first]
    assert all(set(layer.multiplications) == {"ROUP(0,0)"} for layer in kept)
    assert set(next(l for l in info.layers if l.name == first).multiplications) == {"ROUP(1,4)"}
    # Re-planned: the kept layers are plain layers again, the rewritten one stays a ROUP node.
    again = transform_model(mixed, plan_from_options(llam="ROUP(1,4)"))
    assert _custom_ops(again) == {"ROUPConv": 4}
    back = transform_model(mixed, Plan())
    assert _custom_ops(back) == {"ROUPConv": 1}
    assert run(back, x, True).tobytes() == run(original, x, True).tobytes()


def test_a_decoders_exact_layers_and_upsamplers_stay_onnxruntimes(tmp_path, random_input):
    from axonnx.architectures import unet_decoder
    from axonnx.zoo import quantize_float

    fp32 = tmp_path / "fp32.onnx"
    onnx.save(unet_decoder(size=16), fp32)
    calib = np.random.default_rng(0).uniform(-1, 1, (2, 3, 16, 16)).astype(np.float32)
    quantized = onnx.load(str(quantize_float(fp32, tmp_path / "q.onnx", calib)))
    _, layers, _ = prepared(quantized)
    model, summary = transform_with_summary(quantized, Plan())
    assert not _custom_ops(model)
    assert Counter(n.op_type for n in model.graph.node)["ConvTranspose"] == 2
    assert sorted(summary.kept_original) == sorted(layer.name for layer in layers)
    from test_passes import session

    x = {"input": random_input(2, 16)}
    assert (session(model, False).run(None, x)[0].tobytes()
            == session(quantized, False).run(None, x)[0].tobytes())
    # Approximated, the upsamplers are ROUP nodes and the rest stays.
    up = [layer.name for layer in layers if layer.kind == "transposed conv"]
    model = transform_model(quantized, plan_from_options(llam="ROUP(1,4)", layers=",".join(up)))
    assert _custom_ops(model) == {"ROUPConvTranspose": 2}


def test_attention_on_uint8_activations_computes_what_it_did_on_int8(encoders):
    from test_encoder import session

    original = encoders[("qdq", "sym-int8")]
    plan = plan_from_options(llam="ROUP(1,4)", matmul=True)
    shifted, summary = transform_with_summary(original, plan)
    assert "int8 activation tensors as uint8" in summary.canonical
    kept_int8 = transform_model(original, plan, exact_layers="roup")
    assert _custom_ops(shifted) == _custom_ops(kept_int8) == {"ROUPMatMul": 16}
    feeds = inputs(3, 17)
    assert (session(shifted, False).run(None, feeds)[0].tobytes()
            == session(kept_int8, False).run(None, feeds)[0].tobytes())


@pytest.mark.parametrize("form", [("qoperator", "uint8"), ("qdq", "uint8")], ids="-".join)
def test_re_planning_rewritten_products_to_exact_rewrites_them_in_place(encoders, form):
    # A ROUPMatMul has no original op to go back to: an exact re-plan must still reach it.
    approximate = transform_model(encoders[form], plan_from_options(llam="ROUP(1,4)", matmul=True))
    again = transform_model(approximate, Plan(matmul=True))
    nodes = [n for n in again.graph.node if n.domain == DOMAIN]
    assert len(nodes) == 16
    assert all(set(read_assignment(n).per_position_names().ravel()) == {"ROUP(0,0)"}
               for n in nodes)
    assert inspect_model(again, input_shape="1,8,64").plan_verified is True


def test_cli_option(quantized_models, tmp_path):
    source = str(quantized_models[("qoperator", "uint8", False)])
    out = tmp_path / "out.onnx"
    result = CliRunner().invoke(app, ["transform", source, "-o", str(out), "--llam",
                                      "ROUP(0,0)", "--exact-layers", "roup", "--json"])
    assert result.exit_code == 0, result.output
    assert _custom_ops(onnx.load(out)) == {"ROUPConv": 4}
    ops = {r["op"] for r in json.loads(result.stdout)["summary"]["kept_exact"]}
    assert ops == {"ROUP"}
    result = CliRunner().invoke(app, ["transform", source, "-o", str(out), "--llam",
                                      "ROUP(0,0)", "--json"])
    assert {r["op"] for r in json.loads(result.stdout)["summary"]["kept_exact"]} == {"original"}
    bad = CliRunner().invoke(app, ["transform", source, "-o", str(tmp_path / "x.onnx"),
                                   "--exact-layers", "mlas"])
    assert bad.exit_code != 0
    assert "unknown --exact-layers 'mlas'; use one of onnxruntime, roup" in bad.output
    assert "Traceback" not in bad.output


@pytest.mark.parametrize("multiplier", ["ROUP(2,6)", "LUT(mul8u_2HH)"])
def test_recovery_gives_the_same_model_on_uint8_stored_activations(quantized_models, multiplier,
                                                                   random_input, monkeypatch):
    # The statistics are measured on the model as stored (int8); the corrections they give
    # must not depend on the activations being stored as uint8 in the transformed model.
    from axonnx.recovery import Recovery, measure_activations

    if multiplier.startswith("LUT"):
        from conftest import shared_data_or_skip

        table = shared_data_or_skip("evoapprox8u", "mul8u_2HH.bin")
        monkeypatch.setenv("AXONNX_LUT_PATH", str(table.parent))
    original = onnx.load(quantized_models[("qdq", "int8", True)])
    stats = measure_activations(original, random_input(16))
    fixer = Recovery(stats, tune_weights=False, correct_bias=True)
    plan = plan_from_options(llam=multiplier)
    shifted = transform_model(original, plan, recovery=fixer)
    kept_int8 = transform_model(original, plan, recovery=fixer, exact_layers="roup")
    changes = json.loads({p.key: p.value for p in shifted.metadata_props}["axonnx.recovery"])
    assert changes["layers"], "the plan should need corrections"
    assert changes == json.loads(
        {p.key: p.value for p in kept_int8.metadata_props}["axonnx.recovery"])
    x = random_input(3)
    assert run(shifted, x, False).tobytes() == run(kept_int8, x, False).tobytes()


PARALLEL = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[1, 2, 6, 6] x) => (float[1, 3, 6, 6] ya, float[1, 3, 6, 6] yb) {
  xq = QuantizeLinear (x, xs, zx)
  xd = DequantizeLinear (xq, xs, zx)
  wa = DequantizeLinear (waq, ws, zw)
  wb = DequantizeLinear (wbq, ws, zw)
  ca = Conv <pads = [1, 1, 1, 1]> (xd, wa)
  cb = Conv <pads = [1, 1, 1, 1]> (xd, wb)
  qa = QuantizeLinear (ca, ys, zy)
  qb = QuantizeLinear (cb, ys, zy)
  ya = DequantizeLinear (qa, ys, zy)
  yb = DequantizeLinear (qb, ys, zy)
}
"""


def test_a_plan_reads_back_when_rewritten_and_kept_layers_change_order():
    # Conv A, Conv B, then their QuantizeLinears: the ROUPConv of A takes A's QuantizeLinear's
    # place, after the kept Conv B, so the layers' order differs from the plan's.
    from axonnx.passes.testing import model_from_text

    rng = np.random.default_rng(0)
    model = model_from_text(PARALLEL, {
        "xs": np.float32(0.02), "zx": np.uint8(10), "ws": np.float32(0.01), "zw": np.int8(0),
        "ys": np.float32(0.05), "zy": np.uint8(120),
        "waq": rng.integers(-127, 128, (3, 2, 3, 3)).astype(np.int8),
        "wbq": rng.integers(-127, 128, (3, 2, 3, 3)).astype(np.int8)})
    _, layers, _ = prepared(model)
    first, second = (layer.name for layer in layers)
    out = transform_model(model, plan_from_options(llam="ROUP(1,4)", layers=first))
    order = [n.name for n in out.graph.node if n.name in (first, second)]
    assert order == [second, first]
    info = inspect_model(out)
    assert info.plan_verified is True
    assert {layer.name: layer.rule["approach"] for layer in info.layers} == {
        first: "llam", second: "exact"}
