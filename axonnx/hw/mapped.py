"""A technology-mapped netlist (Yosys JSON) and its bit-parallel, zero-delay simulation.

Cells are evaluated from their Liberty ``function``; Yosys's generic gates (``$_AND_`` ...)
are understood too, so an unmapped ``synth`` netlist can be simulated without a library.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from axonnx.errors import AxonnxError
from axonnx.hw import bits as bv
from axonnx.hw.liberty import BoolExpr, Cell, Library

# Yosys's internal gate library, written as Liberty functions.
GENERIC: dict[str, dict[str, str]] = {
    "$_BUF_": {"Y": "A"},
    "$_NOT_": {"Y": "!A"},
    "$_AND_": {"Y": "(A & B)"},
    "$_NAND_": {"Y": "!(A & B)"},
    "$_OR_": {"Y": "(A | B)"},
    "$_NOR_": {"Y": "!(A | B)"},
    "$_XOR_": {"Y": "(A ^ B)"},
    "$_XNOR_": {"Y": "!(A ^ B)"},
    "$_ANDNOT_": {"Y": "(A & !B)"},
    "$_ORNOT_": {"Y": "(A | !B)"},
    "$_MUX_": {"Y": "((A & !S) | (B & S))"},
    "$_NMUX_": {"Y": "!((A & !S) | (B & S))"},
    "$_AOI3_": {"Y": "!((A & B) | C)"},
    "$_OAI3_": {"Y": "!((A | B) & C)"},
    "$_AOI4_": {"Y": "!((A & B) | (C & D))"},
    "$_OAI4_": {"Y": "!((A | B) & (C | D))"},
}
_GENERIC_EXPR = {t: {pin: BoolExpr(f) for pin, f in fs.items()} for t, fs in GENERIC.items()}

Bit = int | str  # a net id, or one of Yosys's constants "0", "1", "x", "z"


@dataclass
class Instance:
    name: str
    type: str
    inputs: dict[str, Bit]
    outputs: dict[str, Bit]
    functions: dict[str, BoolExpr]
    cell: Cell | None = None


@dataclass
class Simulation:
    samples: int
    values: dict[Bit, np.ndarray]
    valid: np.ndarray = field(repr=False)


class MappedNetlist:
    """The top module of a Yosys JSON netlist, in topological order."""

    def __init__(self, module: dict, library: Library | None, name: str = "top"):
        self.name = name
        self.library = library
        self.ports: dict[str, tuple[str, list[Bit], bool]] = {}
        for port, info in module.get("ports", {}).items():
            self.ports[port] = (info["direction"], list(info["bits"]), bool(info.get("signed", 0)))
        instances = []
        for inst_name, info in module.get("cells", {}).items():
            ctype = info["type"]
            conns = info.get("connections", {})
            cell = None
            if ctype in _GENERIC_EXPR:
                functions = _GENERIC_EXPR[ctype]
                outs = set(functions)
            elif library is not None and ctype in library.cells:
                cell = library.cells[ctype]
                if cell.sequential:
                    raise AxonnxError(
                        f"{name}: cell {inst_name} ({ctype}) is sequential; only combinational "
                        "multipliers can be characterized"
                    )
                functions = {p: cell.pins[p].function for p in cell.outputs
                             if cell.pins[p].function is not None}
                outs = set(cell.outputs)
            else:
                where = f"the library {library.name}" if library is not None else "no library"
                raise AxonnxError(f"{name}: cell type {ctype!r} of {inst_name} is unknown to {where}")
            single = {pin: bits[0] for pin, bits in conns.items() if len(bits) == 1}
            if len(single) != len(conns):
                raise AxonnxError(f"{name}: cell {inst_name} ({ctype}) has multi-bit pins")
            inputs = {p: b for p, b in single.items() if p not in outs}
            outputs = {p: b for p, b in single.items() if p in outs}
            instances.append(Instance(inst_name, ctype, inputs, outputs, functions, cell))
        self.instances = self._sort(instances)

    def _sort(self, instances: list[Instance]) -> list[Instance]:
        driver = {}
        for k, inst in enumerate(instances):
            for bit in inst.outputs.values():
                if isinstance(bit, int):
                    driver[bit] = k
        pending = [sum(1 for b in inst.inputs.values() if b in driver) for inst in instances]
        users: dict[int, list[int]] = {}
        for k, inst in enumerate(instances):
            for b in inst.inputs.values():
                if b in driver:
                    users.setdefault(driver[b], []).append(k)
        ready = [k for k, n in enumerate(pending) if n == 0]
        order = []
        while ready:
            k = ready.pop()
            order.append(k)
            for u in users.get(k, []):
                pending[u] -= 1
                if pending[u] == 0:
                    ready.append(u)
        if len(order) != len(instances):
            raise AxonnxError(f"{self.name}: the netlist has a combinational loop")
        return [instances[k] for k in order]

    @property
    def inputs(self) -> dict[str, list[Bit]]:
        return {p: bits for p, (d, bits, _) in self.ports.items() if d == "input"}

    @property
    def outputs(self) -> dict[str, list[Bit]]:
        return {p: bits for p, (d, bits, _) in self.ports.items() if d == "output"}

    def area(self) -> float:
        if self.library is None:
            raise AxonnxError("a netlist without a Liberty library has no area")
        return float(sum(i.cell.area for i in self.instances if i.cell is not None))

    def cell_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for inst in self.instances:
            counts[inst.type] = counts.get(inst.type, 0) + 1
        return dict(sorted(counts.items()))

    def simulate(self, stimulus: dict[str, np.ndarray]) -> Simulation:
        """Zero-delay evaluation of every net for integer operand streams (one per input)."""
        missing = set(self.inputs) - set(stimulus)
        if missing:
            raise AxonnxError(f"{self.name}: no stimulus for input port(s) {sorted(missing)}")
        arrays = {k: np.asarray(v, dtype=np.int64).ravel() for k, v in stimulus.items()}
        samples = len(next(iter(arrays.values())))
        valid = bv.valid_mask(samples)
        zero = bv.zeros(samples)
        values: dict[Bit, np.ndarray] = {"0": zero, "1": valid.copy(), "x": zero, "z": zero}
        for port, bits in self.inputs.items():
            for bit, plane in zip(bits, bv.int_planes(arrays[port], len(bits))):
                values[bit] = plane
        for inst in self.instances:
            env = {}
            for pin, bit in inst.inputs.items():
                if bit not in values:
                    raise AxonnxError(f"{self.name}: net {bit} into {inst.name}.{pin} has no driver")
                env[pin] = values[bit]
            for pin, bit in inst.outputs.items():
                if pin in inst.functions:
                    values[bit] = inst.functions[pin].evaluate(env, valid) & valid
        return Simulation(samples, values, valid)

    def depth(self) -> int:
        """Logic depth in cells (longest input-to-output path)."""
        level: dict = {}
        deepest = 0
        for inst in self.instances:
            d = 1 + max((level.get(b, 0) for b in inst.inputs.values()), default=0)
            for b in inst.outputs.values():
                level[b] = d
            deepest = max(deepest, d)
        return deepest

    def waveforms(self, sim: Simulation, start: int, stop: int, steps: int) -> dict[Bit, np.ndarray]:
        """Unit-delay (transport) waveforms of words ``start:stop`` of a zero-delay simulation:
        ``w[bit][t]`` for t = 0..steps. At t = 0 every net holds its value for the previous
        operand pair (cyclically); the inputs switch at t = 1; a cell's output at t is its
        function of its inputs at t - 1. With ``steps > depth`` every net settles at its
        zero-delay value, and every intermediate transition (glitch) is visible."""
        valid = sim.valid[start:stop]
        waves: dict[Bit, np.ndarray] = {}
        for const in ("0", "x", "z"):
            waves[const] = np.zeros((steps + 1, stop - start), dtype=np.uint64)
        waves["1"] = np.broadcast_to(valid, (steps + 1, stop - start)).copy()

        def wave(bit) -> np.ndarray:
            w = np.empty((steps + 1, stop - start), dtype=np.uint64)
            w[0] = bv.previous(sim.values[bit], sim.samples)[start:stop] & valid
            return w

        for bits in self.inputs.values():
            for bit in bits:
                if isinstance(bit, int):
                    w = wave(bit)
                    w[1:] = sim.values[bit][start:stop]
                    waves[bit] = w
        for inst in self.instances:
            env = {pin: waves[bit][:-1] for pin, bit in inst.inputs.items()}
            for pin, bit in inst.outputs.items():
                if pin in inst.functions:
                    w = wave(bit)
                    w[1:] = inst.functions[pin].evaluate(env, valid) & valid
                    waves[bit] = w
        return waves

    def port_values(self, sim: Simulation, port: str, signed: bool | None = None) -> np.ndarray:
        direction, bits, is_signed = self.ports[port]
        return bv.planes_to_int([sim.values[b] for b in bits], sim.samples,
                                is_signed if signed is None else signed)
