"""Run inside GDB (`python exec(...)`) or LLDB (`script exec(...)`) at the stop of
tests/programs/threads.py: damage the runtime state of three stores, for the bad cases.

  act 10: its VMContext's store context pointer -> unmapped memory (store unreadable)
  act 20: its store context's exit/entry records -> garbage (nothing proves its store)
  act 30: its store context's records zeroed, and act 40's vmctx planted in its host
          frames: two stores explain its refs equally (heap ambiguous)
Threads 40, 1 and 2 are left alone. The offsets come from the plugin's own table.
"""

import json
import struct

from wasmtime_stackmaps.runtime import store_layout_for

try:
    import gdb

    def cmd(c):
        return gdb.execute(c, to_string=True)

    def write(addr, data):
        gdb.selected_inferior().write_memory(addr, data)

    def read(addr, n):
        return bytes(gdb.selected_inferior().read_memory(addr, n))

except ImportError:
    import lldb

    def cmd(c):
        ret = lldb.SBCommandReturnObject()
        lldb.debugger.GetCommandInterpreter().HandleCommand(c, ret)
        return ret.GetOutput()

    def _process():
        return lldb.debugger.GetSelectedTarget().GetProcess()

    def write(addr, data):
        err = lldb.SBError()
        _process().WriteMemory(addr, data, err)
        assert err.Success(), err

    def read(addr, n):
        err = lldb.SBError()
        data = _process().ReadMemory(addr, n, err)
        assert err.Success(), err
        return data


def _acts(doc):
    out = {}
    for th in doc["threads"]:
        for i, a in enumerate(th["activations"]):
            frames = [f for f in th["frames"] if f["activation"] == i]
            i31 = [s["value"] for f in frames for s in f["slots"] if s["kind"] == "i31"]
            if i31:
                out[-7 - i31[-1]] = (a["heap"], frames)
    return out


def corrupt():
    acts = _acts(json.loads(cmd("stackmap bt -a --json")))
    # Every VMContext of act 10's store seen from its stack (a store has several).
    h10, frames = acts[10]
    lo = min(f["fp"] for f in frames) - 64 * 1024
    stack = read(lo, max(f["fp"] for f in frames) + 4096 - lo)
    for i in range(0, len(stack), 8):
        (v,) = struct.unpack_from("<Q", stack, i)
        try:
            head = read(v, 16) if v % 8 == 0 and v > 0x10000 else b""
        except Exception:  # not a pointer to readable memory
            continue
        if head[:4] == b"core" and struct.unpack_from("<Q", head, 8)[0] == h10["store_context"]:
            write(v + 8, struct.pack("<Q", 0x10000000))
    lay = store_layout_for(acts[20][0]["wasmtime_major"])
    for act, word in ((20, 0x4141414141414140), (30, 0)):
        s = acts[act][0]["store_context"]
        for off in (lay.exit_fp, lay.exit_pc, lay.entry_fp):
            write(s + off, struct.pack("<Q", word))
    # A zero word in the host frames just below act 30's innermost wasm frame.
    low = min(f["fp"] for f in acts[30][1])
    data = read(low - 1024, 1024 - 64)
    at = max(i for i in range(0, len(data), 8) if data[i : i + 8] == bytes(8))
    write(low - 1024 + at, struct.pack("<Q", acts[40][0]["vmctx"]))
    print("corrupted: 10 unreadable, 20 garbage, 30 ambiguous", flush=True)


corrupt()
