"""The one-way layer order of pyproject.toml's [tool.importlinter] contract holds (issue 14):
import-linter analyses the installed package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lint(config: Path, cwd: Path) -> subprocess.CompletedProcess:
    # From another folder, so that `axonnx` is the installed package (with axonnx.passes).
    script = Path(sys.executable).with_name("lint-imports")
    return subprocess.run([str(script), str(config)], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_layers_contract_is_kept(tmp_path):
    result = lint(ROOT / "pyproject.toml", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_a_reversed_order_is_reported(tmp_path):
    """The check can fail: the same contract upside down is broken."""
    text = (ROOT / "pyproject.toml").read_text()
    head, layers = text.split("layers = [", 1)
    body, tail = layers.split("]", 1)
    names = [line for line in body.splitlines() if line.strip()]
    config = tmp_path / "reversed.toml"
    config.write_text(head + "layers = [\n" + "\n".join(reversed(names)) + "\n]" + tail)
    result = lint(config, tmp_path)
    assert result.returncode != 0 and "BROKEN" in result.stdout
