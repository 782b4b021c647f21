"""Set-up and entry points (issue 17): the Makefile installs only when its inputs change,
--version, library-path, bare flags in --help, and a source-tree import that says what to do."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import axonnx

REPO = Path(__file__).resolve().parents[1]


def axonnx_cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-P", "-m", "axonnx", *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd)


def test_version_and_library_path():
    version = axonnx_cli("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"axonnx {axonnx.__version__}"
    path = axonnx_cli("library-path")
    assert path.returncode == 0, path.stderr
    assert path.stdout.strip() == axonnx.get_library_path() and Path(path.stdout.strip()).is_file()


@pytest.mark.parametrize("args", [("zoo", "--help"), ("transform", "--help"),
                                  ("hw", "characterize", "--help"), ("--help",)])
def test_flags_show_no_type_in_help(args):
    result = axonnx_cli(*args)
    assert result.returncode == 0 and "--help" in result.stdout
    assert "<bool>" not in result.stdout


def test_source_tree_import_says_what_to_do():
    if not (REPO / "pyproject.toml").is_file() or (REPO / "axonnx" / "lib").is_dir():
        pytest.skip("needs a source checkout without a compiled library in axonnx/lib")
    # Python started in the repository root imports ./axonnx (no -P): the source tree.
    code = "import axonnx; axonnx.get_library_path()"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": ""}, timeout=120)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "source tree" in last and "python -P" in last and "make setup" in last


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_installs_only_when_its_inputs_change(tmp_path):
    """The Makefile on a stand-in tree whose .venv/bin/python logs each pip install."""
    shutil.copy(REPO / "Makefile", tmp_path / "Makefile")
    for name in ("pyproject.toml", "CMakeLists.txt", "axonnx/__init__.py", "customops/a.cc"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    log = tmp_path / "installs.log"
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    python.chmod(0o755)
    axonnx_bin = python.parent / "axonnx"
    axonnx_bin.write_text("#!/bin/sh\ntrue\n")
    axonnx_bin.chmod(0o755)

    def installs(target: str) -> int:
        subprocess.run(["make", "-s", target], cwd=tmp_path, check=True, capture_output=True)
        return len(log.read_text().splitlines()) if log.exists() else 0

    assert installs("demo") == 1
    assert installs("demo") == 1  # the second make demo skips the install
    assert installs("setup-test") == 2  # the test extras: one more install
    assert installs("setup") == 2 and installs("setup-test") == 2
    time.sleep(1.1)  # a later modification time than the stamps
    (tmp_path / "axonnx" / "__init__.py").write_text("# changed\n")
    assert installs("demo") == 3
