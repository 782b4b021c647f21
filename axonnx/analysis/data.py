"""The data a study uses, named for what it is: the split it reports on, explore's
disjoint search split, and the calibration samples of the recovery statistics
(:mod:`axonnx.data.load` reads them all)."""

from __future__ import annotations

from pathlib import Path

from axonnx.data.load import DataOptions, calibration_data, load_data, search_and_report
from axonnx.errors import AxonnxError

__all__ = ["DataOptions", "calibration_data", "load_data", "recovery_statistics",
           "search_and_report"]


def recovery_statistics(model, recovery: str, options: DataOptions, calib: int, *,
                        calib_data: Path | None = None, fallback=None, matmul: bool = False):
    """The activation statistics a recovery mode needs (None for ``none``), measured on
    :func:`~axonnx.data.load.calibration_data`, fully connected layers included with
    ``matmul``."""
    from axonnx.recovery import measure_activations, recovery_flags

    if recovery_flags(recovery) == (False, False):
        if calib_data is not None:
            raise AxonnxError("--calib-data feeds the recovery statistics: add --recovery tune, "
                              "bias or tune+bias, or drop --calib-data")
        return None
    data = calibration_data(options, model, calib, calib_data=calib_data, fallback=fallback)
    return measure_activations(model, data=data, matmul=matmul)
