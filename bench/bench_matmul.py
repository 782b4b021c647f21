"""ROUPMatMul speed on a BERT-base-shaped encoder layer (issue 22: goals exact >= 0.9x and
ROUP(1,4) >= 0.45x of plain onnxruntime on the same quantized model, 2 threads).

    .venv/bin/python -P bench/bench_matmul.py [--seq 128] [--repeat 20] [--batch 1]
        [--threads 2] [--cpu-time]

The layer is axonnx.architectures.transformer_encoder(d=768, heads=12, layers=1,
hidden=3072): Q/K/V/output projections 768x768, FFN 768x3072 and 3072x768, and the two
attention products [12, seq, 64] x [12, 64, seq] and [12, seq, seq] x [12, seq, 64]. It is
quantized with axonnx.zoo.quantize_float: quantize_static's defaults (QDQ) and QOperator
uint8. Each form runs plain, exact (--matmul, ROUP(0,0)) and ROUP(1,4) in sessions with 2
threads and session.intra_op.allow_spinning=0, interleaved (one run of each per round),
after warm-up; it prints medians and ratio = plain time / transformed time."""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx


def main() -> None:
    import onnxruntime as ort

    from axonnx import InferenceSession
    from axonnx.architectures import transformer_encoder
    from axonnx.plan import plan_from_options
    from axonnx.transform import transform_model
    from axonnx.zoo import quantize_float

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cpu-time", action="store_true",
                        help="time runs by this process's CPU time (with --threads 1: steady on "
                             "a loaded machine, where wall-clock time is not)")
    args = parser.parse_args()

    clock = time.process_time if args.cpu_time else time.perf_counter
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, args.seq, 768)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        onnx.save(transformer_encoder(d=768, heads=12, layers=1, hidden=3072), root / "f.onnx")
        calibration = rng.standard_normal((4, args.seq, 768)).astype(np.float32)
        forms = {"QDQ defaults": quantize_float(root / "f.onnx", root / "qdq.onnx", calibration),
                 "QOperator uint8": quantize_float(root / "f.onnx", root / "qop.onnx", calibration,
                                                   fmt="qoperator", activations="uint8")}
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        for form, path in forms.items():
            plain = onnx.load(path)
            models = {"plain": plain,
                      "exact": transform_model(plain, plan_from_options(llam="ROUP(0,0)", matmul=True)),
                      # the kernel's own exact speed: every product a ROUPMatMul
                      "exact as ROUPMatMul": transform_model(
                          plain, plan_from_options(llam="ROUP(0,0)", matmul=True), exact_layers="roup"),
                      "ROUP(1,4)": transform_model(plain, plan_from_options(llam="ROUP(1,4)", matmul=True))}
            sessions = {name: InferenceSession(m.SerializeToString(), sess_options=options)
                        for name, m in models.items()}
            times = {name: [] for name in sessions}
            for round_ in range(args.repeat + 3):
                for name, session in sessions.items():
                    start = clock()
                    session.run(None, {"input": x})
                    if round_ >= 3:  # warm-up rounds
                        times[name].append(clock() - start)
            medians = {name: statistics.median(t) for name, t in times.items()}
            print(f"{form}: plain {medians['plain'] * 1e3:.1f} ms; " + "; ".join(
                f"{name} {medians[name] * 1e3:.1f} ms ({medians['plain'] / medians[name]:.2f}x)"
                for name in ("exact", "exact as ROUPMatMul", "ROUP(1,4)")))


if __name__ == "__main__":
    main()
