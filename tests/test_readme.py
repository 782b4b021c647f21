"""Every shell and Python block of the README runs, in a temporary folder, against the zoo
models and small models built by axonnx.architectures.

Each block is named in BLOCKS by a fragment of its text. What a block needs from the user
(model_fp32.onnx, my_calibration_reader, a folder of images, ...) is made by its `setup`,
and every change to its text is an explicit substitution that must still find its target,
so a renamed option or file fails here. Long runs (exploration, the study) are shortened by
substitutions of their options; blocks that must not run say why in NOT_RUN. A README block
that no entry names fails `test_every_block_is_named`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import pytest

from conftest import SHARED_DATA

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's axonnx and python


def readme_blocks() -> list[tuple[str, str]]:
    """(language, text) of the fenced blocks that run: bash, python, yaml plans, and text
    blocks that start with a `$ ` command line (an output shown after its command)."""
    text = (REPO / "README.md").read_text()
    out = []
    for m in re.finditer(r"```(\w*)\n(.*?)```", text, re.S):
        language, body = m.group(1), m.group(2)
        if language in ("bash", "python", "yaml") or (language == "text" and body.startswith("$ ")):
            out.append((language, body))
    return out


# ---- what the blocks need -----------------------------------------------------------------
def zoo_file(name: str) -> Path:
    from axonnx.zoo import resolve_model

    return resolve_model(name)


def sample_images(n: int) -> np.ndarray:
    from axonnx.data import load_sample

    return load_sample().images[:n].astype(np.float32)  # NCHW, 0-255: the zoo's input


def quantized(work: Path) -> None:
    shutil.copy(zoo_file("zoo:resnet8-qdq"), work / "model_int8.onnx")


def user_model(work: Path) -> None:
    """Block 1's inputs: the user's float model, and the `.npy` batch its reader feeds."""
    shutil.copy(zoo_file("zoo:resnet8-fp32"), work / "model_fp32.onnx")
    np.save(work / "calibration.npy", sample_images(20))


def transformed(work: Path) -> None:
    from axonnx.plan import plan_from_options
    from axonnx.transform import transform_model

    onnx.save(transform_model(str(zoo_file("zoo:resnet8-qdq")),
                              plan_from_options(flam="ROUP(0,0),ROUP(1,4),ROUP(2,6)")),
              work / "model_flam.onnx")


def calibration(work: Path) -> None:
    quantized(work)
    (work / "calib").mkdir()
    for k in range(2):
        np.save(work / "calib" / f"{k}.npy", sample_images(16)[8 * k:8 * k + 8])
    from axonnx.plan import plan_from_options

    plan_from_options(llam="ROUP(1,4)").save(work / "plan.yaml")


def any_models(work: Path) -> None:
    """A detector, a recognizer and a classifier as in tests/test_any_model.py, quantized
    with quantize_static's defaults; a folder of images for each (the classifier's in one
    sub-folder per class, for labels)."""
    from test_any_model import KINDS, images

    from axonnx.data.load import read_data
    from axonnx.data.preprocess import PREPROCESS_KEY
    from axonnx.zoo import quantize_float

    for kind, name, folder in (("detector", "det", "images"), ("recognizer", "rec", "lines"),
                               ("classifier", "resnet50", "val")):
        build, prep, sizes, _ = KINDS[kind]
        model = build()
        if kind != "classifier":  # the README gives the classifier's --preprocess
            onnx.helper.set_model_props(model, {PREPROCESS_KEY: prep})
        onnx.save(model, work / f"{name}_fp32.onnx")
        if kind == "classifier":
            for label in range(10):  # one sub-folder per class of its 10 outputs
                images(work / folder / f"class{label}", sizes, 1, seed=label)
            onnx.helper.set_model_props(model, {PREPROCESS_KEY: prep})  # for calibration only
        else:
            images(work / folder, sizes, 6, seed=len(kind))
        calib = read_data(work / folder, model).feeds()["input"]
        quantize_float(work / f"{name}_fp32.onnx", work / f"{name}_int8.onnx",
                       calib[:1] if kind == "recognizer" else calib)
        if kind == "classifier":  # no metadata: --preprocess says it all
            fixed = onnx.load(work / f"{name}_int8.onnx")
            del fixed.metadata_props[:]
            onnx.save(fixed, work / f"{name}_int8.onnx")


def needs_cifar(work: Path) -> None:
    if not (SHARED_DATA / "cifar-10-batches-py" / "data_batch_5").is_file():
        pytest.skip(f"needs the official CIFAR-10 batches under {SHARED_DATA} (AXONNX_DATA)")


def needs_characterization(work: Path) -> None:
    if shutil.which("yosys") is None:
        pytest.skip("needs Yosys on the PATH (.ci/run installs it)")
    if not (SHARED_DATA / "nangate45" / "nangate45_typ.lib.gz").is_file():
        pytest.skip(f"needs the Nangate 45 nm Liberty file under {SHARED_DATA}/nangate45")
    (work / "axonnx" / "multipliers").mkdir(parents=True)
    os.symlink(SHARED_DATA / "nangate45" / "nangate45_typ.lib.gz", work / "nangate45_typ.lib.gz")


CIFAR = str(SHARED_DATA / "cifar-10-batches-py")
READER = '''from onnxruntime.quantization import CalibrationDataReader
import numpy as np


class Reader(CalibrationDataReader):  # the README's my_calibration_reader
    def __init__(self):
        self.batches = iter([{"input": np.load("calibration.npy")}])

    def get_next(self):
        return next(self.batches, None)


my_calibration_reader = Reader()
'''
APP = '''import numpy as np
import onnxruntime


def run_my_existing_app(path):  # an application that builds its own plain session
    session = onnxruntime.InferenceSession(path)
    out = session.run(None, {session.get_inputs()[0].name: np.zeros((2, 3, 32, 32), np.float32)})
    assert out[0].shape == (2, 10)


'''


@dataclass
class Block:
    fragment: str  # text that names the block (unique in the README)
    setup: Callable[[Path], None] | None = None
    subs: list[tuple[str, str]] = field(default_factory=list)  # (README text, what runs)
    prelude: str = ""  # Python run before a python block
    produces: tuple[str, ...] = ()  # files the block must leave behind
    check: Callable[[Path], None] | None = None  # what else the block must have done


BLOCKS = [
    Block("quantize_static(\"model_fp32.onnx\"", user_model,
          subs=[("from onnxruntime.quantization import quantize_static",
                 READER + "from onnxruntime.quantization import quantize_static")],
          produces=("model_int8.onnx", "model_flam.onnx", "plan.yaml")),
    Block("session = axonnx.InferenceSession(\"model_flam.onnx\")", transformed, prelude=APP),
    Block("match: \"/stem/*\"", None),  # a plan: `axonnx plan check` on both zoo models
    Block("axonnx eval zoo:resnet8 --sample", needs_cifar,
          subs=[("AXONNX_DATA=../shared/data axonnx eval zoo:resnet8 ",
                 f"AXONNX_DATA={SHARED_DATA} axonnx eval zoo:resnet8 --limit 500 "),
                # --download finds the batches under AXONNX_DATA and fetches nothing
                ("axonnx eval zoo:resnet8 --download",
                 f"AXONNX_DATA={SHARED_DATA} axonnx eval zoo:resnet8 --download --limit 100")]),
    Block("$ axonnx transform zoo:resnet8-qdq -o l.onnx --llam ROUP_L", None),
    Block("axonnx hw characterize --liberty nangate45_typ.lib.gz", needs_characterization,
          # two configurations and few pairs, not the table's 24 x 3 formats x 65,536
          subs=[("-o axonnx/multipliers/energy_table.json",
                 "-o axonnx/multipliers/energy_table.json --multipliers 'ROUP(0,0),ROUP(1,4)' "
                 "--formats s8xs8 --samples 256")],
          produces=("axonnx/multipliers/energy_table.json",)),
    Block("axonnx transform det_int8.onnx -o det_m.onnx --llam ROUP_M", any_models,
          subs=[("--metric iou --multipliers ROUP_M,ROUP_H --out sens/",
                 "--metric iou --multipliers ROUP_M,ROUP_H --out sens/ --workers 1"),
                ("--out runs/det", "--out runs/det --subset 3 --pop 4 --gens 1 --reeval 2 "
                 "--workers 1"),
                ("'resize=256 crop=224 ", "'resize=36 crop=32 ")],
          produces=("det_m.onnx", "rec_fixed.onnx", "runs/det/pareto.csv")),
    Block("axonnx sensitivity zoo:resnet8 --multipliers ROUP_L,ROUP_M,ROUP_H", needs_cifar,
          subs=[("--mode cumulative --data DIR --out sens/",
                 f"--mode cumulative --data {CIFAR} --limit 100 --workers 1 --out sens/"),
                ("--pop 20 --gens 30 --data DIR --out runs/klam-col "
                 "[--dask tcp://host:8786 | --dask local:4]",
                 f"--pop 4 --gens 1 --subset 50 --reeval 2 --calib 16 --workers 1 "
                 f"--data {CIFAR} --limit 200 --out runs/klam-col"),
                ("axonnx explore --compare runs/llam runs/klam-col",
                 "axonnx explore zoo:resnet8 --approach llam --multipliers 'ROUP(0,0),ROUP_H' "
                 f"--pop 4 --gens 1 --subset 50 --reeval 2 --workers 1 --data {CIFAR} "
                 "--limit 200 --out runs/llam\naxonnx explore --compare runs/llam runs/klam-col"),
                # The study is 85 min (--quick still minutes): its options are parsed here,
                # and tests/test_analysis.py runs reproduce() itself on a tiny model.
                ("axonnx reproduce --data DIR --out study/ [--quick]",
                 f"axonnx reproduce --data {CIFAR} --out study/ --quick --help >/dev/null")],
          produces=("sens/sensitivity_cumulative.png", "compare")),
    Block("axonnx transform model_int8.onnx -o model_fixed.onnx --llam 'ROUP(1,4)'", calibration,
          subs=[("--calib 256", "--calib 16")], produces=("model_fixed.onnx",)),
    Block("stats = measure_activations(\"model_int8.onnx\"", calibration,
          produces=("model_fixed.onnx",), check=lambda work: recovered_from_my_data(work)),
]

def recovered_from_my_data(work: Path) -> None:
    meta = {p.key: p.value for p in onnx.load(work / "model_fixed.onnx").metadata_props}
    assert '"calibration_images": 16' in meta["axonnx.recovery"]  # both calib/*.npy files
    assert '"calibration_source": "my data"' in meta["axonnx.recovery"]


NOT_RUN = {
    "make demo   # set up": "the set-up itself: tests/test_setup.py checks the Makefile, "
                            ".ci/wheel-check runs the demo from a fresh install",
}


def block_for(body: str) -> Block | str:
    named = [b for b in BLOCKS if b.fragment in body]
    named += [reason for fragment, reason in NOT_RUN.items() if fragment in body]
    assert len(named) == 1, f"README block names {len(named)} entries of tests/test_readme.py: " \
                            f"{body[:120]!r}"
    return named[0]


def test_every_block_is_named():
    blocks = readme_blocks()
    assert len(blocks) >= 10
    named = [block_for(body) for _, body in blocks]
    assert len({id(b) for b in named}) == len(named)  # one entry per block
    assert all(any(b.fragment in body for _, body in blocks) for b in BLOCKS)


def run(command: list[str], work: Path, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "COLUMNS": "200"}
    return subprocess.run(command, cwd=work, env=env, capture_output=True, text=True,
                          timeout=300, **kw)


def applied(block: Block, body: str) -> str:
    for old, new in block.subs:
        assert old in body, f"substitution target {old!r} is no longer in the README block"
        body = body.replace(old, new)
    return body


@pytest.mark.parametrize("index", range(len(readme_blocks())))
def test_readme_block_runs(index, tmp_path):
    language, body = readme_blocks()[index]
    block = block_for(body)
    if isinstance(block, str):
        pytest.skip(f"not run: {block}")
    work = tmp_path
    if block.setup is not None:
        block.setup(work)
    text = applied(block, body)
    if language == "yaml":
        (work / "plan.yaml").write_text(text)
        for model in ("zoo:resnet8", "zoo:resnet8-qdq"):
            result = run([str(BIN / "axonnx"), "plan", "check", "plan.yaml", model], work)
            assert result.returncode == 0, result.stderr
    elif language == "python":
        result = run([sys.executable, "-P", "-c", block.prelude + text], work)
        assert result.returncode == 0, result.stderr[-3000:]
    elif language == "text":  # `$ command`, then (part of) what it prints
        command, shown = text[2:].split("\n", 1)
        result = run(["bash", "-c", command], work)
        assert result.returncode == 0, result.stderr
        printed = " ".join((result.stdout + result.stderr).split())
        assert " ".join(shown.split()) in printed
    else:
        result = run(["bash", "-euo", "pipefail", "-c", text], work)
        assert result.returncode == 0, f"{text}\n{result.stderr[-3000:]}"
    for name in block.produces:
        assert (work / name).exists(), f"the block did not write {name}"
    if block.check is not None:
        block.check(work)
