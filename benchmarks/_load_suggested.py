"""Load the GDB plugin with one change applied at run time (for bench_load.py):
core/commands.py `build_parser()` built once and reused, instead of once per
`stackmap` subcommand registered (gdb_plugin/stackmaps.py `_Sub.__init__` asks
each subcommand's --help, which builds the whole parser, 7 times at load).
The files are not modified."""

import functools
import importlib.util
import os

import gdb

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location(
    "wasmtime_stackmaps_bootstrap", os.path.join(REPO, "core", "bootstrap.py")
)
boot = importlib.util.module_from_spec(spec)
spec.loader.exec_module(boot)
boot.load(REPO)
import wasmtime_stackmaps.commands as C  # noqa: E402

C.build_parser = functools.lru_cache(maxsize=None)(C.build_parser)
gdb.execute(f"source {os.path.join(REPO, 'gdb_plugin', 'stackmaps.py')}")
