"""The bad-input campaign of issue 19, kept as tests. Every case is classed, and its test's
name starts with the class: crash, package_files, resources, invalid_output,
silent_wrong_path, oracle, signals, catch_all. A bad input must end in one clear line and the
right exit status, never in a traceback, a destroyed file, an unbounded allocation or the
catch-all handler ("internal error, please report")."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import typer
from onnx import TensorProto, helper, numpy_helper

import axonnx
from axonnx.cli import _app
from axonnx.errors import AxonnxError
from axonnx.limits import MAX_POP, MAX_THREADS, MAX_WORKERS
from axonnx.ops.roupconv import read_assignment, roup_conv
from axonnx.plan import plan_from_options
from axonnx.transform import transform_model
from axonnx.zoo import resolve_model

PACKAGE = Path(axonnx.__file__).resolve().parent
ZOO_MODEL = resolve_model("zoo:resnet8")
PACKAGED = [ZOO_MODEL, PACKAGE / "data" / "cifar10_test_sample.npz",
            PACKAGE / "multipliers" / "energy_table.json"]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_cli(capsys, monkeypatch, *args) -> tuple[int, str]:
    """``axonnx ARGS`` through the real entry point (its error boundary and catch-all), in
    this process: the exit status and stderr."""
    monkeypatch.setattr(sys, "argv", ["axonnx", *map(str, args)])
    monkeypatch.delenv("AXONNX_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        _app.main()
    return exit_info.value.code, capsys.readouterr().err


def assert_one_line_error(code: int, err: str, fragment: str, status: int = 1) -> None:
    """Status 1 and one ``error:`` line (an AxonnxError), or status 2 and click's one
    ``Error:`` line (a usage error: an option's declared range)."""
    assert code == status, err
    assert "Traceback" not in err and _app.INTERNAL_ERROR not in err, err
    marker = "error:" if status == 1 else "Error:"
    lines = [ln for ln in err.splitlines() if ln.startswith(marker)]
    assert len(lines) == 1, err
    if status == 1:  # nothing but the error line (progress bars may precede it)
        assert err.strip().splitlines()[-1] == lines[0], err
    assert fragment in lines[0], err


# ---- hostile models ----------------------------------------------------------------------

def zoo_model() -> onnx.ModelProto:
    return onnx.load(str(ZOO_MODEL))


def huge_initializer(model):
    t = onnx.TensorProto(name="huge", data_type=TensorProto.INT8, dims=[2 ** 40],
                         raw_data=b"\0" * 12)  # claims 1 TiB, holds 12 bytes
    model.graph.initializer.append(t)


def ir_99(model):
    model.ir_version = 99


def opset_99(model):
    model.opset_import[0].version = 99


def dangling_input(model):
    model.graph.node.append(helper.make_node("Identity", ["nowhere"], ["dangling"]))
    model.graph.output.append(helper.make_tensor_value_info("dangling", TensorProto.FLOAT, [1]))


@pytest.fixture
def hostile(tmp_path):
    def make(edit) -> Path:
        model = zoo_model()
        edit(model)
        path = tmp_path / f"{edit.__name__}.onnx"
        onnx.save(model, str(path))
        return path
    return make


# ---- package files -------------------------------------------------------------------------

@pytest.fixture
def package_untouched():
    before = {p: digest(p) for p in PACKAGED}
    yield
    assert {p: digest(p) for p in PACKAGED} == before


@pytest.mark.parametrize("case", [
    "verilog-onto-zoo-model", "verilog-through-symlink", "transform-onto-sample",
    "save-plan-into-package", "characterize-onto-energy-table", "sensitivity-out",
    "explore-out", "reproduce-out", "characterize-onto-its-input"])
def test_package_files(case, tmp_path, capsys, monkeypatch, package_untouched):
    link = tmp_path / "link.npz"
    link.symlink_to(PACKAGED[1])
    liberty = tmp_path / "lib.lib"
    liberty.write_text("library(x) {}\n")
    args, fragment = {
        "verilog-onto-zoo-model": (["hw", "verilog", "ROUP(1,4)", "-o", ZOO_MODEL],
                                   "installed files"),
        "verilog-through-symlink": (["hw", "verilog", "ROUP(1,4)", "-o", link], "installed files"),
        "transform-onto-sample": (["transform", "zoo:resnet8", "-o", PACKAGED[1], "--llam",
                                   "ROUP(1,4)"], "installed files"),
        "save-plan-into-package": (["transform", "zoo:resnet8", "-o", tmp_path / "out.onnx",
                                    "--llam", "ROUP(1,4)", "--save-plan",
                                    PACKAGE / "plan.yaml"], "installed files"),
        "characterize-onto-energy-table": (["hw", "characterize", "--liberty", liberty, "-o",
                                            PACKAGED[2]], "installed files"),
        "sensitivity-out": (["sensitivity", "zoo:resnet8", "--sample", "--out",
                             PACKAGE / "results"], "installed files"),
        "explore-out": (["explore", "zoo:resnet8", "--sample", "--approach", "llam",
                         "--multipliers", "ROUP_L", "--out", PACKAGE / "runs"], "installed files"),
        "reproduce-out": (["reproduce", "--quick", "--sample", "--out", PACKAGE / "study"],
                          "installed files"),
        "characterize-onto-its-input": (["hw", "characterize", "--liberty", liberty, "-o",
                                         liberty], "would overwrite an input"),
    }[case]
    assert_one_line_error(*run_cli(capsys, monkeypatch, *args), fragment)
    assert not (tmp_path / "out.onnx").exists()
    assert not any((PACKAGE / name).exists() for name in ("plan.yaml", "results", "runs", "study"))


# ---- resources -----------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["threads", "workers", "dask-local", "pop"])
def test_resources(case, tmp_path, capsys, monkeypatch):
    args, fragment, status = {
        "threads": (["eval", "zoo:resnet8", "--sample", "--threads", 100000], "--threads", 2),
        "workers": (["sensitivity", "zoo:resnet8", "--sample", "--limit", 10, "--workers",
                     100000, "--out", tmp_path], f"give 1 to {MAX_WORKERS}", 1),
        "dask-local": (["sensitivity", "zoo:resnet8", "--sample", "--limit", 10, "--dask",
                        "local:100000", "--out", tmp_path], f"give 1 to {MAX_WORKERS}", 1),
        "pop": (["explore", "zoo:resnet8", "--sample", "--approach", "llam", "--multipliers",
                 "ROUP_L", "--pop", 100000000, "--out", tmp_path / "run"], f"4 .. {MAX_POP}", 1),
    }[case]
    assert_one_line_error(*run_cli(capsys, monkeypatch, *args), fragment, status)


def test_resources_bounds_are_in_help():
    from typer.testing import CliRunner

    for command, bound in ((["eval"], MAX_THREADS), (["sensitivity"], MAX_WORKERS),
                           (["explore"], MAX_POP)):
        out = CliRunner().invoke(_app.app, [*command, "--help"], terminal_width=400).output
        assert f"at most {bound}" in " ".join(out.split()) or f"4 to {bound}" in out, command


def test_resources_billion_laughs_plan(tmp_path, capsys, monkeypatch):
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    plan = tmp_path / "laughs.yaml"
    plan.write_text("\n".join(lines) + "\n")
    assert plan.stat().st_size < 1000
    start = time.perf_counter()
    code, err = run_cli(capsys, monkeypatch, "transform", "zoo:resnet8", "-o",
                        tmp_path / "out.onnx", "--plan", plan)
    assert time.perf_counter() - start < 30
    assert_one_line_error(code, err, "anchors or aliases")


# ---- invalid output ------------------------------------------------------------------------

@pytest.mark.parametrize("edit", [huge_initializer, ir_99, opset_99, dangling_input],
                         ids=lambda e: e.__name__)
def test_invalid_output(edit, hostile, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out.onnx"
    code, err = run_cli(capsys, monkeypatch, "transform", hostile(edit), "-o", out, "--llam",
                        "ROUP(1,4)")
    assert_one_line_error(code, err, "model")
    assert not out.exists()


def test_invalid_output_check_accepts_graph_io_without_shapes(tmp_path, capsys, monkeypatch):
    """The IR lets graph inputs and outputs have no shape and onnxruntime loads them, though
    onnx.checker demands one: the validation must not refuse such a model."""
    model = zoo_model()
    for value in (model.graph.input[0], model.graph.output[0]):
        value.type.tensor_type.ClearField("shape")
    path, out = tmp_path / "shapeless.onnx", tmp_path / "out.onnx"
    onnx.save(model, str(path))
    code, err = run_cli(capsys, monkeypatch, "transform", path, "-o", out, "--llam", "ROUP(1,4)")
    assert code == 0 and out.exists(), err


def test_invalid_output_save_plan_unwritable(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out.onnx"
    code, err = run_cli(capsys, monkeypatch, "transform", "zoo:resnet8", "-o", out, "--llam",
                        "ROUP(1,4)", "--save-plan", "/proc/plan.yaml")  # unwritable, even as root
    assert_one_line_error(code, err, "not writable")
    assert not out.exists()  # refused before the model was written


# ---- silent wrong paths --------------------------------------------------------------------

@pytest.mark.parametrize("case", ["lut-outside-path", "energy-row-roup-9-9", "reeval-nan",
                                  "bits-0", "bits-minus-2", "liberty-broken-gz",
                                  "recovery-data-missing"])
def test_silent_wrong_path(case, tmp_path, capsys, monkeypatch):
    (tmp_path / "luts").mkdir()
    np.save(tmp_path / "outside.npy", np.zeros((256, 256), np.int64))
    monkeypatch.setenv("AXONNX_LUT_PATH", str(tmp_path / "luts"))
    table = tmp_path / "table.csv"
    table.write_text("name,energy,unit\nROUP(0,0),0.5,pJ\nROUP(9,9),0.1,pJ\n")
    liberty = tmp_path / "garbage.lib.gz"
    liberty.write_bytes(b"\x1f\x8b\x08\x00garbage")  # a gzip header, then nothing valid
    out = tmp_path / "out.onnx"
    args, fragment = {
        "lut-outside-path": (["transform", "zoo:resnet8", "-o", out, "--llam",
                              "LUT(../outside)"], "is a path"),
        "energy-row-roup-9-9": (["energy", "zoo:resnet8", "--table", table], "P=9"),
        "reeval-nan": (["explore", "zoo:resnet8", "--sample", "--approach", "llam",
                        "--multipliers", "ROUP_L", "--reeval-max-loss", "nan", "--out",
                        tmp_path / "run"], "--reeval-max-loss"),
        "bits-0": (["multipliers", "--bits", "0"], "N=0"),
        "bits-minus-2": (["multipliers", "--bits", "-2"], "N=-2"),
        "liberty-broken-gz": (["hw", "characterize", "--liberty", liberty, "--multipliers",
                               "ROUP(1,4)"], "not a valid .gz"),
        "recovery-data-missing": (["transform", "zoo:resnet8", "-o", out, "--llam", "ROUP(1,4)",
                                   "--recovery", "bias", "--data", tmp_path / "no" / "dir"],
                                  "does not exist"),
    }[case]
    assert_one_line_error(*run_cli(capsys, monkeypatch, *args), fragment)
    assert not out.exists()


# ---- oracle --------------------------------------------------------------------------------

def qlinear_conv(x_scale: float, y_scale: float, dtype) -> tuple[onnx.ModelProto, dict]:
    """One QLinearConv (per-channel int8 weights, pads 1) with these scales."""
    rng = np.random.default_rng(0)
    consts = {"xs": np.float32(x_scale), "xz": dtype(0),
              "w": rng.integers(-5, 6, (3, 2, 3, 3)).astype(np.int8),
              "ws": np.array([0.5, 1.0, 2.0], np.float32), "wz": np.zeros(3, np.int8),
              "ys": np.float32(y_scale), "yz": dtype(3)}
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    node = helper.make_node("QLinearConv", ["x", *consts], ["y"],
                            name="conv", pads=[1, 1, 1, 1])
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", elem, [1, 2, 4, 4])],
        [helper.make_tensor_value_info("y", elem, [1, 3, 4, 4])],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in consts.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 10  # onnxruntime loads IR <= 13
    return model, consts


@pytest.mark.parametrize("dtype", [np.uint8, np.int8], ids=["uint8", "int8"])
@pytest.mark.parametrize("x_scale, y_scale", [(1e38, 1.0), (1.0, 1e-45), (1e38, 1e-45),
                                              (0.02, 0.05)])
def test_oracle_extreme_scales_saturate_like_qlinearconv(dtype, x_scale, y_scale):
    model, c = qlinear_conv(x_scale, y_scale, dtype)
    low = 0 if dtype is np.uint8 else -128
    x = np.random.default_rng(1).integers(low, low + 256, (1, 2, 4, 4)).astype(dtype)
    x[0, :, 0, 0] = 0  # some zero accumulators too: 0 x inf
    expected = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    oracle = roup_conv(x, c["xs"], c["xz"], c["w"], c["ws"], c["wz"], c["ys"], c["yz"],
                       pads=[1, 1, 1, 1])
    np.testing.assert_array_equal(oracle, expected)
    rewritten = transform_model(model, plan_from_options(llam="ROUP(0,0)"), exact_layers="roup")
    kernel = axonnx.InferenceSession(rewritten.SerializeToString()).run(None, {"x": x})[0]
    np.testing.assert_array_equal(kernel, expected)
    if x_scale > 1e30 or y_scale < 1e-30:  # the bytes the wrap gave: saturation both ways
        assert expected.max() == np.iinfo(dtype).max


def test_oracle_non_utf8_multipliers_attribute():
    node = helper.make_node("ROUPConv", [], ["y"], name="n", domain="com.axonnx",
                            multipliers=[b"\xff\xfe"])
    with pytest.raises(AxonnxError, match="not UTF-8"):
        read_assignment(node)


# ---- crash: an absent required ROUPConv input ---------------------------------------------

ROUPCONV_INPUTS = ["x_scale", "x_zero_point", "w", "w_scale", "w_zero_point", "y_scale",
                   "y_zero_point"]


def without_input(which: int) -> onnx.ModelProto:
    model = transform_model(zoo_model(), plan_from_options(llam="ROUP(1,4)"))
    node = next(n for n in model.graph.node if n.op_type == "ROUPConv")
    node.input[which] = ""
    return model


@pytest.mark.parametrize("which", range(1, 8), ids=ROUPCONV_INPUTS)
def test_crash_empty_roupconv_input_is_an_error(which, tmp_path, capsys, monkeypatch):
    path = tmp_path / "empty.onnx"
    onnx.save(without_input(which), str(path))
    code, err = run_cli(capsys, monkeypatch, "eval", path, "--sample", "--limit", 4)
    assert_one_line_error(code, err, ROUPCONV_INPUTS[which - 1])


@pytest.mark.parametrize("which", [0, 3, 7], ids=["x", "w", "y_zero_point"])
def test_crash_empty_roupconv_input_in_plain_onnxruntime(which, tmp_path):
    """A session that bypasses axonnx's Python (plain onnxruntime + the library) fails at
    creation with the kernel's own error naming the input, not SIGSEGV: in a child process,
    so that a crash cannot take pytest."""
    path = tmp_path / "empty.onnx"
    onnx.save(without_input(which), str(path))
    code = f"""
import numpy as np, onnxruntime as ort, axonnx
o = ort.SessionOptions(); o.register_custom_ops_library(axonnx.get_library_path())
try:
    s = ort.InferenceSession({str(path)!r}, o)
except Exception as exc:
    print(exc)
    raise SystemExit(3)
"""
    result = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 3, (result.returncode, result.stderr)  # an error, not -11
    assert "is required but the node leaves it out" in result.stdout, result.stdout


# ---- signals -------------------------------------------------------------------------------

@pytest.mark.parametrize("delay", [0.3, 1.0])
def test_signals_sigint_during_startup(delay, tmp_path):
    # A command that runs for seconds after its start-up: a signal that lands as a short
    # command ends finds Python's own handlers already gone (exit -2), which is no start-up.
    proc = subprocess.Popen([sys.executable, "-P", "-m", "axonnx", "sensitivity", "zoo:resnet8",
                             "--sample", "--workers", "1", "--out", tmp_path],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the command finished before the signal")
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err


def test_signals_sigterm_during_sensitivity_leaves_no_temporary_files(tmp_path):
    """Workers read their workload from a temporary folder: SIGTERM must not leave it."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-P", "-m", "axonnx", "sensitivity", "zoo:resnet8", "--sample",
         "--limit", "200", "--workers", "2", "--out", tmp_path / "out"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TMPDIR": str(tmp)})
    deadline = time.monotonic() + 120
    while not list(tmp.glob("axonnx-*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    if proc.poll() is not None:
        pytest.skip("the command finished before its workers started")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "Traceback" not in err, err
    assert not list(tmp.glob("axonnx-*"))


# ---- the catch-all handler -----------------------------------------------------------------

def test_catch_all_more_than_256_multipliers(tmp_path, capsys, monkeypatch):
    names = [f"ROUP(0;r={a}/{b}/{c}/{d})" for a in range(9) for b in range(9) for c in range(2)
             for d in range(2)]  # 324 distinct rounding vectors
    code, err = run_cli(capsys, monkeypatch, "transform", "zoo:resnet8", "-o",
                        tmp_path / "out.onnx", "--flam", ",".join(names))
    assert_one_line_error(code, err, "at most 256")


def test_catch_all_all_zero_energy_table(tmp_path, capsys, monkeypatch):
    table = tmp_path / "zero.csv"
    table.write_text("name,energy,unit\nROUP(0,0),0,pJ\nROUP(1,4),0,pJ\n")
    code, err = run_cli(capsys, monkeypatch, "energy", "zoo:resnet8", "--table", table)
    assert_one_line_error(code, err, "energy 0")


def test_catch_all_negative_seed(tmp_path, capsys, monkeypatch):
    code, err = run_cli(capsys, monkeypatch, "explore", "zoo:resnet8", "--sample", "--approach",
                        "llam", "--multipliers", "ROUP_L", "--seed", "-1", "--out",
                        tmp_path / "run")
    assert_one_line_error(code, err, "--seed")


@pytest.mark.parametrize("raised", [ZeroDivisionError, EOFError])
def test_catch_all_is_a_last_resort_that_asks_for_a_report(raised, capsys, monkeypatch):
    def broken(**_):
        if raised is EOFError:  # click reports an EOFError as an Abort (Ctrl-D at a prompt)
            raise typer.Abort() from EOFError("eof")
        raise raised("boom")

    monkeypatch.setattr(_app, "app", broken)
    monkeypatch.delenv("AXONNX_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        _app.main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 1
    assert f"{_app.INTERNAL_ERROR}: {raised.__name__}" in err and "aborted" not in err
