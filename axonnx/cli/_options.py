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
    "--data", help="Folder with the CIFAR-10 batches (or its cifar-10-batches-py/). "
    "Default: $AXONNX_DATA, then the user cache.")]
SampleOption = Annotated[bool, typer.Option(
    "--sample", help="Use the packaged offline sample (1,000 test images) instead of the "
    "10,000-image test set.")]
RecoveryOption = Annotated[str, typer.Option(
    "--recovery", help="Accuracy recovery without retraining: none, tune (weight tuning), "
    "bias (bias correction) or tune+bias.")]
CalibOption = Annotated[int, typer.Option(
    "--calib", help="Calibration images (or samples of --calib-data) for the recovery "
    "statistics (CIFAR-10 training images when the training batches are there).")]
CalibDataOption = Annotated[Optional[Path], typer.Option(
    "--calib-data", help="Calibration data of your own for --recovery, fed to the model's "
    "input as is: a folder of images (.png/.jpg/.jpeg/.bmp, the input's height and width), "
    ".npy or .npz files, or one .npy/.npz file (at most --calib samples are used).")]
MatMulOption = Annotated[bool, typer.Option(
    "--matmul", help="Also the quantized matrix products (MatMul/Gemm: fully connected and "
    "attention layers), as 1x1 ROUPConv; without it they stay exact.")]
InputShapeOption = Annotated[Optional[str], typer.Option(
    "--input-shape", help="The input shape of a model with dynamic sizes, e.g. 1,3,224,224 "
    "(multiplications are counted at this size).")]
EnergyTableOption = Annotated[Optional[Path], typer.Option(
    "--energy-table", "--table", help="Your own energy table (JSON/CSV: name, energy, unit, "
    "source, optional formats); overrides and extends the built-in one.")]
