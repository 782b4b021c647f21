"""The ``axonnx`` entry point's exit status: 0 success, 1 error, 2 usage error, 130 Ctrl-C."""

from __future__ import annotations

import subprocess
import sys

import pytest

from axonnx.cli import _app


def axonnx(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-P", "-m", "axonnx", *args], capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("args, status, fragment", [
    (("eval", "/nonexistent/model.onnx"), 1, "does not exist"),
    (("inspect", "/nonexistent/model.onnx"), 1, "error:"),
    (("transform", "zoo:resnet8", "--bogus"), 2, "No such option"),
    (("inspect", "zoo:resnet8"), 0, ""),
])
def test_exit_status(args, status, fragment):
    result = axonnx(*args)
    assert result.returncode == status, result.stderr
    assert fragment in result.stderr
    if status:
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize("raised, status", [(KeyboardInterrupt, 130), (RuntimeError, 1)])
def test_interrupt_and_unexpected_errors(monkeypatch, capsys, raised, status):
    def app(**_):
        raise raised("boom")

    monkeypatch.setattr(_app, "app", app)
    monkeypatch.delenv("AXONNX_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        _app.main()
    assert exit_info.value.code == status
    assert "Traceback" not in capsys.readouterr().err
