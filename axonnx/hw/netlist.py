"""A small gate-level netlist: the generator builds into it, it prints structural Verilog
and it simulates itself bit-parallel.

Gates are 2-input AND/OR/XOR and NOT. The builder folds constants, removes double
inversions and shares identical gates (structural hashing), so the netlist holds only logic
that depends on the operands. Full and half adders are built from these gates and tagged,
so the Verilog shows the adder tree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from axonnx.errors import AxonnxError
from axonnx.hw import bits as bv

CONST0, CONST1 = 0, 1
_SYMBOL = {"and": "&", "or": "|", "xor": "^"}


@dataclass(frozen=True)
class Gate:
    op: str  # "and", "or", "xor", "not"
    ins: tuple[int, ...]
    out: int


class Netlist:
    """Nets are integers; 0 and 1 are the constants. Gates are kept in topological order."""

    def __init__(self, name: str, comment: str = ""):
        self.name = name
        self.comment = comment
        self.net_names: list[str] = ["1'b0", "1'b1"]
        self.gates: list[Gate] = []
        self.inputs: dict[str, list[int]] = {}
        self.outputs: dict[str, list[int]] = {}
        self.signed: dict[str, bool] = {}
        self._driver: dict[int, Gate] = {}
        self._hash: dict[tuple, int] = {}
        self._inverse: dict[int, int] = {CONST0: CONST1, CONST1: CONST0}
        self.counts: dict[str, int] = {}  # tagged structures, e.g. "full adder": 42

    # -- construction --------------------------------------------------------------------
    def _new_net(self, name: str) -> int:
        self.net_names.append(name)
        return len(self.net_names) - 1

    def input(self, name: str, width: int, signed: bool = True) -> list[int]:
        nets = [self._new_net(f"{name}[{i}]") for i in range(width)]
        self.inputs[name] = nets
        self.signed[name] = signed
        return nets

    def output(self, name: str, nets: list[int], signed: bool = True) -> None:
        self.outputs[name] = list(nets)
        self.signed[name] = signed

    def tally(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n

    def _gate(self, op: str, ins: tuple[int, ...], hint: str) -> int:
        key = (op, tuple(sorted(ins)) if op != "not" else ins)
        if key in self._hash:
            return self._hash[key]
        out = self._new_net(f"{hint}_{len(self.net_names)}")
        gate = Gate(op, ins, out)
        self.gates.append(gate)
        self._driver[out] = gate
        self._hash[key] = out
        return out

    def NOT(self, x: int, hint: str = "n") -> int:
        if x in self._inverse:
            return self._inverse[x]
        out = self._gate("not", (x,), hint)
        self._inverse[x] = out
        self._inverse[out] = x
        return out

    def AND(self, x: int, y: int, hint: str = "and") -> int:
        if CONST0 in (x, y):
            return CONST0
        if x == CONST1 or x == y:
            return y
        if y == CONST1:
            return x
        if self._inverse.get(x) == y:
            return CONST0
        return self._gate("and", (x, y), hint)

    def OR(self, x: int, y: int, hint: str = "or") -> int:
        if CONST1 in (x, y):
            return CONST1
        if x == CONST0 or x == y:
            return y
        if y == CONST0:
            return x
        if self._inverse.get(x) == y:
            return CONST1
        return self._gate("or", (x, y), hint)

    def XOR(self, x: int, y: int, hint: str = "xor") -> int:
        if x == CONST0:
            return y
        if y == CONST0:
            return x
        if x == CONST1:
            return self.NOT(y, hint)
        if y == CONST1:
            return self.NOT(x, hint)
        if x == y:
            return CONST0
        if self._inverse.get(x) == y:
            return CONST1
        return self._gate("xor", (x, y), hint)

    def half_adder(self, x: int, y: int, hint: str = "ha") -> tuple[int, int]:
        self.tally("half adder")
        return self.XOR(x, y, f"{hint}_s"), self.AND(x, y, f"{hint}_c")

    def full_adder(self, x: int, y: int, z: int, hint: str = "fa") -> tuple[int, int]:
        self.tally("full adder")
        t = self.XOR(x, y, f"{hint}_t")
        total = self.XOR(t, z, f"{hint}_s")
        carry = self.OR(self.AND(x, y, f"{hint}_g"), self.AND(z, t, f"{hint}_p"), f"{hint}_c")
        return total, carry

    # -- clean-up and output -------------------------------------------------------------
    def sweep(self) -> None:
        """Drop gates whose outputs reach no output port (e.g. carries out of the MSB)."""
        live = {n for nets in self.outputs.values() for n in nets}
        kept = []
        for gate in reversed(self.gates):
            if gate.out in live:
                kept.append(gate)
                live.update(gate.ins)
        self.gates = kept[::-1]

    @property
    def gate_count(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for g in self.gates:
            out[g.op] = out.get(g.op, 0) + 1
        return out

    def _ref(self, net: int) -> str:
        name = self.net_names[net]
        return name if net <= CONST1 or "[" in name else f"w_{name}"

    def verilog(self) -> str:
        lines = []
        if self.comment:
            lines += [f"// {line}" if line else "//" for line in self.comment.splitlines()]
        ports = []
        for name, nets in self.inputs.items():
            sign = " signed" if self.signed[name] else ""
            ports.append(f"  input  wire{sign} [{len(nets) - 1}:0] {name}")
        for name, nets in self.outputs.items():
            sign = " signed" if self.signed[name] else ""
            ports.append(f"  output wire{sign} [{len(nets) - 1}:0] {name}")
        lines.append(f"module {self.name} (")
        lines.append(",\n".join(ports))
        lines.append(");")
        if self.gates:
            wires = [self._ref(g.out) for g in self.gates]
            for i in range(0, len(wires), 8):
                lines.append("  wire " + ", ".join(wires[i:i + 8]) + ";")
        for g in self.gates:
            if g.op == "not":
                expr = f"~{self._ref(g.ins[0])}"
            else:
                expr = f" {_SYMBOL[g.op]} ".join(self._ref(n) for n in g.ins)
            lines.append(f"  assign {self._ref(g.out)} = {expr};")
        for name, nets in self.outputs.items():
            parts = ", ".join(self._ref(n) for n in reversed(nets))
            lines.append(f"  assign {name} = {{{parts}}};")
        lines.append("endmodule")
        return "\n".join(lines) + "\n"

    # -- simulation ----------------------------------------------------------------------
    def simulate(self, stimulus: dict[str, np.ndarray], samples: int | None = None
                 ) -> dict[str, np.ndarray]:
        """Evaluate every output for integer operand arrays (one entry per input port)."""
        missing = set(self.inputs) - set(stimulus)
        if missing:
            raise AxonnxError(f"netlist {self.name}: no stimulus for input(s) {sorted(missing)}")
        arrays = {k: np.asarray(v, dtype=np.int64).ravel() for k, v in stimulus.items()}
        samples = samples or len(next(iter(arrays.values())))
        values: dict[int, np.ndarray] = {CONST0: bv.zeros(samples), CONST1: bv.ones(samples)}
        for name, nets in self.inputs.items():
            for net, plane in zip(nets, bv.int_planes(arrays[name], len(nets))):
                values[net] = plane
        for g in self.gates:
            if g.op == "not":
                values[g.out] = ~values[g.ins[0]]
            elif g.op == "and":
                values[g.out] = values[g.ins[0]] & values[g.ins[1]]
            elif g.op == "or":
                values[g.out] = values[g.ins[0]] | values[g.ins[1]]
            else:
                values[g.out] = values[g.ins[0]] ^ values[g.ins[1]]
        return {name: bv.planes_to_int([values[n] for n in nets], samples, self.signed[name])
                for name, nets in self.outputs.items()}
