"""Error messages suggest only options that exist on the command that printed them.

Each case makes a command fail the way a user would; every ``--option`` named in its one
error line (outside a quoted `axonnx ...` command, which names its own) must be one of that
command's parameters."""

from __future__ import annotations

import re

import numpy as np
import pytest
from typer.testing import CliRunner

from axonnx.cli import app

runner = CliRunner()
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def options_of(command: str) -> set[str]:
    import typer.main

    group = typer.main.get_command(app)
    cmd = group.get_command(None, command)
    if cmd is None:  # a sub-group, e.g. "hw characterize"
        first, second = command.split()
        cmd = group.get_command(None, first).get_command(None, second)
    return {opt for p in cmd.params for opt in getattr(p, "opts", [])}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("error_options")
    (root / "images").mkdir()
    for k in range(2):
        Image.fromarray(np.full((20, 20, 3), 40 * k, np.uint8)).save(root / "images" / f"{k}.png")
    np.save(root / "arrays.npy", np.zeros((2, 3, 32, 32), np.float32))
    (root / "empty").mkdir()
    return root


def cases(root):
    imgs, arr, empty = str(root / "images"), str(root / "arrays.npy"), str(root / "empty")
    out = ["--out", str(root / "out")]
    model = "zoo:resnet8"
    return [
        ("eval", [model, "--sample", "--data", imgs]),
        ("eval", [model, "--data", arr, "--metric", "top1"]),
        ("eval", [model, "--data", arr, "--metric", "snr"]),
        ("eval", [model, "--sample", "--metric", "nonsense"]),
        ("eval", [model, "--sample", "--preprocess", "colour=red"]),
        ("eval", [model, "--sample", "--labels", arr]),
        ("eval", [model, "--data", empty]),
        ("eval", [model]),  # no CIFAR-10 anywhere
        ("sensitivity", [model, *out]),
        ("sensitivity", [model, "--sample", "--calib-data", arr, *out]),
        ("sensitivity", [model, "--data", arr, "--metric", "top1", *out]),
        ("sensitivity", [model, "--data", str(root / "missing"), *out]),
        ("sensitivity", [model, "--sample", "--mode", "sideways", *out]),
        ("explore", [model, "--approach", "llam", "--multipliers", "ROUP_L", *out]),
        ("explore", [model, "--approach", "llam", "--multipliers", "ROUP_L", "--search-data", arr,
                     *out]),
        ("explore", [model, "--approach", "llam", "--multipliers", "ROUP_L", "--search-data", arr,
                     "--eval-data", arr, *out]),
        ("explore", [model, "--approach", "llam", "--multipliers", "ROUP_L", "--sample",
                     "--calib-data", arr, *out]),
        ("explore", [model, "--approach", "llam", "--multipliers", "ROUP_L", "--sample",
                     "--floor", "250", *out]),
        ("explore", [model, "--approach", "flam", *out]),
        ("reproduce", [*out]),  # no CIFAR-10 anywhere
        ("transform", [model, "-o", str(root / "t.onnx"), "--llam", "ROUP_L", "--calib-data", arr]),
        ("transform", [model, "-o", str(root / "t.onnx"), "--llam", "ROUP_L", "--recovery", "bias",
                       "--data", str(root / "missing")]),
        ("transform", [model, "-o", str(root / "t.onnx")]),
    ]


def test_every_suggested_option_exists_on_its_command(files, monkeypatch):
    monkeypatch.setenv("AXONNX_DATA", str(files / "empty"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(files / "empty"))
    checked = 0
    for command, args in cases(files):
        result = runner.invoke(app, [*command.split(), *args])
        lines = [ln for ln in result.stderr.strip().splitlines() if ln.startswith("error:")]
        assert result.exit_code == 1 and len(lines) == 1, (command, args, result.output)
        text = re.sub(r"`axonnx [^`]*`", "", lines[0])  # another command's own options
        named = set(OPTION.findall(text))
        unknown = named - options_of(command)
        assert not unknown, f"{command} {args}: suggests {unknown}: {lines[0]}"
        checked += bool(named)
    assert checked >= 15  # most of these errors do suggest an option


def test_the_checker_catches_an_option_the_command_lacks():
    assert "--download" in options_of("eval") and "--download" not in options_of("sensitivity")
    assert OPTION.findall("give --sample or --data; not pre--fix") == ["--sample", "--data"]
