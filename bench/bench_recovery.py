"""Recovery statistics on a real-sized detector: one pass of the calibration data through an
instrumented model (issue 18: goal <= 20 s for 20 images on a 60-conv 640x640 detector, 2
cores).

    .venv/bin/python -P bench/bench_recovery.py [--size 640] [--images 20] [--blocks 9]

The detector is axonnx.architectures.text_detector (7 + 6 x blocks convs; 61 with 9 blocks),
quantized with quantize_static's defaults (QDQ, int8 activations). Prints the time of
measure_activations next to plain onnxruntime inference of the same images (default
optimization level), of that model and of the fastest plain form of the same network
(QOperator, uint8 activations), medians of --repeat runs, interleaved."""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx


def main() -> None:
    from axonnx.architectures import text_detector
    from axonnx.data.load import from_iterable
    from axonnx.evaluate import Runner
    from axonnx.plan import plan_from_options
    from axonnx.recovery import Recovery, measure_activations
    from axonnx.recovery.guard import guarded_transform
    from axonnx.transform import prepared
    from axonnx.zoo import quantize_float

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--blocks", type=int, default=9)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "detector.onnx"
        onnx.save(text_detector(args.size, width=args.width, blocks=args.blocks), fp32)
        calib = rng.uniform(-2, 2, (2, 3, args.size, args.size)).astype(np.float32)
        model = onnx.load(str(quantize_float(fp32, Path(tmp) / "int8.onnx", calib)))
        fastest = onnx.load(str(quantize_float(fp32, Path(tmp) / "u8.onnx", calib,
                                               fmt="qoperator", activations="uint8")))
    convs = len(prepared(model)[1])
    x = rng.uniform(-2, 2, (args.images, 3, args.size, args.size)).astype(np.float32)
    data = from_iterable([x], model)
    runner, fastest_runner = Runner(model), Runner(fastest)
    infer, infer_fastest, stats, whole = [], [], [], []
    plan = plan_from_options(llam="ROUP_M")
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        runner.outputs(data, batch=4)
        infer.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        fastest_runner.outputs(data, batch=4)
        infer_fastest.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        measured = measure_activations(model, data=data, batch=4)
        stats.append(time.perf_counter() - t0)
        # what `axonnx transform --recovery bias --calib-data` does after loading the data
        t0 = time.perf_counter()
        fixer = Recovery(measure_activations(model, data=data, batch=4), correct_bias=True)
        _, _, verdict = guarded_transform(model, plan, fixer, data)
        whole.append(time.perf_counter() - t0)
    assert len(measured.layers) == convs
    print(f"detector {args.size}x{args.size}, {convs} convs, {args.images} images "
          f"(median of {args.repeat}):")
    print(f"  inference, QDQ int8 (this model)       {statistics.median(infer):7.2f} s")
    print(f"  inference, QOperator uint8 (fastest)   {statistics.median(infer_fastest):7.2f} s")
    print(f"  activation statistics                  {statistics.median(stats):7.2f} s "
          f"({statistics.median(stats) / statistics.median(infer):.2f}x this model's inference, "
          f"{statistics.median(stats) / statistics.median(infer_fastest):.2f}x the fastest form's)")
    print(f"  transform --recovery bias (ROUP_M; statistics, correction, the with/without "
          f"check) {statistics.median(whole):.2f} s; {verdict.line('bias')}")


if __name__ == "__main__":
    main()
