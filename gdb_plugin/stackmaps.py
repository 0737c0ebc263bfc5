"""GDB plugin: `source /path/to/gdb_plugin/stackmaps.py`.

Loads the core (`wasmtime_stackmaps`: this checkout's `core/` and `.venv`, or the
installed package and its environment), then
the GDB adapter over it (gdb_plugin/adapter.py): the Target protocol over `gdb`,
the `stackmap` commands, an unwinder that lets GDB's own `bt` walk through wasm
frames, and a frame filter that names them.
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
if wsm is not None:
    _spec = importlib.util.spec_from_file_location(
        "wasmtime_stackmaps_gdb", os.path.join(_HERE, "adapter.py")
    )
    adapter = importlib.util.module_from_spec(_spec)
    sys.modules[_spec.name] = adapter
    _spec.loader.exec_module(adapter)
    adapter.install()
