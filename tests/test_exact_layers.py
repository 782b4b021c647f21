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
from axonnx.ops.roupconv import DOMAIN
from axonnx.plan import Plan, plan_from_options
from axonnx.transform import inspect_model, prepared, transform_model, transform_with_summary

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


@pytest.mark.parametrize("form", [("qoperator", "int8", True), ("qdq", "int8", True)],
                         ids=lambda f: "-".join(map(str, f)))
def test_int8_exact_layers_become_roup_nodes(quantized_models, form):
    # onnxruntime's int8-activation convs are the slow path on x86: ROUPConv runs them.
    model, summary = transform_with_summary(onnx.load(quantized_models[form]), Plan())
    assert _custom_ops(model) == {"ROUPConv": 4}
    assert summary.kept_original == []


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


def test_transposed_convs_stay_onnxruntimes_even_with_int8_activations(tmp_path):
    from axonnx.architectures import unet_decoder
    from axonnx.zoo import quantize_float

    fp32 = tmp_path / "fp32.onnx"
    onnx.save(unet_decoder(), fp32)
    shape = [d.dim_value or 16 for d in onnx.load(fp32).graph.input[0].type.tensor_type.shape.dim]
    calib = np.random.default_rng(0).uniform(-1, 1, [2] + shape[1:]).astype(np.float32)
    quantized = onnx.load(str(quantize_float(fp32, tmp_path / "q.onnx", calib)))
    model, summary = transform_with_summary(quantized, Plan())
    ops = _custom_ops(model)
    assert "ROUPConvTranspose" not in ops and ops["ROUPConv"] > 0
    assert Counter(n.op_type for n in model.graph.node)["ConvTranspose"] == 2
    assert len(summary.kept_original) == 2


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
