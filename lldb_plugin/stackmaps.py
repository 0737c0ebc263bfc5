"""LLDB plugin: `command script import /path/to/lldb_plugin/stackmaps.py`.

Loads the core (`wasmtime_stackmaps`: this checkout's `core/` and `.venv`, or the
installed package and its environment), then
the LLDB adapter over it (lldb_plugin/adapter.py): the Target protocol over LLDB's
SB API and the `stackmap` container command (`frame`, `bt`, `images`, `load`, ...),
whose parsing, walking and output all come from the core, exactly as in GDB.

A stop hook gives LLDB each image's symbols (core/symfile.py): its own `bt`,
`frame select` and `disassemble` name wasm frames.
"""

import importlib.util
import os
import runpy
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
# The directory above this one: a repo checkout (core/ is the package) or the
# installed package itself (the plugins ship inside wasmtime_stackmaps/).
_ROOT = os.path.dirname(_HERE)
_BOOT = os.path.join(_ROOT, "core", "bootstrap.py")
if not os.path.isfile(_BOOT):
    _BOOT = os.path.join(_ROOT, "bootstrap.py")
# The core becomes importable once the bootstrap (our own file) has set up the paths;
# it prints one line and gives None when it cannot.
wsm = runpy.run_path(_BOOT)["load"](_ROOT)
adapter = None
if wsm is not None:
    _spec = importlib.util.spec_from_file_location(
        "wasmtime_stackmaps_lldb", os.path.join(_HERE, "adapter.py")
    )
    adapter = importlib.util.module_from_spec(_spec)
    sys.modules[_spec.name] = adapter
    _spec.loader.exec_module(adapter)
    # LLDB finds a command's class by its dotted name from this module.
    globals().update({cls.__name__: cls for cls in adapter.COMMAND_CLASSES.values()})
    StopHook = adapter.StopHook  # `target stop-hook add -P <this module>.StopHook`


def __lldb_init_module(debugger, internal_dict):
    if adapter is None:
        return  # bootstrap printed why; LLDB stays usable without the command
    adapter.install(debugger, __name__)
