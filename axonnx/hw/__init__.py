"""Hardware characterization of multipliers: a structural Verilog generator for ROUP, a
bit-parallel netlist simulator, Liberty reading, a Yosys driver and activity-based energy."""

from axonnx.hw.generator import module_name, roup_netlist, roup_verilog
from axonnx.hw.netlist import Netlist

__all__ = ["Netlist", "module_name", "roup_netlist", "roup_verilog"]
