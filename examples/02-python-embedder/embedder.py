"""Example 2: a Wasmtime embedder in Python that stops inside a host function.

Run it under a debugger (see README.md); on its own (STOP=0) it just prints the
result. The host import `log` raises SIGTRAP, which is where a debugger stops,
with the wasm frames below the host frames.
"""

import os
import signal
from pathlib import Path

import wasmtime

# Threads started from here on (Wasmtime's compiler threads among them) inherit a
# blocked SIGTRAP, so the one log() raises is taken by the thread that runs wasm.
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTRAP})

cfg = wasmtime.Config()
cfg.wasm_gc = True
cfg.wasm_function_references = True
engine = wasmtime.Engine(cfg)
store = wasmtime.Store(engine)
module = wasmtime.Module(engine, (Path(__file__).parent / "scene.wat").read_text())


def log(node_id):
    print(f"host: log({node_id}) called from wasm", flush=True)
    if os.environ.get("STOP", "1") == "1":
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTRAP})
        os.kill(os.getpid(), signal.SIGTRAP)  # a debugger stops here
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTRAP})


log_func = wasmtime.Func(store, wasmtime.FuncType([wasmtime.ValType.i32()], []), log)
instance = wasmtime.Instance(store, module, [log_func])
render = instance.exports(store)["render"]
print("result", render(store, 4))
