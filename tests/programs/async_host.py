"""An async Wasmtime embedder in Python: suspended fibers next to a running store, one thread.

    python async_host.py [DEPTH] [FIBERS] [--threads N]

FIBERS stores (1 by default) each call `start(act, DEPTH)` of host_nested.wat
through Wasmtime's async C API (`wasmtime_func_call_async`, polled with
`wasmtime_call_future_poll`); their `hit` import is an async host function
whose continuation never reports ready, so every call stays suspended on its
own fiber stack with DEPTH+1 wasm frames, act = 1, 2, ..., FIBERS. Then one
more store (act = 0) calls `start(0, DEPTH)` synchronously on the main
thread; its `hit` raises SIGTRAP: a debugger stops there, with the running
store's frames on the thread and the suspended ones on their fibers. Every
store holds its own values (1000*act + n in each frame's struct, i31
3*(n+1)+1+1000*act, -7-act at the top), so an object decoded in the wrong
store's heap shows the wrong numbers.

With --garbage-top, the saved stack pointer at the top of one suspended fiber
stack is overwritten with garbage before the stop (that fiber is never
resumed): a debugger must still say something clear about that stack.

With --pulley the wasm runs under Pulley (the engine's target pulley64).

With --threads N, N-1 more threads each run a store of their own (act 100+i)
parked in a host call under DEPTH frames before the stop (for benchmarks).
"""

import ctypes
import sys
import threading
from pathlib import Path

import wasmtime
from wasmtime import _ffi as ffi

sys.path.insert(0, str(Path(__file__).resolve().parent))
from host import block_stop_signal, engine, stop_here  # noqa: E402

HERE = Path(__file__).resolve().parent


@ffi.wasmtime_func_async_continuation_callback_t
def never_ready(env):
    return False  # the host future stays pending: the fiber stays suspended


@ffi.wasmtime_func_async_callback_t
def pending_hit(env, caller, args, nargs, results, nresults, trap_ret, continuation):
    continuation.contents.callback = never_ready
    continuation.contents.env = None
    continuation.contents.finalizer = ctypes.CFUNCTYPE(None, ctypes.c_void_p)()


def async_linker(eng: wasmtime.Engine) -> wasmtime.Linker:
    linker = wasmtime.Linker(eng)
    ty = wasmtime.FuncType([wasmtime.ValType.i32()], [])
    err = ffi.wasmtime_linker_define_async_func(
        linker.ptr(),
        b"host",
        4,
        b"hit",
        3,
        ty.ptr(),
        pending_hit,
        None,
        ctypes.CFUNCTYPE(None, ctypes.c_void_p)(),
    )
    if err:
        raise wasmtime.WasmtimeError._from_ptr(err)
    return linker


def suspend_call(store: wasmtime.Store, func: wasmtime.Func, act: int, depth: int):
    """Call start(act, depth) asynchronously and poll once: it suspends in `hit`."""
    params = (ffi.wasmtime_val_t * 2)()
    for i, v in enumerate((act, depth)):
        params[i] = wasmtime.Val._convert_to_raw(store, wasmtime.ValType.i32(), v)
    results = (ffi.wasmtime_val_t * 1)()
    trap = ctypes.POINTER(ffi.wasm_trap_t)()
    error = ctypes.POINTER(ffi.wasmtime_error_t)()
    fut = ffi.wasmtime_func_call_async(
        store._context(),
        ctypes.byref(func._func),
        params,
        2,
        results,
        1,
        ctypes.byref(trap),
        ctypes.byref(error),
    )
    if ffi.wasmtime_call_future_poll(fut):
        raise SystemExit(f"async call of store {act} finished: expected it to stay pending")
    return fut, params, results, trap, error  # keep everything alive


