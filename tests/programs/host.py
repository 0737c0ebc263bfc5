"""A Wasmtime embedder in Python that stops itself inside a host function.

    python host.py inproc [DEPTH] [ACTIVATIONS]   compile host_nested.wat in-process
    python host.py cwasm FILE [DEPTH] [ACTIVATIONS]  load a serialized image from FILE
                                                  (written first if it does not exist)
    ... --gc          after the last stop: collect garbage (store.gc()), stop again
    ... --stop-each   also stop in every outer activation before it nests the next
    ... --pulley      run the wasm under Pulley (the engine's target pulley64)

wasm start(0, DEPTH) -> host hit(0) -> start(1, DEPTH) -> ... -> hit(ACTIVATIONS-1),
which raises SIGTRAP: a debugger stops there with ACTIVATIONS wasm activations
on the thread, each DEPTH+1 frames deep.
"""

import os
import signal
import sys
from pathlib import Path

import wasmtime

HERE = Path(__file__).resolve().parent


def block_stop_signal():
    """Call first: every thread started after it (Wasmtime's compiler threads among
    them) inherits a blocked SIGTRAP, so the one stop_here() raises reaches its thread."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTRAP})


def stop_here():
    """SIGTRAP to this very thread: a debugger stops here, with the wasm frames below.

    kill(getpid()) is process-directed: another thread could take it while this
    one runs on out of the wasm frames. Only this thread unblocks it, and only
    for the moment of the kill (a kill, not tgkill: LLDB calls that stop a
    trace, not a crash, and goes on with its batch commands).
    """
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTRAP})
    os.kill(os.getpid(), signal.SIGTRAP)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTRAP})


def _set(cfg: wasmtime.Config, name: str, value) -> None:
    """`cfg.<name> = value`; for Python packages older than 46, which lack the GC and
    memory properties, through the C API setter their library already exports."""
    if hasattr(type(cfg), name):
        setattr(cfg, name, value)
    else:
        from wasmtime import _ffi

        getattr(_ffi, f"wasmtime_config_{name}_set")(cfg.ptr(), value)


def engine(pulley: bool = False) -> wasmtime.Engine:
    cfg = wasmtime.Config()
    if pulley:
        cfg.target = "pulley64"  # interpreted: Pulley bytecode, run by Wasmtime's interpreter
    _set(cfg, "wasm_gc", True)
    _set(cfg, "wasm_function_references", True)
    _set(cfg, "wasm_reference_types", True)
    # Small reservations keep core files small (the default reserves GiBs that
    # gcore would write out as zeros).
    _set(cfg, "memory_reservation", 16 << 20)
    _set(cfg, "memory_guard_size", 64 << 10)
    _set(cfg, "memory_reservation_for_growth", 0)
    return wasmtime.Engine(cfg)


def main(argv):
    gc_between = "--gc" in argv
    stop_each = "--stop-each" in argv
    pulley = "--pulley" in argv
    argv = [a for a in argv if a not in ("--gc", "--stop-each", "--pulley")]
    mode = argv[1]
    rest = argv[2:]
    block_stop_signal()
    eng = engine(pulley)
    wat = (HERE / "host_nested.wat").read_text()
    if mode == "inproc":
        module = wasmtime.Module(eng, wat)
    elif mode == "cwasm":
        path = rest.pop(0)
        if not os.path.exists(path):
            Path(path).write_bytes(wasmtime.Module(eng, wat).serialize())
        module = wasmtime.Module.deserialize_file(eng, path)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    depth = int(rest[0]) if rest else 3
    activations = int(rest[1]) if len(rest) > 1 else 2
    store = wasmtime.Store(eng)
    holder = {}

    def hit(act):
        if act + 1 < activations:
            if stop_each:
                print(f"host: stopping in activation {act}", flush=True)
                stop_here()
            holder["start"](store, act + 1, depth)
        else:
            print("host: stopping with SIGTRAP", flush=True)
            stop_here()
            if gc_between:
                store.gc()  # a copying collector moves every live object: roots change
                print("host: collected; stopping again", flush=True)
                stop_here()

    func = wasmtime.Func(store, wasmtime.FuncType([wasmtime.ValType.i32()], []), hit)
    inst = wasmtime.Instance(store, module, [func])
    holder["start"] = inst.exports(store)["start"]
    print("result", holder["start"](store, 0, depth), flush=True)


if __name__ == "__main__":
    main(sys.argv)
