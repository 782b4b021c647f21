"""The energy report of an approximated network, and the fast energy model searches use."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from axonnx.energy.entry import EXACT, EnergyEntry
from axonnx.energy.table import EnergyTable, canonical_roup
from axonnx.errors import AxonnxError
from axonnx.multipliers.operands import DEFAULT_FORMATS, canonical_formats


@dataclass
class LayerEnergy:
    name: str
    counts: dict[str, int]  # multiplications per multiplier
    multiplications: int  # all, SKIPped included
    relative: float  # energy in exact-multiplication equivalents (of this layer's formats)
    pj: float | None
    share: float  # of the network's multiplier energy
    gain: float  # 1 - energy / all-exact energy of this layer
    formats: str = DEFAULT_FORMATS  # operand formats, rounded x encoded
    kind: str = "conv"  # conv | fully connected | attention (activation x activation)
    exact_pj: float | None = None  # this layer all at its formats' exact multiplier

    def as_dict(self) -> dict:
        return {"layer": self.name, "kind": self.kind, "operand_formats": self.formats,
                "multiplications": self.counts, "total_multiplications": self.multiplications,
                "energy_relative": self.relative, "energy_pj": self.pj,
                "share": self.share, "gain": self.gain}


def entry_label(name: str, formats: str) -> str:
    """How a report names a multiplier's figure: ``ROUP(1,4)``, or ``ROUP(1,4) u8xs8``."""
    return name if formats == DEFAULT_FORMATS else f"{name} {formats}"


@dataclass
class EnergyReport:
    layers: list[LayerEnergy]
    multiplications: int
    relative: float  # total energy in exact-multiplication equivalents
    pj: float | None
    baseline_relative: float  # every multiplication at ROUP(0,0): = multiplications
    baseline_pj: float | None
    gain: float  # 1 - energy / all-exact energy
    entries: dict[str, EnergyEntry] = field(default_factory=dict)  # by entry_label
    estimated_pj: list[str] = field(default_factory=list)  # pJ = relative x exact pJ
    table: str = ""
    notes: list[str] = field(default_factory=list)  # e.g. s8xs8 figures standing in

    @property
    def per_kind(self) -> dict[str, dict]:
        """Multiplications and energy per layer kind (conv, fully connected, attention,
        transposed conv), each gain computed as the model's (:func:`network_gain`)."""
        groups: dict[str, list[LayerEnergy]] = {}
        for layer in self.layers:
            groups.setdefault(layer.kind, []).append(layer)
        out = {}
        for kind, layers in groups.items():
            pj = [layer.pj for layer in layers]
            out[kind] = {"layers": len(layers),
                         "multiplications": sum(layer.multiplications for layer in layers),
                         "energy_relative": sum(layer.relative for layer in layers),
                         "energy_pj": None if None in pj else sum(pj),
                         "gain": network_gain(layers)}
        return out

    def as_dict(self) -> dict:
        return {
            "layers": [layer.as_dict() for layer in self.layers],
            "per_kind": self.per_kind,
            "total": {"multiplications": self.multiplications, "energy_relative": self.relative,
                      "energy_pj": self.pj},
            "baseline_all_exact": {"multiplier": EXACT, "energy_relative": self.baseline_relative,
                                   "energy_pj": self.baseline_pj},
            "gain": self.gain,
            "multipliers": {label: {"pj": e.pj, "relative": e.relative, "source": e.source,
                                    "operand_formats": e.formats,
                                    "pj_estimated": label in self.estimated_pj}
                            for label, e in self.entries.items()},
            "table": self.table,
            "notes": self.notes,
        }


def network_gain(layers: list[LayerEnergy]) -> float:
    """1 - energy / all-exact energy of ``layers``: in pJ when every layer has pJ figures
    (formats differ in exact energy), else in exact-multiplication equivalents. The model's
    gain and each kind's are this one function, so they agree to the last digit."""
    if layers and all(layer.pj is not None and layer.exact_pj for layer in layers):
        return 1.0 - sum(layer.pj for layer in layers) / sum(layer.exact_pj for layer in layers)
    mults = sum(layer.multiplications for layer in layers)
    return 1.0 - sum(layer.relative for layer in layers) / mults if mults else 0.0


