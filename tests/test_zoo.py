"""The model zoo: name resolution, the committed files and their card, ``axonnx zoo``."""

from __future__ import annotations

import hashlib
import json

import onnx
import pytest
from typer.testing import CliRunner

from axonnx import zoo
from axonnx.cli import zoo as _zoo  # noqa: F401  (registers the command)
from axonnx.cli._app import app
from axonnx.errors import AxonnxError

NAMES = ["zoo:resnet8", "zoo:resnet8-qdq", "zoo:resnet8-fp32"]


def test_names_and_files():
    assert zoo.names() == NAMES
    root = zoo.zoo_root()
    assert (root / "resnet8").is_dir()
    files = {m.name: m.file for m in zoo.MODELS}
    assert files == {"zoo:resnet8": "resnet8_int8.onnx",
                     "zoo:resnet8-qdq": "resnet8_int8_qdq.onnx",
                     "zoo:resnet8-fp32": "resnet8_fp32.onnx"}


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(AxonnxError) as info:
        zoo.resolve_model("zoo:resnet9")
    assert all(name in str(info.value) for name in NAMES)


def test_paths_pass_through_and_missing_paths_fail(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    assert zoo.resolve_model(model) == model
    assert zoo.resolve_model(str(model)) == model
    with pytest.raises(AxonnxError, match="no model file .*zoo:resnet8"):
        zoo.resolve_model(tmp_path / "missing.onnx")
    with pytest.raises(AxonnxError, match="did you mean zoo:resnet8"):
        zoo.resolve_model("resnet8")


def test_missing_zoo_file_is_reported(tmp_path, monkeypatch):
    (tmp_path / "resnet8").mkdir()
    monkeypatch.setattr(zoo, "zoo_root", lambda: tmp_path)
    with pytest.raises(AxonnxError, match="has no file .*known models are zoo:resnet8"):
        zoo.resolve_model("zoo:resnet8")
    rows = zoo.list_models()
    assert [r["present"] for r in rows] == [False] * 3


def _built():
    try:
        return {name: zoo.resolve_model(name) for name in NAMES}
    except AxonnxError as exc:
        pytest.skip(f"zoo models not built yet: {exc}")


def test_committed_models_match_their_card():
    paths = _built()
    for name, path in paths.items():
        info = zoo.card(name)
        assert info["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest(), name
        assert 0.8 < info["top1"] <= 1 and info["n_test"] == 10000
        model = onnx.load(str(path))
        assert model.ir_version == 10
        meta = {p.key: p.value for p in model.metadata_props}
        assert json.loads(meta["axonnx.preprocess"]) == {
            "layout": "NCHW", "dtype": "float32", "range": "0-255", "normalisation": "in graph"}
        assert meta["axonnx.dataset"] == "cifar10"
        assert len(json.loads(meta["axonnx.classes"])) == 10
    ops = {n.op_type for n in onnx.load(str(paths["zoo:resnet8"])).graph.node}
    assert "QLinearConv" in ops and "Conv" not in ops
    ops = {n.op_type for n in onnx.load(str(paths["zoo:resnet8-qdq"])).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops


def test_cli_zoo_lists_models():
    result = CliRunner().invoke(app, ["zoo", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows] == NAMES
    result = CliRunner().invoke(app, ["zoo"])
    assert result.exit_code == 0 and "zoo:resnet8-qdq" in result.stdout
