"""A Python embedder (wasmtime package: DRC collector) running heap_graph.wat.

    python heap_host.py PROGRAM.wat [--gc]

The module's `$stop` function becomes a call of the host import `host.stop`,
which stops the process with SIGTRAP (see host.py) while `$hold` keeps the
graph live. With --gc the store collects garbage first (from the host, inside
the call: the roots stay on the wasm stack) and the process stops after it.
"""

import sys
from pathlib import Path

import wasmtime

sys.path.insert(0, str(Path(__file__).resolve().parent))
from host import block_stop_signal, engine, stop_here  # noqa: E402


def main(argv):
    path = argv[1]
    block_stop_signal()
    eng = engine()
    store = wasmtime.Store(eng)
    wat = Path(path).read_text()
    module = wasmtime.Module(eng, wat)

    def stop():
        if "--gc" in argv:
            store.gc()
        print("host: stopping with SIGTRAP", flush=True)
        stop_here()

    func = wasmtime.Func(store, wasmtime.FuncType([], []), stop)
    inst = wasmtime.Instance(store, module, [func])
    print("result", inst.exports(store)["main"](store), flush=True)


if __name__ == "__main__":
    main(sys.argv)