def energy_report(layer_counts: dict[str, dict[str, int]], table: EnergyTable | None = None,
                  formats: dict[str, str] | None = None,
                  kinds: dict[str, str] | None = None) -> EnergyReport:
    """Per-layer multiplier energy of a network: ``layer_counts[layer][multiplier]`` is the
    number of multiplications (per image) that layer does with that multiplier, and
    ``formats[layer]`` its operand formats (default s8xs8): each layer is priced with the
    figures of its formats, relative to the exact multiplier of the same formats.
    ``kinds[layer]`` labels it (conv, fully connected, attention) for ``per_kind``."""
    table = table or EnergyTable.load_default()
    formats = formats or {}
    kinds = kinds or {}
    entries: dict[str, EnergyEntry] = {}
    estimated: list[str] = []
    fallbacks: dict[str, list[str]] = {}
    layers = []
    baseline_pj: float | None = 0.0
    for layer, counts in layer_counts.items():
        fmt = canonical_formats(formats.get(layer, DEFAULT_FORMATS))
        exact_pj = table.exact_pj_for(fmt)
        rel, pj, total = 0.0, 0.0, 0
        for name, count in counts.items():
            count = int(count)
            if count < 0:
                raise AxonnxError(f"layer {layer}: negative multiplication count for {name}")
            label = entry_label(name, fmt)
            entry = entries.get(label) or table.lookup(name, fmt)
            entries[label] = entry
            if canonical_roup(name) is not None and entry.formats != fmt:
                fallbacks.setdefault(fmt, []).append(layer)
            total += count
            rel += count * entry.relative
            if entry.pj is not None:
                e_pj = entry.pj
            elif exact_pj is not None:
                e_pj = entry.relative * exact_pj
                if label not in estimated:
                    estimated.append(label)
            else:
                e_pj = float("nan")
            pj += count * e_pj
        baseline_pj = baseline_pj + total * exact_pj if (
            baseline_pj is not None and exact_pj is not None) else None
        layers.append(LayerEnergy(layer, {k: int(v) for k, v in counts.items()}, total, rel,
                                  pj if np.isfinite(pj) else None, 0.0,
                                  1.0 - rel / total if total else 0.0, fmt,
                                  kinds.get(layer, "conv"),
                                  total * exact_pj if exact_pj is not None else None))
    mults = sum(layer.multiplications for layer in layers)
    total_rel = sum(layer.relative for layer in layers)
    have_pj = all(layer.pj is not None for layer in layers) and baseline_pj is not None
    total_pj = sum(layer.pj for layer in layers) if have_pj else None
    for layer in layers:
        if total_pj:
            layer.share = layer.pj / total_pj
        else:
            layer.share = layer.relative / total_rel if total_rel else 0.0
        if not have_pj:
            layer.pj = None
    gain = network_gain(layers)
    notes = [f"no {f} figures in {table.origin}: layer(s) {', '.join(dict.fromkeys(names))} "
             f"priced with the {DEFAULT_FORMATS} figures" for f, names in fallbacks.items()]
    return EnergyReport(
        layers=layers, multiplications=mults, relative=total_rel, pj=total_pj,
        baseline_relative=float(mults), baseline_pj=baseline_pj if mults or baseline_pj else None,
        gain=gain, entries=entries, estimated_pj=estimated, table=table.origin, notes=notes,
    )


