"""The recovery modes, by name: none, tune (weight tuning), bias (bias correction), both."""

from __future__ import annotations

from axonnx.errors import AxonnxError

RECOVERY_MODES = ("none", "tune", "bias", "tune+bias")


def canonical_recovery(mode: str) -> str:
    """The recovery mode's canonical name (``both`` and ``tune,bias`` mean ``tune+bias``)."""
    name = mode.strip().lower().replace(",", "+")
    if name in ("both", "bias+tune"):
        name = "tune+bias"
    if name not in RECOVERY_MODES:
        raise AxonnxError(f"unknown recovery {mode!r}; use one of {', '.join(RECOVERY_MODES)}")
    return name


def recovery_flags(mode: str) -> tuple[bool, bool]:
    """(tune_weights, correct_bias) of a recovery mode name."""
    mode = canonical_recovery(mode)
    return "tune" in mode, "bias" in mode
