"""Error metrics of a multiplier against the exact product, over its operand domain."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from axonnx.multipliers.base import Multiplier

SAMPLE_PAIRS = 1 << 20  # above N = 8 the 2^(2N) pairs are sampled


@dataclass(frozen=True)
class ErrorMetrics:
    error_rate: float  # fraction of operand pairs with a wrong product
    mean_error: float  # bias, E[M - exact]
    med: float  # mean absolute error distance
    mred: float  # mean relative error distance, over pairs with a non-zero exact product
    nmed: float  # MED / 2^(2N-2), the largest signed product
    wce: int  # worst-case absolute error
    variance: float  # Var[M - exact]
    pairs: int
    exhaustive: bool

    def as_dict(self) -> dict:
        return asdict(self)


def _operands(m: Multiplier, seed: int) -> tuple[np.ndarray, np.ndarray, bool]:
    a_lo, a_hi = m.operand_range(m.a_signed)
    b_lo, b_hi = m.operand_range(m.b_signed)
    if m.bits <= 8:
        a, b = np.meshgrid(np.arange(a_lo, a_hi + 1), np.arange(b_lo, b_hi + 1), indexing="ij")
        return a.ravel(), b.ravel(), True
    rng = np.random.default_rng(seed)
    return (rng.integers(a_lo, a_hi + 1, SAMPLE_PAIRS),
            rng.integers(b_lo, b_hi + 1, SAMPLE_PAIRS), False)


def error_metrics(m: Multiplier, weights: np.ndarray | None = None, seed: int = 0,
                  formats: str | None = None) -> ErrorMetrics:
    """Exhaustive for N <= 8, sampled above. ``weights`` (a [2^N, 2^N] histogram of operand
    pairs, indexed like ``product_table``) weights the metrics by a real operand stream.
    ``formats`` (e.g. ``"u8xs8"``, ROUP only): over every operand pair of those formats."""
    if formats is not None:
        from axonnx.multipliers.operands import format_grid

        a, b = format_grid(formats)
        exhaustive, products = True, m.multiply(a, b)
    else:
        a, b, exhaustive = _operands(m, seed)
        products = m.multiply(a, b)
    exact = a * b
    err = (products - exact).astype(np.float64)
    w = np.ones_like(err) if weights is None else np.asarray(weights, np.float64).ravel()
    w = w / w.sum()
    nonzero = exact != 0
    rel = np.abs(err[nonzero]) / np.abs(exact[nonzero])
    mean = float(np.sum(w * err))
    med = float(np.sum(w * np.abs(err)))
    return ErrorMetrics(
        error_rate=float(np.sum(w * (err != 0))),
        mean_error=mean,
        med=med,
        mred=float(np.sum(w[nonzero] * rel) / max(np.sum(w[nonzero]), 1e-300)),
        nmed=med / float(1 << (2 * m.bits - 2)),
        wce=int(np.abs(err[w > 0]).max()) if err.size else 0,
        variance=float(np.sum(w * (err - mean) ** 2)),
        pairs=int(err.size),
        exhaustive=exhaustive,
    )
