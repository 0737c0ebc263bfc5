"""A Wasmtime embedder (Python, wasmtime 50) with many modules loaded, stopped by SIGTRAP.

    python many_host.py wasm N_MODULES [DEPTH]   wasm in module 0 -> host -> wasm in the
                                                 last module -> host: SIGTRAP (2 activations,
                                                 DEPTH+1 wasm frames each)
    python many_host.py host N_MODULES LEVELS    the same modules loaded, then a host-only
                                                 recursion (Python through C builtins, a
                                                 few native frames per level): SIGTRAP

Every module is compiled in-process (an anonymous image mapping each), distinct
by a constant so that none is shared. With a fourth argument DIR, each module is
serialized to DIR/mod_K.cwasm once and loaded from that file (file-backed
mappings) instead.
"""

import os
import sys
from pathlib import Path

import wasmtime

# The stop the tests' Python host uses (SIGTRAP to this thread only).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "programs"))
from host import block_stop_signal, stop_here  # noqa: E402

WAT = """(module
  (type $node (struct (field $v i32) (field $next (ref null $node))))
  (import "host" "hit" (func $hit (param i32)))
  (func $build (param $n i32) (param $act i32) (param $prev (ref null $node)) (result i32)
    (local $s (ref $node))
    (local.set $s (struct.new $node (i32.add (i32.const {k}) (local.get $n)) (local.get $prev)))
    (if (i32.eqz (local.get $n)) (then (call $hit (local.get $act)) (return (i32.const 0))))
    (i32.add (call $build (i32.sub (local.get $n) (i32.const 1)) (local.get $act) (local.get $s))
             (struct.get $node $v (local.get $s))))
  (func (export "start") (param $act i32) (param $depth i32) (result i32)
    (call $build (local.get $depth) (local.get $act) (ref.null $node)))
)
"""


def engine():
    cfg = wasmtime.Config()
    cfg.wasm_gc = True
    cfg.wasm_function_references = True
    cfg.wasm_reference_types = True
    cfg.memory_reservation = 16 << 20
    cfg.memory_guard_size = 64 << 10
    cfg.memory_reservation_for_growth = 0
    return wasmtime.Engine(cfg)


def stop():
    print("host: stopping with SIGTRAP", flush=True)
    stop_here()


def host_recursion(levels):
    def rec(n):
        if n == 0:
            stop()
            return 0
        return sum(map(rec, [n - 1]))

    return rec(levels)


def main(argv):
    mode, nmod = argv[1], int(argv[2])
    arg = int(argv[3]) if len(argv) > 3 else 3
    cwasm_dir = argv[4] if len(argv) > 4 else None
    block_stop_signal()
    eng = engine()
    store = wasmtime.Store(eng)
    starts = []

    def hit(act):
        if act == 0:
            starts[-1](store, 1, arg)
        else:
            stop()

    func = wasmtime.Func(store, wasmtime.FuncType([wasmtime.ValType.i32()], []), hit)
    for k in range(nmod):
        if cwasm_dir:
            path = os.path.join(cwasm_dir, f"mod_{k}.cwasm")
            if not os.path.exists(path):
                with open(path, "wb") as f:
                    f.write(wasmtime.Module(eng, WAT.replace("{k}", str(1000 * k))).serialize())
            module = wasmtime.Module.deserialize_file(eng, path)
        else:
            module = wasmtime.Module(eng, WAT.replace("{k}", str(1000 * k)))
        inst = wasmtime.Instance(store, module, [func])
        starts.append(inst.exports(store)["start"])
    print(f"host: {nmod} modules loaded", flush=True)
    if mode == "wasm":
        print("result", starts[0](store, 0, arg), flush=True)
    else:
        print("result", host_recursion(arg), flush=True)


if __name__ == "__main__":
    main(sys.argv)
