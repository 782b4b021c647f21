"""From a plan rule and a layer's weights to a per-weight-position multiplier assignment.

Every approach is one map from weight position [m, c, kh, kw] to a multiplier (SPEC.md):

* ``llam``: the whole layer gets one multiplier;
* ``flam`` / ``klam-chan`` / ``klam-row`` / ``klam-col``: the layer's filters [m],
  kernels [m, c], kernel rows [m, c, kh] or kernel columns [m, c, kw] are ranked and cut
  into k classes; class i gets the rule's i-th multiplier;
* ``klms``: weights outside mu +- k sigma of the layer are skipped (or, with
  ``keep: outside``, those inside are).

Ranking (the *policy*): ``magnitude`` orders groups by the L1 norm of their real
(dequantised) weights, largest first, so the most important groups get the first (most
accurate) multiplier; ``index`` keeps tensor order. Ties keep tensor order.
Class sizes: with G groups and class fractions f (equal by default), class i takes the
ranked groups from ``round(G * sum(f[:i]))`` to ``round(G * sum(f[:i+1]))``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from axonnx.errors import AxonnxError
from axonnx.multipliers import EXACT, Multiplier, Skip, parse
from axonnx.plan import LayerRule

# Which weight axes identify a group, per classed approach ([m, c, kh, kw]).
GROUP_AXES = {
    "flam": (0,),
    "klam-chan": (0, 1),
    "klam-row": (0, 1, 2),
    "klam-col": (0, 1, 3),
}


@dataclass(frozen=True)
class LayerAssignment:
    multipliers: tuple[Multiplier, ...]
    index: np.ndarray  # uint8, weight-shaped, into ``multipliers``
    note: str = ""  # how the rule was adapted to this layer, if it was

    @property
    def used_multipliers(self) -> tuple[Multiplier, ...]:
        """The multipliers some weight position actually uses."""
        counts = np.bincount(self.index.ravel(), minlength=len(self.multipliers))
        return tuple(m for m, n in zip(self.multipliers, counts) if n)

    @property
    def is_exact(self) -> bool:
        """Every weight position gets an exact multiplier."""
        return all(m.is_exact for m in self.used_multipliers)


def class_boundaries(groups: int, fractions) -> np.ndarray:
    edges = np.floor(groups * np.concatenate([[0.0], np.cumsum(fractions)]) + 0.5).astype(int)
    edges[-1] = groups
    return edges


def rank_groups(importance: np.ndarray, policy: str) -> np.ndarray:
    """Group ids ordered from most to least important."""
    if policy == "index":
        return np.arange(importance.size)
    return np.argsort(-importance, kind="stable")


def group_classes(rule: LayerRule, real_weight: np.ndarray, layer: str) -> tuple[np.ndarray, str]:
    """Class of every weight position (int, weight-shaped) under a classed approach, and a
    note when the layer has fewer groups than the rule has classes: then the ranked groups
    take the first (most accurate) classes, one each."""
    axes = GROUP_AXES[rule.approach]
    reduced = tuple(a for a in range(4) if a not in axes)
    importance = np.abs(real_weight).sum(axis=reduced)  # shape = the group axes
    groups = importance.size
    k = rule.classes
    note = ""
    if k > groups:
        # A plan shared across layers (or models) must not fail on a small layer.
        unit = {"flam": "filters", "klam-chan": "kernels", "klam-row": "kernel rows",
                "klam-col": "kernel columns"}[rule.approach]
        note = (f"layer {layer}: {rule.approach} has {k} classes but the layer only {groups} "
                f"{unit}; they take the first {groups} classes, one each")
        edges = np.arange(groups + 1)
        k = groups
    else:
        edges = class_boundaries(groups, rule.fractions or (1.0 / k,) * k)
    order = rank_groups(importance.ravel(), rule.policy)
    class_of_group = np.empty(groups, dtype=np.int64)
    for cls in range(k):
        class_of_group[order[edges[cls]:edges[cls + 1]]] = cls
    class_of_group = class_of_group.reshape(importance.shape)
    # Broadcast each group's class back over the positions it covers.
    expand = class_of_group.reshape([real_weight.shape[a] if a in axes else 1 for a in range(4)])
    return np.broadcast_to(expand, real_weight.shape), note


def klms_performed(real_weight: np.ndarray, k: float, keep: str) -> np.ndarray:
    """True where the multiplication is performed."""
    mu = real_weight.mean()
    sigma = real_weight.std()
    inside = np.abs(real_weight - mu) <= k * sigma
    return inside if keep == "inside" else ~inside


def assign_layer(rule: LayerRule, real_weight: np.ndarray | None, layer: str = "?", *,
                 shape: tuple[int, ...] | None = None) -> LayerAssignment:
    """The per-position assignment a rule gives a layer with these real weights.
    ``real_weight=None`` is a weight that is an activation (attention), of ``shape``:
    classes are ranked by index, and KLMS, which skips by weight value, leaves it exact;
    a note says so."""
    if real_weight is None:
        return _assign_without_weights(rule, tuple(shape), layer)
    real_weight = np.asarray(real_weight, dtype=np.float64)
    if rule.approach == "exact":
        return LayerAssignment((EXACT,), np.zeros(real_weight.shape, np.uint8))
    if rule.approach == "llam":
        return LayerAssignment((parse(rule.multipliers[0]),), np.zeros(real_weight.shape, np.uint8))
    if rule.approach == "klms":
        kept = parse(rule.multipliers[0]) if rule.multipliers else EXACT
        performed = klms_performed(real_weight, rule.k, rule.keep)
        return LayerAssignment((kept, Skip()), np.where(performed, 0, 1).astype(np.uint8))
    if rule.approach not in GROUP_AXES:
        raise AxonnxError(f"unknown approach {rule.approach!r}")
    classes, note = group_classes(rule, real_weight, layer)
    # Classes that share a multiplier share one entry of the node's list.
    unique: list[str] = []
    for name in rule.multipliers:
        if name not in unique:
            unique.append(name)
    lookup = np.array([unique.index(n) for n in rule.multipliers], dtype=np.uint8)
    return LayerAssignment(tuple(parse(n) for n in unique), lookup[classes], note)


def _assign_without_weights(rule: LayerRule, shape: tuple[int, ...], layer: str) -> LayerAssignment:
    if rule.approach == "klms":
        return LayerAssignment((EXACT,), np.zeros(shape, np.uint8),
                               f"layer {layer}: klms skips by weight value, and this layer's "
                               "weight is an activation; it stays exact")
    by_index = replace(rule, policy="index") if rule.approach in GROUP_AXES else rule
    done = assign_layer(by_index, np.zeros(shape), layer)
    if rule.approach in GROUP_AXES and rule.policy != "index":
        note = (f"layer {layer}: its weight is an activation, so {rule.approach} ranks by "
                "index, not magnitude")
        done = replace(done, note="; ".join(n for n in (done.note, note) if n))
    return done
