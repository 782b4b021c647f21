"""Options that several commands share, defined once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

ModelArgument = Annotated[str, typer.Argument(help="An .onnx file or a zoo name (zoo:resnet8).")]
PlanOption = Annotated[Optional[str], typer.Option("--plan", help="A plan file (YAML or JSON).")]
LlamOption = Annotated[Optional[str], typer.Option("--llam", help="Layer level: one multiplier, e.g. 'ROUP(1,4)'.")]
FlamOption = Annotated[Optional[str], typer.Option("--flam", help="Filter level: one multiplier per class, most accurate first, e.g. 'ROUP(0,0),ROUP(1,4),ROUP(2,6)'.")]
KlamChanOption = Annotated[Optional[str], typer.Option("--klam-chan", help="Kernel level (filter x input channel): one multiplier per class.")]
KlamRowOption = Annotated[Optional[str], typer.Option("--klam-row", help="Kernel rows: one multiplier per class.")]
KlamColOption = Annotated[Optional[str], typer.Option("--klam-col", help="Kernel columns: one multiplier per class.")]
KlmsOption = Annotated[Optional[float], typer.Option("--klms", help="Multiplication skip: skip weights outside mu +- k sigma (k = 1 or 2).")]
KlmsKeepOption = Annotated[str, typer.Option("--klms-keep", help="Which side KLMS performs: inside or outside.")]
KlmsMultOption = Annotated[Optional[str], typer.Option("--klms-multiplier", help="Multiplier for the multiplications KLMS keeps (default exact).")]
PolicyOption = Annotated[str, typer.Option("--policy", help="How groups are ranked into classes: magnitude or index.")]
LayersOption = Annotated[Optional[str], typer.Option("--layers", help="Comma-separated globs of the layers to approximate (default all).")]
SkipFirstOption = Annotated[bool, typer.Option("--skip-first", help="Keep the first conv layer exact.")]
EncodedOption = Annotated[str, typer.Option("--encoded-operand", help="Radix-4 encoded operand: weight or activation.")]
DataOption = Annotated[Optional[Path], typer.Option(
    "--data", help="Your data: a folder of images of any size (one sub-folder per class "
    "gives labels), .npy/.npz files, or a folder with the CIFAR-10 batches. Default: the "
    "CIFAR-10 test set from $AXONNX_DATA, then the user cache (docs/data.md).")]
SampleOption = Annotated[bool, typer.Option(
    "--sample", help="Use the packaged offline CIFAR-10 sample (1,000 test images) instead "
    "of the 10,000-image test set.")]
LabelsOption = Annotated[Optional[Path], typer.Option(
    "--labels", help="Labels of your data: a text/CSV file of 'file,label' lines (or one "
    "label per line, in file-name order), or an .npy of ints.")]
LimitOption = Annotated[Optional[int], typer.Option(
    "--limit", min=1, help="Use only the first N samples.")]
PreprocessOption = Annotated[Optional[str], typer.Option(
    "--preprocess", help="How images become the model's input, over the model's metadata: "
    "key=value pairs, e.g. 'resize=256 crop=224 range=0-1 mean=0.485,0.456,0.406 "
    "std=0.229,0.224,0.225 channels=RGB layout=NCHW' (docs/data.md).")]
MetricOption = Annotated[Optional[str], typer.Option(
    "--metric", help="What is scored: top1, top5 (labels); agreement, snr, cosine, iou, "
    "iou@T (against the exact model, no labels needed); NAME:OUTPUT for another output; or "
    "module:function / file.py:function of your own. Default: top1 with labels, else "
    "agreement (class scores) or snr.")]
RecoveryOption = Annotated[str, typer.Option(
    "--recovery", help="Accuracy recovery without retraining: none, tune (weight tuning), "
    "bias (bias correction) or tune+bias.")]
CalibOption = Annotated[int, typer.Option(
    "--calib", help="Calibration images (or samples of --calib-data) for the recovery "
    "statistics (CIFAR-10 training images when the training batches are there).")]
CalibDataOption = Annotated[Optional[Path], typer.Option(
    "--calib-data", help="Calibration data of your own for --recovery, read as --data is: "
    "a folder of images of any size (preprocessed as the model or --preprocess says), .npy "
    "or .npz files (fed as they are); at most --calib samples are used.")]
MatMulOption = Annotated[bool, typer.Option(
    "--matmul", help="Also the quantized matrix products (MatMul/Gemm: fully connected and "
    "attention layers), as ROUPMatMul; without it they stay exact.")]
InputShapeOption = Annotated[Optional[str], typer.Option(
    "--input-shape", help="The input shape of a model with dynamic sizes, e.g. 1,3,224,224 "
    "(multiplications are counted at this size).")]
EnergyTableOption = Annotated[Optional[Path], typer.Option(
    "--energy-table", "--table", help="Your own energy table (JSON/CSV: name, energy, unit, "
    "source, optional formats); overrides and extends the built-in one.")]


def data_options(data: Optional[Path], *, labels: Optional[Path] = None, sample: bool = False,
                 limit: Optional[int] = None, preprocess: Optional[str] = None,
                 download: bool = False):
    """The data options of a command, as the library takes them."""
    from axonnx.data.load import DataOptions

    return DataOptions(data, labels, sample, limit, preprocess, download)
