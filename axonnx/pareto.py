"""Pareto extraction (every objective minimised): the explorations' fronts and the hardware
characterization's energy/error front share it, so it sits below both.

A point dominates another when it is no worse in every objective and better in at least
one; the front is the set of points no other point dominates (equal points all stay).
"""

from __future__ import annotations

import numpy as np


def dominates(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return bool(np.all(a <= b) and np.any(a < b))


def pareto_mask(F) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``F`` [n, m]. Two objectives: one sort and
    a sweep, O(n log n); more: pairwise, O(n^2 m)."""
    F = np.asarray(F, dtype=np.float64)
    if F.ndim != 2:
        raise ValueError("F must be [n points, m objectives]")
    n, m = F.shape
    if n == 0:
        return np.zeros(0, bool)
    if np.isnan(F).any():
        raise ValueError("objectives contain NaN")
    if m == 2:
        return _sweep2(F)
    mask = np.ones(n, bool)
    for i in range(n):
        le = np.all(F <= F[i], axis=1)
        lt = np.any(F < F[i], axis=1)
        mask[i] = not np.any(le & lt)
    return mask


def _sweep2(F: np.ndarray) -> np.ndarray:
    order = np.lexsort((F[:, 1], F[:, 0]))  # by f0, then f1
    f0, f1 = F[order, 0], F[order, 1]
    keep = np.zeros(len(F), bool)
    best = np.inf  # smallest f1 among points with a strictly smaller f0
    start = 0
    while start < len(order):
        stop = start
        while stop < len(order) and f0[stop] == f0[start]:
            stop += 1
        group_min = f1[start]  # sorted: the group's smallest f1 comes first
        for k in range(start, stop):
            keep[order[k]] = f1[k] == group_min and group_min < best
        best = min(best, group_min)
        start = stop
    return keep


def pareto_indices(F) -> np.ndarray:
    """Indices of the front, ordered by the first objective."""
    F = np.asarray(F, dtype=np.float64)
    idx = np.flatnonzero(pareto_mask(F))
    return idx[np.lexsort((F[idx, 1], F[idx, 0]))] if F.shape[1] >= 2 else idx


def pareto_records(records) -> list:
    """The non-dominated records by (accuracy loss, relative energy): objects with ``loss``,
    ``energy`` and ``feasible``; feasible ones only, ordered by loss."""
    pool = [r for r in records if r.feasible]
    if not pool:
        return []
    F = np.array([[r.loss, r.energy] for r in pool])
    return [pool[i] for i in pareto_indices(F)]
