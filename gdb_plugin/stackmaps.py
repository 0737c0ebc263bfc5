"""GDB plugin: `source /path/to/gdb_plugin/stackmaps.py`.

Loads the core (`wasmtime_stackmaps`: this checkout's `core/` and `.venv`, or the
installed package and its environment) through its bootstrap, then the GDB
adapter over it (gdb_plugin/adapter.py): the Target protocol over `gdb`, the
`stackmap` commands, an unwinder that lets GDB's own `bt` walk through wasm
frames, and a frame filter that names them.
"""

import os
import runpy

# The bootstrap is core/bootstrap.py in a checkout, and wasmtime_stackmaps/bootstrap.py
# (next to this plugin's directory) when installed: it loads the core and the adapter,
# or prints one line why not and gives None.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_BOOT = os.path.join(_ROOT, "core", "bootstrap.py")
_BOOT = _BOOT if os.path.isfile(_BOOT) else os.path.join(_ROOT, "bootstrap.py")
adapter = runpy.run_path(_BOOT)["load_adapter"](__file__, "wasmtime_stackmaps_gdb")
if adapter is not None:
    adapter.install()
