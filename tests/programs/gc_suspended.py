"""Collections of a store whose async call is suspended (tests/plugins/test_gcwatch.py).

    python gc_suspended.py [DEPTH] [COLLECTIONS]

Two stores (act = 1 and act = 2) each have `start(act, DEPTH)` of host_nested.wat
suspended on its own fiber stack (see async_host.py: their `hit` never reports
ready), so each fiber holds DEPTH+1 $node structs (v = 1000*act + n) live in its
frames. The process stops (SIGTRAP) once both are suspended, then the host asks
Wasmtime to collect store 1 (`wasmtime_context_gc`, the Python package's
default collector: DRC) COLLECTIONS times, printing "host: collected store 1"
after each, and stops again. No wasm runs on the thread meanwhile: the only wasm
roots of the collected store are on its suspended fiber.
"""

import sys
from pathlib import Path

import wasmtime

sys.path.insert(0, str(Path(__file__).resolve().parent))
from async_host import HERE, suspend_fibers  # noqa: E402
from host import block_stop_signal, engine, stop_here  # noqa: E402


def main(argv: list[str]) -> None:
    depth = int(argv[1]) if len(argv) > 1 else 3
    collections = int(argv[2]) if len(argv) > 2 else 3
    block_stop_signal()
    eng = engine()
    module = wasmtime.Module(eng, (HERE / "host_nested.wat").read_text())
    keep = suspend_fibers(eng, module, (1, 2), depth)
    print("host: 2 async calls suspended; stopping", flush=True)
    stop_here()
    store = keep[0][0]
    for _ in range(collections):
        store.gc()
        print("host: collected store 1", flush=True)
    print("host: stopping again", flush=True)
    stop_here()


if __name__ == "__main__":
    main(sys.argv)
