"""Activity-based energy of a mapped netlist driven by an operand stream.

The stream is simulated bit-parallel, at zero delay by default (glitches are not counted;
``delay_model="unit"`` adds them with a unit-delay transport simulation). Between
consecutive operand pairs every net's transitions are counted (the stream is taken as
cyclic, so K pairs give K transitions of the whole circuit), and

* **switching energy**: each transition of a net costs ``1/2 C V^2``, C being the sum of the
  input-pin capacitances it drives (plus ``output_load`` on each product bit);
* **internal energy**: each rise/fall of a cell output costs the Liberty ``internal_power``
  energy of the arc from the input that caused it, at a nominal input slew and the net's
  actual load, using the arc whose ``when`` condition holds; when several inputs switch at
  once, the event's energy is the mean of their arcs. Input-pin internal (hidden) power is
  counted on each input transition;
* **leakage**: each cell's state-dependent leakage (``leakage_power`` ``when`` states,
  averaged over the stream; ``cell_leakage_power`` otherwise) integrated over one clock
  period.

The result is energy per multiplication.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from axonnx.errors import AxonnxError
from axonnx.hw import bits as bv
from axonnx.hw.liberty import Library, PowerGroup
from axonnx.hw.mapped import MappedNetlist, Simulation

DEFAULT_CLOCK_NS = 1.0
DEFAULT_SLEW_NS = 0.02
_DELAY_MODELS = {
    "zero": "zero-delay (functional transitions; glitches not counted)",
    "unit": "unit-delay transport simulation (every cell one time step; glitches counted, "
            "no inertial filtering)",
}


@dataclass(frozen=True)
class EnergyOptions:
    clock_ns: float = DEFAULT_CLOCK_NS  # leakage is integrated over one clock period
    slew_ns: float = DEFAULT_SLEW_NS  # nominal input transition for internal-power tables
    output_load_ff: float | None = None  # per product bit; None: a register's data-pin cap
    delay_model: str = "zero"  # "zero": functional transitions; "unit": + glitches (unit delay)

    def resolved_output_load_ff(self, library: Library) -> float:
        if self.output_load_ff is not None:
            return float(self.output_load_ff)
        return library.register_input_cap() * library.cap_unit / 1e-15

    def describe(self, library: Library) -> dict:
        return {"clock_ns": self.clock_ns, "input_slew_ns": self.slew_ns,
                "output_load_fF": round(self.resolved_output_load_ff(library), 6),
                "delay_model": _DELAY_MODELS.get(self.delay_model, self.delay_model)}


@dataclass
class EnergyResult:
    """Energy per multiplication, in pJ, and where it goes."""

    total_pj: float
    switching_pj: float
    internal_pj: float
    leakage_pj: float
    toggles_per_op: float  # net transitions per multiplication
    samples: int

    def as_dict(self) -> dict:
        return asdict(self)


def _exactly(toggles: list[np.ndarray], ones: np.ndarray) -> list[np.ndarray]:
    """masks[m]: samples in which exactly m of the given signals toggle."""
    masks = [ones.copy()] + [np.zeros_like(ones) for _ in toggles]
    for k, t in enumerate(toggles, start=1):
        for m in range(k, 0, -1):
            masks[m] = (masks[m] & ~t) | (masks[m - 1] & t)
        masks[0] &= ~t
    return masks


def _arc_energy(group: PowerGroup, slew: float, load: float) -> tuple[float, float]:
    rise = group.rise.at(slew, load) if group.rise is not None else 0.0
    fall = group.fall.at(slew, load) if group.fall is not None else rise
    if group.rise is None:
        rise = fall
    return rise, fall


class _Frame:
    """Transitions of a slice of the stream. ``tog(bit)``/``val(bit)``: every transition of a
    net and the value after it; ``out(bit)``/``cause(bit)``: the same, aligned so that a
    cell's output transitions meet the input transitions that caused them (same sample
    at zero delay; one time step earlier at unit delay)."""

    def __init__(self, values: dict, samples: int, valid: np.ndarray, waves: dict | None = None):
        self._t: dict = {}
        self.valid = valid
        self.values = values
        self.waves = waves
        self.samples = samples

    def _both(self, bit):
        if bit not in self._t:
            if self.waves is None:
                v = self.values[bit]
                self._t[bit] = ((v ^ bv.previous(v, self.samples)) & self.valid, v)
            else:
                w = self.waves[bit]
                self._t[bit] = (w[1:] ^ w[:-1], w[1:])
        return self._t[bit]

    def tog(self, bit):
        return self._both(bit)[0]

    def val(self, bit):
        return self._both(bit)[1]

    def out(self, bit):
        t, v = self._both(bit)
        return (t, v) if self.waves is None else (t[1:], v[1:])

    def cause(self, bit):
        t, v = self._both(bit)
        return (t, v) if self.waves is None else (t[:-1], v[:-1])


def _frames(net: MappedNetlist, sim: Simulation, delay_model: str, chunk_words: int = 128):
    if delay_model == "zero":
        yield _Frame(sim.values, sim.samples, sim.valid)
        return
    if delay_model != "unit":
        raise AxonnxError(f"unknown delay model {delay_model!r}: use 'zero' or 'unit'")
    steps = net.depth() + 1
    words = len(sim.valid)
    for start in range(0, words, chunk_words):
        stop = min(words, start + chunk_words)
        waves = net.waveforms(sim, start, stop, steps)
        yield _Frame(None, sim.samples, sim.valid[start:stop], waves)


def activity_energy(net: MappedNetlist, sim: Simulation,
                    options: EnergyOptions = EnergyOptions()) -> EnergyResult:
    lib = net.library
    if lib is None:
        raise AxonnxError("energy needs a netlist mapped onto a Liberty library")
    valid, samples = sim.valid, sim.samples
    slew = options.slew_ns * 1e-9 / lib.time_unit
    out_load = options.resolved_output_load_ff(lib) * 1e-15 / lib.cap_unit

    # Loads (library capacitance units) of every net.
    load: dict = {}
    for inst in net.instances:
        for pin, bit in inst.inputs.items():
            load[bit] = load.get(bit, 0.0) + inst.cell.pins[pin].capacitance
    for bit in (b for bits in net.outputs.values() for b in bits):
        load[bit] = load.get(bit, 0.0) + out_load
    nets = [b for b in sim.values if isinstance(b, int)]

    # Leakage, state dependent where the library says so (from the settled values).
    leakage = 0.0  # library leakage units
    for inst in net.instances:
        cell = inst.cell
        if not cell.leakage_states:
            leakage += cell.leakage
            continue
        env = {p: sim.values[b] for p, b in inst.inputs.items()}
        env.update({p: sim.values[b] for p, b in inst.outputs.items() if b in sim.values})
        covered = np.zeros_like(valid)
        for cond, value in cell.leakage_states:
            try:
                mask = cond.evaluate(env, valid) & valid & ~covered
            except KeyError:
                continue
            covered |= mask
            leakage += bv.popcount(mask) / samples * value
        leakage += (samples - bv.popcount(covered)) / samples * cell.leakage

    switching = 0.0  # toggle count x load (library capacitance units)
    internal = 0.0  # library energy units (cap unit x V^2)
    total_toggles = 0
    arcs_cache: dict = {}
    for frame in _frames(net, sim, options.delay_model):
        for bit in nets:
            n = bv.popcount(frame.tog(bit))
            total_toggles += n
            switching += n * 0.5 * load.get(bit, 0.0)
        for k, inst in enumerate(net.instances):
            internal += _instance_internal(inst, frame, slew, load, arcs_cache, k)

    switching_j = switching * lib.cap_unit * lib.voltage**2
    internal_j = internal * lib.energy_unit
    leakage_j = leakage * lib.leakage_unit * options.clock_ns * 1e-9
    per_op = 1e12 / samples  # J -> pJ per multiplication
    return EnergyResult(
        total_pj=(switching_j + internal_j) * per_op + leakage_j * 1e12,
        switching_pj=switching_j * per_op,
        internal_pj=internal_j * per_op,
        leakage_pj=leakage_j * 1e12,
        toggles_per_op=total_toggles / samples,
        samples=samples,
    )


def _instance_internal(inst, frame: _Frame, slew: float, load: dict, arcs_cache: dict, key) -> float:
    cell = inst.cell
    internal = 0.0
    when_cache: dict = {}

    def when_mask(group: PowerGroup, env_kind: str):
        if group.when is None:
            return None
        ck = (group.when.text, env_kind)
        if ck not in when_cache:
            pick = frame.val if env_kind == "now" else (lambda b: frame.cause(b)[1])
            env = {p: pick(b) for p, b in inst.inputs.items()}
            try:
                when_cache[ck] = group.when.evaluate(env, frame.valid)
            except KeyError:  # a condition on a pin this instance leaves unconnected
                when_cache[ck] = None
        return when_cache[ck]

    # Input-pin (hidden) internal power: per input transition.
    for pin, bit in inst.inputs.items():
        groups = [g for g in cell.pins[pin].power if not g.related or g.related == (pin,)]
        if not groups or not isinstance(bit, int):
            continue
        t, v = frame.tog(bit), frame.val(bit)
        energies = [_arc_energy(g, slew, 0.0) for g in groups]
        for direction, mask_dir in ((0, t & v), (1, t & ~v)):
            remaining = mask_dir
            for g, e in zip(groups, energies):
                cond = when_mask(g, "now")
                if cond is None:
                    continue
                internal += bv.popcount(remaining & cond) * e[direction]
                remaining = remaining & ~cond
            internal += bv.popcount(remaining) * float(np.mean([e[direction] for e in energies]))

    # Output internal power: per output transition, by the arc that caused it.
    for pin, bit in inst.outputs.items():
        groups = cell.pins[pin].power
        if not groups or not isinstance(bit, int):
            continue
        t_out, v_out = frame.out(bit)
        if not t_out.any():
            continue
        ck = (key, pin)
        if ck not in arcs_cache:
            here = load.get(bit, 0.0)
            by_related: dict[str, list] = {}
            unconditional = []
            for g in groups:
                arc = (g, _arc_energy(g, slew, here))
                if not g.related:
                    unconditional.append(arc)
                for rp in g.related:
                    if rp in inst.inputs:
                        by_related.setdefault(rp, []).append(arc)
            all_arcs = [arc for arcs in by_related.values() for arc in arcs] + unconditional
            mean_rf = (float(np.mean([e[0] for _, e in all_arcs])),
                       float(np.mean([e[1] for _, e in all_arcs])))
            arcs_cache[ck] = (by_related, unconditional, mean_rf)
        by_related, unconditional, mean_rf = arcs_cache[ck]
        related = [rp for rp in by_related if isinstance(inst.inputs[rp], int)]
        cause = {rp: frame.cause(inst.inputs[rp])[0] for rp in related}
        masks = _exactly([cause[rp] for rp in related], np.broadcast_to(frame.valid, t_out.shape))
        for direction, mask_dir in ((0, t_out & v_out), (1, t_out & ~v_out)):
            if unconditional and not by_related:
                internal += bv.popcount(mask_dir) * float(np.mean([e[direction] for _, e in unconditional]))
                continue
            # No related input switched (a constant-driven cell or a glitch of an input
            # without power arcs): the mean arc.
            internal += bv.popcount(mask_dir & masks[0]) * mean_rf[direction]
            for rp in related:
                events = mask_dir & cause[rp]
                if not events.any():
                    continue
                arcs = by_related[rp]
                pieces = []
                remaining = events
                for g, e in arcs:
                    cond = when_mask(g, "cause")
                    if cond is None:
                        continue
                    pieces.append((remaining & cond, e[direction]))
                    remaining = remaining & ~cond
                pieces.append((remaining, float(np.mean([e[direction] for _, e in arcs]))))
                for part, energy in pieces:
                    for m in range(1, len(masks)):
                        n = bv.popcount(part & masks[m])
                        if n:
                            internal += n * energy / m
    return internal
