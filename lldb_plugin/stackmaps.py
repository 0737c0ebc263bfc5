"""LLDB plugin: `command script import /path/to/lldb_plugin/stackmaps.py`.

Loads the core (`wasmtime_stackmaps`, from this repo's `core/` and `.venv`), then
the LLDB adapter over it (lldb_plugin/adapter.py): the Target protocol over LLDB's
SB API and the `stackmap` container command (`frame`, `bt`, `images`, `load`, ...),
whose parsing, walking and output all come from the core, exactly as in GDB.

LLDB 19 has no Python unwinder API and no scripted frame provider, so LLDB's
own `bt` is not changed: the wasm frames are named by `stackmap bt` only.
"""

import importlib.util
import os
import runpy
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.dirname(_HERE)
# The core becomes importable once the bootstrap (our own file) has set up the paths;
# it prints one line and gives None when it cannot.
wsm = runpy.run_path(os.path.join(_REPO, "core", "bootstrap.py"))["load"](_REPO)
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


def __lldb_init_module(debugger, internal_dict):
    if adapter is None:
        return  # bootstrap printed why; LLDB stays usable without the command
    adapter.install(debugger, __name__)
