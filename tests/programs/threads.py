"""A Wasmtime embedder with many threads, each with its own Store, all parked in host calls.

    python threads.py [--threads N] [--depth D] [--nested-stores] [--no-stop] [--fibers F]

Thread k (k = 0..N-1) makes its own Store and instance of host_nested.wat and
calls start(act = 10*(k+1), D): a GC recursion D+1 frames deep whose frames hold
$node structs (v = 1000*act + n) and i31s (3*(n+1)+1+1000*act, the outermost
-7-act), then the host import hit(act), where the thread parks. With
--nested-stores the main thread also runs host -> wasm in store A (act 1) ->
host -> wasm in store B (act 2) -> host, and parks there. When every thread is
parked, the last one raises SIGTRAP: a debugger stops with all of them in wasm
activations, each in its own store and GC heap. With --fibers F the main thread
first suspends F async calls, each in a store of its own (act = 100000+i),
on their fiber stacks (async_host.suspend_fibers).

The work per thread is `run_in_store(engine, module, act, depth, park)`: hosts
that add other shapes (async fibers...) reuse it and `park_all`.
"""

import argparse
import sys
import threading
from pathlib import Path

import wasmtime

sys.path.insert(0, str(Path(__file__).resolve().parent))
from host import HERE, block_stop_signal, engine, stop_here  # noqa: E402


def run_in_store(eng, module, act: int, depth: int, park, nested: list[int] = ()) -> int:
    """start(act, depth) in a new Store; its hit() calls `park()`, or first nests the next
    act of `nested` in another new Store (host -> wasm in A -> host -> wasm in B)."""
    store = wasmtime.Store(eng)
    holder = {}

    def hit(a):
        if nested:
            run_in_store(eng, module, nested[0], depth, park, nested[1:])
        else:
            park()

    func = wasmtime.Func(store, wasmtime.FuncType([wasmtime.ValType.i32()], []), hit)
    inst = wasmtime.Instance(store, module, [func])
    holder["start"] = inst.exports(store)["start"]
    return holder["start"](store, act, depth)


def park_all(parties: int, stop: bool):
    """A park() for `parties` threads: each waits; the last to arrive stops the process."""
    barrier = threading.Barrier(parties)
    forever = threading.Event()

    def park():
        if barrier.wait() == 0:
            print(f"threads: {parties} parked; stopping with SIGTRAP", flush=True)
            if stop:
                stop_here()
        forever.wait()

    return park


def main(argv):
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--nested-stores", action="store_true")
    p.add_argument("--no-stop", action="store_true", help="park without SIGTRAP (attach)")
    p.add_argument("--fibers", type=int, default=0, help="suspended async calls, one store each")
    args = p.parse_args(argv[1:])
    block_stop_signal()
    eng = engine()
    module = wasmtime.Module(eng, (HERE / "host_nested.wat").read_text())
    if args.fibers:
        from async_host import suspend_fibers

        fibers = suspend_fibers(eng, module, range(100000, 100000 + args.fibers), args.depth)
        print(f"threads: {len(fibers)} async calls suspended", flush=True)
    park = park_all(args.threads + args.nested_stores, not args.no_stop)
    threads = [
        threading.Thread(
            target=run_in_store, args=(eng, module, 10 * (k + 1), args.depth, park), daemon=True
        )
        for k in range(args.threads)
    ]
    for t in threads:
        t.start()
    if args.nested_stores:
        run_in_store(eng, module, 1, args.depth, park, [2])
    for t in threads:
        t.join()


if __name__ == "__main__":
    main(sys.argv)