class EnergyModel:
    """Vectorised energy of assignments, for the design-space search.

    ``counts`` holds the multiplications of each assignable slot (any shape, e.g.
    ``[layers, classes]``); ``multipliers`` are the candidate names. An assignment is an
    integer array of the same shape (or with extra leading batch axes) whose entries index
    ``multipliers``. ``relative_energy`` is the network's multiplier energy divided by the
    all-exact energy (``1 - gain``); a plan costs a few microseconds, a batch one numpy call.
    ``formats`` gives the operand formats of each slot along the first axis (one per layer):
    each is priced with its formats' figures, the network in pJ of each format's exact.
    """

    def __init__(self, counts, table: EnergyTable | None = None, *, multipliers: Sequence[str],
                 formats: Sequence[str] | None = None):
        table = table or EnergyTable.load_default()
        self.counts = np.asarray(counts, dtype=np.float64)
        if (self.counts < 0).any():
            raise AxonnxError("EnergyModel: multiplication counts must be >= 0")
        self.multipliers = list(multipliers)
        self.entries = [table.lookup(m) for m in self.multipliers]
        self.relative = np.array([e.relative for e in self.entries], dtype=np.float64)
        self.exact_pj = table.exact_pj
        self.total = float(self.counts.sum())
        self._flat = self.counts.ravel()
        self._size = self._flat.size
        self._per_slot = None  # [slots, multipliers] relative energies when formats differ
        if formats is not None:
            formats = [canonical_formats(f) for f in formats]
            if self.counts.ndim == 0 or len(formats) != self.counts.shape[0]:
                raise AxonnxError(f"EnergyModel: {len(formats)} operand formats for "
                                  f"{self.counts.shape[0] if self.counts.ndim else 0} layers")
            exact = [table.exact_pj_for(f) for f in formats]
            # Weigh each layer by its formats' exact energy (when all are known) so that the
            # ratio is the network's pJ over the all-exact pJ, as in energy_report.
            scale = np.array(exact, np.float64) if all(e for e in exact) else np.ones(len(formats))
            scale = scale / scale[0]
            rel = np.array([[table.lookup(m, f).relative for m in self.multipliers] for f in formats])
            slots = np.broadcast_to(np.arange(len(formats)).reshape((-1,) + (1,) * (self.counts.ndim - 1)),
                                    self.counts.shape).ravel()
            self._per_slot = rel[slots]
            self._flat = self._flat * scale[slots]  # all-exact energy per slot
            self.total = float(self._flat.sum())
            self.exact_pj = exact[0]

    def relative_energy(self, assignment) -> float | np.ndarray:
        a = np.asarray(assignment)
        if self._per_slot is None:
            per = self.relative[a]
        else:
            per = self._per_slot[np.arange(self._size), a.reshape(-1, self._size)]
        if a.ndim == self.counts.ndim:
            return float(per.ravel() @ self._flat) / self.total
        return per.reshape(-1, self._size) @ self._flat / self.total

    def gain(self, assignment) -> float | np.ndarray:
        return 1.0 - self.relative_energy(assignment)

    def energy_pj(self, assignment) -> float | np.ndarray:
        if self.exact_pj is None:
            raise AxonnxError(f"EnergyModel: the table has no {EXACT} energy in pJ")
        return self.relative_energy(assignment) * self.total * self.exact_pj

    def relative_energy_of_counts(self, per_multiplier) -> float | np.ndarray:
        """Energy of count matrices ``[..., len(multipliers)]`` (multiplications per
        candidate), relative to the same count at exact energy."""
        c = np.asarray(per_multiplier, dtype=np.float64)
        return (c @ self.relative) / c.sum(axis=-1)


def no_saving_warnings(layer_multipliers: dict[str, Sequence[str]], formats: dict[str, str],
                       table: EnergyTable | None = None) -> list[str]:
    """One line per multiplier that saves no energy on some layers' operand formats: its
    figure for those formats is at least the exact multiplier's. The named strengths are
    picked on s8xs8 operands; on u8xs8 (uint8 activations) the rounding adder can outweigh
    what it saves, and the line names the characterization's pick for those formats."""
    from axonnx.multipliers.names import NAMED_STRENGTHS, parse

    table = table or EnergyTable.load_default()
    alias = {v: k for k, v in NAMED_STRENGTHS.items()}
    costly: dict[tuple[str, str], list[str]] = {}
    for layer, names in layer_multipliers.items():
        fmt = canonical_formats(formats.get(layer, DEFAULT_FORMATS))
        for name in names:
            if name == "SKIP" or canonical_roup(name) is None or parse(name).is_exact:
                continue
            if table.lookup(name, fmt).relative >= 1.0:
                costly.setdefault((name, fmt), []).append(layer)
    lines = []
    for (name, fmt), layers in costly.items():
        entry = table.lookup(name, fmt)
        shown = ", ".join(layers[:3]) + (f" and {len(layers) - 3} more" if len(layers) > 3 else "")
        line = (f"{name}{' (' + alias[name] + ')' if name in alias else ''} saves no energy on "
                f"{fmt} operands: {100 * (entry.relative - 1):+.1f}% versus {EXACT} on "
                f"{len(layers)} layer{'s' if len(layers) != 1 else ''} ({shown})")
        picks = table.info.get("suggested_strengths" if fmt == DEFAULT_FORMATS
                               else f"suggested_strengths_{fmt}") or {}
        if name in alias and alias[name] in picks:
            pick = picks[alias[name]]
            line += (f"; on {fmt} the characterization's {alias[name]} is {pick['name']} "
                     f"(saves {100 * pick['saving']:.1f}%)")
        lines.append(line)
    return lines