def instantiate_async(linker, store: wasmtime.Store, module: wasmtime.Module) -> wasmtime.Instance:
    instance = ffi.wasmtime_instance_t()
    trap = ctypes.POINTER(ffi.wasm_trap_t)()
    error = ctypes.POINTER(ffi.wasmtime_error_t)()
    fut = ffi.wasmtime_linker_instantiate_async(
        linker.ptr(),
        store._context(),
        module.ptr(),
        ctypes.byref(instance),
        ctypes.byref(trap),
        ctypes.byref(error),
    )
    while not ffi.wasmtime_call_future_poll(fut):
        pass
    ffi.wasmtime_call_future_delete(fut)
    if error:
        raise wasmtime.WasmtimeError._from_ptr(error)
    return wasmtime.Instance._from_raw(instance)


def suspend_fibers(eng: wasmtime.Engine, module: wasmtime.Module, acts, depth: int) -> list:
    """One store per act, each with start(act, depth) suspended on its own fiber stack; the
    returned list keeps them alive (never resumed)."""
    linker = async_linker(eng)
    keep = []
    for act in acts:
        store = wasmtime.Store(eng)
        inst = instantiate_async(linker, store, module)
        keep.append((store, inst, suspend_call(store, inst.exports(store)["start"], act, depth)))
    return keep


def parked_thread(eng, module, act, depth, ready, release):
    store = wasmtime.Store(eng)

    def hit(a):
        ready.release()
        release.wait()

    linker = wasmtime.Linker(eng)
    linker.define_func("host", "hit", wasmtime.FuncType([wasmtime.ValType.i32()], []), hit)
    inst = linker.instantiate(store, module)
    inst.exports(store)["start"](store, act, depth)


def garbage_top() -> int:
    """Overwrite the saved SP at the top of one suspended fiber stack of this process (an
    anonymous read-write mapping above a guard page whose top-8 word is 0 and top-16 word
    points into it)."""
    with open("/proc/self/maps") as f:
        lines = f.read().splitlines()
    guard_end = None
    for line in lines:
        parts = line.split()
        lo, hi = (int(x, 16) for x in parts[0].split("-"))
        below, guard_end = guard_end, hi if parts[1].startswith("---") else None
        if len(parts) > 5 or not parts[1].startswith("rw") or below != lo:
            continue  # a fiber stack is anonymous, read-write, above its guard page
        saved = ctypes.c_uint64.from_address(hi - 16)
        if ctypes.c_uint64.from_address(hi - 8).value == 0 and lo <= saved.value < hi - 16:
            saved.value = 0x4141414141414141
            return hi
    raise SystemExit("no suspended fiber stack found to damage")


def main(argv):
    garbage = "--garbage-top" in argv
    pulley = "--pulley" in argv
    argv = [a for a in argv if a not in ("--garbage-top", "--pulley")]
    threads = 1
    if "--threads" in argv:
        i = argv.index("--threads")
        threads = int(argv[i + 1])
        del argv[i : i + 2]
    depth = int(argv[1]) if len(argv) > 1 else 3
    fibers = int(argv[2]) if len(argv) > 2 else 1
    block_stop_signal()
    eng = engine(pulley)
    module = wasmtime.Module(eng, (HERE / "host_nested.wat").read_text())
    keep = suspend_fibers(eng, module, range(1, fibers + 1), depth)  # noqa: F841 (alive)
    print(f"host: {fibers} async call(s) suspended", flush=True)
    if garbage:
        print(f"host: damaged the top of the fiber stack ending at {garbage_top():#x}", flush=True)

    ready = threading.Semaphore(0)
    release = threading.Event()
    workers = [
        threading.Thread(
            target=parked_thread, args=(eng, module, 100 + i, depth, ready, release), daemon=True
        )
        for i in range(threads - 1)
    ]
    for t in workers:
        t.start()
    for _ in workers:
        ready.acquire()

    store = wasmtime.Store(eng)

    def hit(act):
        print("host: stopping with SIGTRAP", flush=True)
        stop_here()

    sync_linker = wasmtime.Linker(eng)
    sync_linker.define_func("host", "hit", wasmtime.FuncType([wasmtime.ValType.i32()], []), hit)
    inst = sync_linker.instantiate(store, module)
    print("result", inst.exports(store)["start"](store, 0, depth), flush=True)
    release.set()


if __name__ == "__main__":
    main(sys.argv)
