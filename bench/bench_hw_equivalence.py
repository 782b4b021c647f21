"""Exhaustive equivalence of the generated ROUP hardware with the golden model.

For every distinct 8-bit ROUP(P,R) configuration and a set of explicit rounding vectors,
all 65,536 operand pairs are checked at up to four levels:

1. the generator's gate netlist, simulated bit-parallel (always);
2. the Verilog text read and synthesized by Yosys to generic gates, simulated (if Yosys);
3. the Verilog text simulated by Icarus Verilog with a testbench (if iverilog and --iverilog);
4. the netlist mapped onto a Liberty library by ``abc -liberty`` (if --liberty or the
   Nangate45 file under $AXONNX_DATA is found).

Run: ``python bench/bench_hw_equivalence.py [--iverilog] [--liberty LIB] [--wide]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from axonnx.hw import roup_netlist, roup_verilog
from axonnx.hw.characterize import distinct_configurations, exhaustive_operands
from axonnx.hw.mapped import MappedNetlist
from axonnx.hw.yosys import find_yosys, synthesize
from axonnx.multipliers import ROUP

EXPLICIT = [(0, (3, 3, 1, 1)), (0, (0, 2, 0, 1)), (1, (3, 1, 2)), (1, (5, 5, 5)), (2, (8, 1)),
            (0, (8, 8, 8, 7)), (0, (2, 4, 6, 8)), (2, (0, 3))]

TESTBENCH = """
module tb;
  reg signed [7:0] a, b;
  wire signed [15:0] p;
  integer i, j, f;
  {top} dut(.a(a), .b(b), .p(p));
  initial begin
    f = $fopen("{out}", "w");
    for (i = -128; i < 128; i = i + 1)
      for (j = -128; j < 128; j = j + 1) begin
        a = i; b = j; #1;
        $fwrite(f, "%0d\\n", p);
      end
    $fclose(f);
    $finish;
  end
endmodule
"""


def iverilog_products(m: ROUP, tmp: Path) -> np.ndarray:
    src = tmp / "dut.v"
    src.write_text(roup_verilog(m, "dut"))
    tb = tmp / "tb.v"
    out = tmp / "products.txt"
    tb.write_text(TESTBENCH.replace("{top}", "dut").replace("{out}", str(out)))
    subprocess.run(["iverilog", "-o", str(tmp / "sim"), str(src), str(tb)], check=True)
    subprocess.run(["vvp", "-n", str(tmp / "sim")], check=True, capture_output=True)
    return np.loadtxt(out, dtype=np.int64)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iverilog", action="store_true", help="also simulate with Icarus Verilog")
    parser.add_argument("--liberty", help="also check the netlist mapped onto this library")
    parser.add_argument("--wide", action="store_true", help="also sample N = 4, 6, 10, 12, 16")
    args = parser.parse_args()

    data = Path(os.environ.get("AXONNX_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
    liberty = args.liberty or (str(data / "nangate45" / "nangate45_typ.lib.gz")
                               if (data / "nangate45" / "nangate45_typ.lib.gz").is_file() else None)
    library = None
    if liberty:
        from axonnx.hw.liberty import read_liberty

        library = read_liberty(liberty)
    use_yosys = find_yosys() is not None
    use_iverilog = args.iverilog and shutil.which("iverilog") is not None
    configs = [m for m, _ in distinct_configurations(8)]
    configs += [ROUP(p, None, widths=w) for p, w in EXPLICIT]
    a, b = exhaustive_operands(8)
    failures = 0
    times = {"netlist": 0.0, "yosys": 0.0, "iverilog": 0.0, "mapped": 0.0}
    print(f"{len(configs)} configurations x {a.size} pairs; yosys={'yes' if use_yosys else 'no'} "
          f"iverilog={'yes' if use_iverilog else 'no'} liberty={Path(liberty).name if liberty else 'no'}")
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for m in configs:
            golden = m.multiply(a, b)
            checks = []
            t = time.perf_counter()
            checks.append(("netlist", np.array_equal(roup_netlist(m).simulate({"a": a, "b": b})["p"], golden)))
            times["netlist"] += time.perf_counter() - t
            if use_yosys:
                t = time.perf_counter()
                syn = synthesize(roup_verilog(m), liberty=None, text=True)
                net = MappedNetlist(syn.module, None, syn.top)
                checks.append(("yosys", np.array_equal(net.port_values(net.simulate({"a": a, "b": b}), "p"), golden)))
                times["yosys"] += time.perf_counter() - t
            if use_iverilog:
                t = time.perf_counter()
                checks.append(("iverilog", np.array_equal(iverilog_products(m, tmp), golden)))
                times["iverilog"] += time.perf_counter() - t
            if library is not None:
                t = time.perf_counter()
                syn = synthesize(roup_verilog(m), liberty=liberty, text=True)
                net = MappedNetlist(syn.module, library, syn.top)
                checks.append(("mapped", np.array_equal(net.port_values(net.simulate({"a": a, "b": b}), "p"), golden)))
                times["mapped"] += time.perf_counter() - t
            ok = all(c for _, c in checks)
            failures += not ok
            print(f"  {m.name:20s} " + " ".join(f"{k}={'ok' if c else 'MISMATCH'}" for k, c in checks))
    if args.wide:
        rng = np.random.default_rng(0)
        for n in (4, 6, 10, 12, 16):
            lo, hi = -(1 << (n - 1)), 1 << (n - 1)
            if n <= 6:
                wa, wb = exhaustive_operands(n)
            else:
                wa, wb = rng.integers(lo, hi, 1 << 16), rng.integers(lo, hi, 1 << 16)
            for p in range(n // 2):
                for r in (0, 1, n // 2, n):
                    m = ROUP(p, r, bits=n)
                    ok = np.array_equal(roup_netlist(m).simulate({"a": wa, "b": wb})["p"], m.multiply(wa, wb))
                    failures += not ok
                    if not ok:
                        print(f"  {m.name}: MISMATCH")
            print(f"  N={n}: {'exhaustive' if n <= 6 else 'sampled'} checks done")
    print("time per level (s): " + ", ".join(f"{k} {v:.1f}" for k, v in times.items() if v))
    print("all equivalent" if not failures else f"{failures} configuration(s) differ")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
