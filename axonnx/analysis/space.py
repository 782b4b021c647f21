"""Search spaces: an integer genome per approach, and the plan it denotes.

* ``llam``: one gene per conv layer, the index of its multiplier in the library.
* ``flam`` / ``klam-chan`` / ``klam-row`` / ``klam-col``: ``k`` genes per layer, the
  multiplier of each of the layer's k classes (class 0 holds the most important filters,
  kernels, rows or columns under the magnitude policy). A genome is kept canonical: each
  layer's genes are sorted from the most to the least accurate multiplier, so that the
  most important class always gets the most accurate one and equivalent genomes coincide.
* ``klms``: one gene per layer in {0: exact, 1: skip outside mu +- 1 sigma,
  2: skip outside mu +- 2 sigma} (``keep: inside``, as in the paper; ``keep: outside``
  skips the weights near the mean instead).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from axonnx.errors import AxonnxError
from axonnx.multipliers import parse, parse_list
from axonnx.plan import CLASSED_APPROACHES, KLMS_SIDES, LayerRule, Plan

SEARCH_APPROACHES = ("llam", "flam", "klam-chan", "klam-row", "klam-col", "klms")
KLMS_GENES = (None, 1.0, 2.0)


def parse_library(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Canonical multiplier names from 'ROUP(0,0),ROUP_L,...' (or a list of names)."""
    mults = parse_list(text) if isinstance(text, str) else [parse(n) for n in text]
    names: list[str] = []
    for m in mults:
        if m.name in names:
            raise AxonnxError(f"the library names {m.name} twice")
        names.append(m.name)
    if not names:
        raise AxonnxError("the multiplier library is empty")
    return tuple(names)


@lru_cache(maxsize=256)
def error_rank(name: str, formats: str | None = None) -> float:
    """Mean squared error of a multiplier over all operand pairs (of ``formats``, e.g.
    ``u8xs8``, for the zero-point-free ROUP and SKIP; a LUT sees stored codes): its
    accuracy rank."""
    from axonnx.multipliers import error_metrics

    m = parse(name)
    if m.is_exact:
        return 0.0
    metrics = error_metrics(m, formats=formats if m.zero_point_free else None)
    return metrics.variance + metrics.mean_error ** 2


def substitutes(library: tuple[str, ...], energy: list[float], error: list[float]) -> tuple[int, ...]:
    """For each library index, itself, or where another entry is no worse in energy and
    error and better in one (it dominates), the most accurate of its undominated dominators
    (ties: the cheaper, then the first): a search never spends a gene on a dominated choice."""
    n = len(library)

    def dominates(j: int, i: int) -> bool:
        no_worse = energy[j] <= energy[i] and error[j] <= error[i]
        better = energy[j] < energy[i] or error[j] < error[i]
        return no_worse and (better or j < i)  # equal twins: the first one stands

    free = [i for i in range(n) if not any(dominates(j, i) for j in range(n) if j != i)]
    out = []
    for i in range(n):
        if i in free:
            out.append(i)
            continue
        out.append(min((j for j in free if dominates(j, i)),
                       key=lambda j: (error[j], energy[j], j)))
    return tuple(out)


