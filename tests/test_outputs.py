"""Outputs never destroy inputs: checked before anything is written."""

from __future__ import annotations

import onnx
import pytest
from typer.testing import CliRunner

from axonnx.cli import app
from axonnx.errors import AxonnxError
from axonnx.model import check_outputs, model_files
from axonnx.zoo import resolve_model

runner = CliRunner()


@pytest.fixture
def external_model(tmp_path):
    """The zoo model saved with its weights in an external-data file."""
    model = onnx.load(str(resolve_model("zoo:resnet8")))
    path = tmp_path / "ext.onnx"
    onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location="ext.data", size_threshold=0)
    return path


def transform(*args):
    return runner.invoke(app, ["transform", *map(str, args), "--llam", "ROUP(0,4)"])


def test_model_files_name_the_external_data(external_model):
    assert model_files(external_model) == [external_model, external_model.parent / "ext.data"]


@pytest.mark.parametrize("target", ["model", "data", "plan-on-model", "zoo", "missing-folder",
                                    "same-twice"])
def test_transform_refuses_before_writing(external_model, tmp_path, target):
    before = {p: p.read_bytes() for p in tmp_path.iterdir()}
    out, plan = tmp_path / "out.onnx", None
    if target == "model":
        out = external_model
    elif target == "data":
        out = tmp_path / "ext.data"
    elif target == "plan-on-model":
        plan = external_model
    elif target == "zoo":
        out = resolve_model("zoo:resnet8-qdq")
    elif target == "missing-folder":
        plan = tmp_path / "nope" / "plan.yaml"
    else:
        plan = out
    zoo_bytes = resolve_model("zoo:resnet8-qdq").read_bytes()
    result = transform(external_model, "-o", out, *(("--save-plan", plan) if plan else ()))
    # The CLI's error boundary prints an AxonnxError as one line, exit status 1.
    assert result.exit_code == 1, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and "error:" in result.stderr
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing written
    assert resolve_model("zoo:resnet8-qdq").read_bytes() == zoo_bytes


def test_transform_of_an_external_data_model_works(external_model, tmp_path):
    result = transform(external_model, "-o", tmp_path / "out.onnx", "--save-plan",
                       tmp_path / "plan.yaml")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "plan.yaml").read_text().startswith("version")


def test_check_outputs_rules(tmp_path):
    check_outputs([tmp_path / "a", None, tmp_path / "b"], [tmp_path / "c"])
    with pytest.raises(AxonnxError, match="would overwrite an input"):
        check_outputs([tmp_path / "x" / ".." / "c"], [tmp_path / "c"])
    with pytest.raises(AxonnxError, match="same file"):
        check_outputs([tmp_path / "a", tmp_path / "a"])


@pytest.mark.parametrize("command", ["characterize-liberty", "characterize-verilog", "verilog-dir"])
def test_hw_outputs_never_overwrite_their_inputs(tmp_path, command):
    liberty = tmp_path / "lib.lib.gz"
    liberty.write_bytes(b"not really a library")
    netlist = tmp_path / "m.v"
    netlist.write_text("module m(); endmodule\n")
    before = {p: p.read_bytes() for p in tmp_path.iterdir()}
    if command == "characterize-liberty":
        args = ["hw", "characterize", "--liberty", liberty, "-o", liberty]
    elif command == "characterize-verilog":
        args = ["hw", "characterize", "--liberty", liberty, "--verilog", netlist, "-o", netlist]
    else:
        args = ["hw", "verilog", "ROUP(1,4)", "-o", tmp_path / "nope" / "m.v"]
    result = runner.invoke(app, list(map(str, args)))
    assert result.exit_code == 1 and result.stderr.startswith("error:"), result.output
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_written_model_honours_the_umask(tmp_path):
    import os

    old = os.umask(0o027)
    try:
        result = transform("zoo:resnet8", "-o", tmp_path / "out.onnx")
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out.onnx").stat().st_mode & 0o777 == 0o640
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left


def test_search_leaves_no_temporary_folders(tmp_path, monkeypatch):
    """Scoring plans in worker processes writes into temporary folders that are all gone
    afterwards."""
    import tempfile

    from axonnx.analysis.evaluation import Workload, make_backend
    from axonnx.data import load_sample
    from axonnx.data.cifar10 import Split
    from axonnx.plan import LayerRule, Plan

    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the worker processes inherit it
    monkeypatch.setattr(tempfile, "tempdir", None)
    sample = load_sample()
    model = onnx.load(str(resolve_model("zoo:resnet8")))
    workload = Workload.create(model, Split(sample.images[:20], sample.labels[:20], "20 images"))
    backend = make_backend(workers=2)  # worker processes
    try:
        scores = backend.map(workload, [None, Plan((LayerRule(("*",), "llam", ("ROUP_M",)),))])
    finally:
        backend.close()
    assert len(scores) == 2 and all(0 <= s <= 1 for s in scores)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("axonnx-")]


@pytest.mark.parametrize("command", [
    ["explore", "zoo:resnet8", "--approach", "llam", "--multipliers", "ROUP_M", "--sample"],
    ["sensitivity", "zoo:resnet8", "--sample", "--limit", "1"],
    ["reproduce", "--quick"],
])
def test_a_file_where_the_results_folder_goes_is_a_clear_error(tmp_path, command):
    blocker = tmp_path / "results"
    blocker.write_text("keep me")
    result = runner.invoke(app, command + ["--out", str(blocker)])
    assert result.exit_code == 1 and "is a file; give a folder" in result.stderr, result.output
    assert blocker.read_text() == "keep me"
