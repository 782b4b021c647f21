"""Measure the zoo's ResNet-8 models and write ``zoo/resnet8/card.json``.

    AXONNX_DATA=../shared/data .venv/bin/python -P zoo/resnet8/make_card.py [--run zoo/resnet8/runs/e50]

For each of resnet8_fp32.onnx, resnet8_int8.onnx and resnet8_int8_qdq.onnx: top-1 and
per-class accuracy on the full official CIFAR-10 test set (10,000 images) and on the
packaged 1,000-image sample, agreement of its predictions with the float model, single-thread
throughput, size and sha256. Also copies the run's epoch log to ``zoo/resnet8/train_log.csv``
and records the run's summary and the quantization settings (from the int8 model's
metadata). Without the run folder (it is not committed), the card's training section is kept
and only the models are measured again, e.g. after an onnxruntime upgrade changed how it runs
the QDQ model (tests/test_eval.py compares the sample figures with the installed onnxruntime).
Prints a Markdown table for MODEL_CARD.md.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import shutil
from pathlib import Path

import onnx

import onnxruntime

# The installed axonnx (python -P): it holds the compiled custom-op library.
from axonnx.data import load_sample, load_split
from axonnx.evaluate import evaluate
from axonnx.zoo import MODELS

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default=str(HERE / "runs" / "e50"), help="the training run folder")
    ap.add_argument("--data", default=None)
    args = ap.parse_args()

    run = Path(args.run)
    training = None
    if not (run / "summary.json").is_file():
        training = json.loads((HERE / "card.json").read_text())["training"]
        print(f"no training run at {run}: keeping the card's training section", flush=True)
    else:
        summary = json.loads((run / "summary.json").read_text())
        shutil.copyfile(run / "train_log.csv", HERE / "train_log.csv")
        with open(HERE / "train_log.csv") as fh:
            epochs = list(csv.DictReader(fh))

    test = load_split("test", args.data)
    sample = load_sample()
    entries = {}
    fp32_predictions = None
    for m in sorted(MODELS, key=lambda m: m.format != "float32"):  # float first
        path = HERE / m.file
        full = evaluate(path, test, threads=1)
        small = evaluate(path, sample, threads=1, progress=False)
        if fp32_predictions is None:
            fp32_predictions = full.predictions
        entries[m.name] = {
            "file": m.file,
            "format": m.format,
            "top1": full.top1,
            "n_test": full.n,
            "correct": full.correct,
            "per_class": full.per_class,
            "top1_sample": small.top1,
            "agreement_with_fp32": float((full.predictions == fp32_predictions).mean()),
            "images_per_s_1thread": round(full.images_per_s),
            "size_bytes": path.stat().st_size,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        }
        print(f"{m.name}: top-1 {100 * full.top1:.2f}% (sample {100 * small.top1:.1f}%)", flush=True)

    meta = {p.key: p.value for p in onnx.load(str(HERE / "resnet8_int8.onnx")).metadata_props}
    if training is None:
        training = {
            "recipe": "zoo/resnet8/train.py",
            "command": (f"python zoo/resnet8/train.py --data ../shared/data --epochs "
                        f"{summary['epochs']} --out zoo/resnet8/runs/e50"),
            "epochs": summary["epochs"],
            "seed": summary["seed"],
            "train_seconds": summary["train_seconds"],
            "mean_epoch_seconds": round(sum(float(e["seconds"]) for e in epochs) / len(epochs), 1),
            "final_test_acc_torch": summary["final_test_acc"],
            "torch": summary["torch"],
            "args": summary["args"],
        }
    card = {
        "architecture": "ResNet-8 (MLPerf Tiny image classification reference)",
        "dataset": "cifar10",
        "preprocess": json.loads(meta["axonnx.preprocess"]),
        "training": training,
        "quantization": json.loads(meta["axonnx.quantization"]),
        # onnxruntime fuses QDQ graphs into kernels that change between versions.
        "measured_with": {"onnxruntime": onnxruntime.__version__},
        "models": entries,
    }
    card["quantization"].pop("format", None)
    (HERE / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    print("\n| model | file | top-1 (10,000) | sample (1,000) | agrees with fp32 | img/s (1 thread) | sha256 |")
    print("|---|---|---|---|---|---|---|")
    for name, e in entries.items():
        print(f"| `{name}` | `{e['file']}` | {100 * e['top1']:.2f}% | {100 * e['top1_sample']:.1f}% | "
              f"{100 * e['agreement_with_fp32']:.2f}% | {e['images_per_s_1thread']:,} | `{e['sha256']}` |")


if __name__ == "__main__":
    main()