@dataclass(frozen=True)
class SearchSpace:
    approach: str
    layers: tuple[str, ...]
    library: tuple[str, ...] = ()
    classes: int = 1
    klms_keep: str = "inside"
    encoded_operand: str = "weight"
    matmul: bool = False  # the layers include matrix products (plans say matmul: true)
    # per layer, the library index each gene stands for (a dominated multiplier on that
    # layer's operand formats stands for a dominator; see ``substitutes``); None: itself
    substitutes: tuple[tuple[int, ...], ...] | None = None

    def __post_init__(self):
        if self.approach not in SEARCH_APPROACHES:
            raise AxonnxError(f"unknown approach {self.approach!r}; use one of "
                              f"{', '.join(SEARCH_APPROACHES)}")
        if not self.layers:
            raise AxonnxError("the search space has no layer")
        if self.approach == "klms":
            if self.klms_keep not in KLMS_SIDES:
                raise AxonnxError(f"--klms-keep must be inside or outside, not {self.klms_keep!r}")
            return
        if not self.library:
            raise AxonnxError(f"{self.approach} needs a multiplier library (--multipliers)")
        if self.approach == "llam" and self.classes != 1:
            raise AxonnxError("llam has one multiplier per layer: use --classes 1")
        if self.approach in CLASSED_APPROACHES and not 1 <= self.classes <= 8:
            raise AxonnxError(f"--classes must lie in 1..8, not {self.classes}")

    # ---- the genome ----------------------------------------------------------------------
    @property
    def genes_per_layer(self) -> int:
        return self.classes if self.approach in CLASSED_APPROACHES else 1

    @property
    def n_var(self) -> int:
        return self.genes_per_layer * len(self.layers)

    @property
    def upper(self) -> int:
        return len(KLMS_GENES) - 1 if self.approach == "klms" else len(self.library) - 1

    def _order(self) -> np.ndarray:
        """Library indices' position from the most to the least accurate."""
        ranks = [error_rank(n) for n in self.library]
        order = np.argsort(np.asarray(ranks), kind="stable")
        position = np.empty(len(order), np.int64)
        position[order] = np.arange(len(order))
        return position

    def canonical(self, X: np.ndarray) -> np.ndarray:
        """Round, clip and sort each layer's class genes (most accurate first)."""
        X = np.clip(np.rint(np.asarray(X, np.float64)), 0, self.upper).astype(np.int64)
        if self.substitutes is not None and self.approach != "klms":
            sub = np.asarray(self.substitutes, np.int64)  # [layers, library]
            genes = X.reshape(-1, len(self.layers), self.genes_per_layer)
            X = sub[np.arange(len(self.layers))[None, :, None], genes].reshape(X.shape)
        if self.approach not in CLASSED_APPROACHES or self.classes == 1:
            return X
        shape = X.shape
        genes = X.reshape(-1, len(self.layers), self.classes)
        position = self._order()
        keys = position[genes]
        idx = np.argsort(keys, axis=-1, kind="stable")
        return np.take_along_axis(genes, idx, axis=-1).reshape(shape)

    def anchors(self) -> list[np.ndarray]:
        """Uniform genomes: every layer (and class) with the same choice."""
        return [np.full(self.n_var, g, np.int64) for g in range(self.upper + 1)]

    # ---- genome -> plan --------------------------------------------------------------------
    def layer_genes(self, x) -> list[tuple[int, ...]]:
        x = np.asarray(x, np.int64).reshape(len(self.layers), self.genes_per_layer)
        return [tuple(int(g) for g in row) for row in x]

    def rule(self, layer: str, genes: tuple[int, ...]) -> LayerRule:
        match = (layer,)
        if self.approach == "klms":
            k = KLMS_GENES[genes[0]]
            if k is None:
                return LayerRule(match, "exact")
            return LayerRule(match, "klms", k=k, keep=self.klms_keep)
        names = tuple(self.library[g] for g in genes)
        if len(set(names)) == 1:  # every class alike: one multiplier for the layer
            if parse(names[0]).is_exact:
                return LayerRule(match, "exact")
            return LayerRule(match, "llam", names[:1])
        return LayerRule(match, self.approach, names, policy="magnitude")

    def plan(self, x) -> Plan:
        rules = tuple(self.rule(layer, genes) for layer, genes in zip(self.layers, self.layer_genes(x)))
        return Plan(rules, self.encoded_operand, matmul=self.matmul)

    def label(self, x) -> str:
        """Compact name in the paper's style: approach, then per layer the class genes."""
        prefix, _, flavour = self.approach.partition("-")
        head = prefix.upper() + (f"-{flavour}" if flavour else "")
        if self.approach in CLASSED_APPROACHES:
            head += f"-{self.classes}clas"
        body = "/".join("_".join(str(g) for g in genes) for genes in self.layer_genes(x))
        return f"{head}:{body}"

    def genome_text(self, x) -> str:
        return " ".join(str(int(g)) for g in np.asarray(x).ravel())

    def as_dict(self) -> dict:
        return {"approach": self.approach, "layers": list(self.layers),
                "library": list(self.library), "classes": self.classes,
                "klms_keep": self.klms_keep, "encoded_operand": self.encoded_operand,
                **({"matmul": True} if self.matmul else {})}
