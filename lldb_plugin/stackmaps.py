"""LLDB plugin: `command script import /path/to/lldb_plugin/stackmaps.py`.

Loads the core (`wasmtime_stackmaps`: this checkout's `core/` and `.venv`, or the
installed package and its environment) through its bootstrap, then the LLDB
adapter over it (lldb_plugin/adapter.py): the Target protocol over LLDB's SB API
and the `stackmap` container command (`frame`, `bt`, `images`, `load`, ...),
whose parsing, walking and output all come from the core, exactly as in GDB.

A stop hook gives LLDB each image's symbols (core/symfile.py): its own `bt`,
`frame select` and `disassemble` name wasm frames.
"""

import os
import runpy

# Where the bootstrap is: see gdb_plugin/stackmaps.py (checkout, or installed package).
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_BOOT = os.path.join(_ROOT, "core", "bootstrap.py")
_BOOT = _BOOT if os.path.isfile(_BOOT) else os.path.join(_ROOT, "bootstrap.py")
adapter = runpy.run_path(_BOOT)["load_adapter"](__file__, "wasmtime_stackmaps_lldb")
if adapter is not None:
    # LLDB finds a command's class by its dotted name from this module.
    globals().update({cls.__name__: cls for cls in adapter.COMMAND_CLASSES.values()})
    StopHook = adapter.StopHook  # `target stop-hook add -P <this module>.StopHook`


def __lldb_init_module(debugger, internal_dict):
    if adapter is None:
        return  # the bootstrap printed why; LLDB stays usable without the command
    adapter.install(debugger, __name__)
