"""Every activation in its own store: many threads, nested stores, wasm offsets, bad cases.

tests/programs/threads.py runs 4 threads, each with its own Store, each parked in
a host call under a GC recursion with its own values (act = 10, 20, 30, 40: i31s
3*(n+1)+1+1000*act, structs v = 1000*act + n), and on the main thread host ->
wasm in store A (act 1) -> host -> wasm in store B (act 2) -> host. Stores of the
same module lay objects out alike (the same refs in each heap): only the tie of
each activation to its own store gives each thread its own values.
"""

import re
import subprocess

import pytest

from tests.plugins import driver
from tests.plugins.common import (
    CLI_FLAGS,
    PROGRAMS,
    PY,
    build_frames,
    check_host_activations,
    check_structs,
    cli_program,
    frames_of,
    host_program,
    only_doc,
)
from tests.tooling import wasmtime_cli

DEPTH = 3
THREAD_ACTS = {10, 20, 30, 40}


def threads_program(threads=4):
    return [PY, str(PROGRAMS / "threads.py"), "--threads", str(threads), "--nested-stores"]


def activations(doc):
    """{act value: (thread, activation index, heap record, frames)} of every activation."""
    out = {}
    for th in doc["threads"]:
        for i, a in enumerate(th["activations"]):
            frames = [f for f in th["frames"] if f["activation"] == i]
            builds = [f for f in build_frames(frames) if f["safepoint"]]
            if not builds:
                continue
            outer = [s["value"] for s in builds[-1]["slots"] if s["kind"] == "i31"]
            act = -7 - outer[0]
            assert act not in out, f"act {act} seen twice"
            out[act] = (th["thread"], i, a.get("heap"), builds)
    return out


def check_exact(act, builds):
    """The i31 of every frame and the fields of every struct: the values this act stored."""
    got = [[s["value"] for s in f["slots"] if s["kind"] == "i31"] for f in builds]
    expected = [[3 * (n + 1) + 1 + 1000 * act] for n in range(1, DEPTH)] + [[-7 - act]]
    assert got == expected, (act, got)
    check_structs(builds, [1000 * act + n for n in range(1, DEPTH + 1)])


def check_threads_doc(doc):
    acts = activations(doc)
    assert set(acts) == THREAD_ACTS | {1, 2}, sorted(acts)
    for act, (_, _, heap, builds) in acts.items():
        check_exact(act, builds)
        assert heap["located"] and heap["tie_by_records"], (act, heap)
        for f in builds:
            for s in f["slots"]:
                if s["kind"] == "heap":
                    assert s["object"]["address"] == heap["base"] + s["value"]
    sources = {a["source"] for th in doc["threads"] for a in th["activations"]}
    assert sources <= {"registers", "debugger", "runtime"}, sources
    # One thread per act of the 4, and the nested pair on one thread, B innermost.
    assert len({acts[a][0] for a in THREAD_ACTS | {1}}) == 5
    assert acts[1][0] == acts[2][0] and (acts[2][1], acts[1][1]) == (0, 1)
    # Six stores: six store contexts, six heaps.
    assert len({h["store_context"] for _, _, h, _ in acts.values()}) == 6
    assert len({h["base"] for _, _, h, _ in acts.values()}) == 6


def test_threads_each_in_own_store(dbg):
    cmds = ["stackmap bt -a --json", "stackmap bt -a --no-scan --json", "stackmap bt -a"]
    r = driver.run(dbg, cmds, threads_program())
    full, no_scan = r.docs
    check_threads_doc(full)
    # Without the stack scan every activation is still reached: by the debugger's unwinder
    # or, where it stops short of wasm (LLDB in the Python host), from the stores' records.
    check_threads_doc(no_scan)
    assert "i31 40010" in r.output and "i31 -47" in r.output, r.output[-3000:]
    assert "heap ambiguous" not in r.output and "GC heap not located" not in r.output


@pytest.fixture(scope="module")
def threads_core(tmp_path_factory):
    prog = threads_program()
    return driver.gcore(prog, str(tmp_path_factory.mktemp("threads") / "threads.core")), prog


def test_threads_each_in_own_store_core(dbg, threads_core):
    core, prog = threads_core
    cmds = ["stackmap bt -a --json", "stackmap bt -a --no-scan --json"]
    r = driver.run(dbg, cmds, core=core, executable=prog[0])
    for doc in r.docs:
        check_threads_doc(doc)
    assert len(r.docs) == 2


def test_bad_stores(dbg):
    """Unreadable store context, garbage records, two stores explaining refs equally:
    one clear note each, on those frames only; the other activations stay exact."""
    helper = PROGRAMS.parent / "plugins" / "corrupt_stores.py"
    py = "python" if dbg == "gdb" else "script"
    cmds = [f"{py} exec(open({str(helper)!r}).read())", "stackmap bt -a --json", "stackmap bt -a"]
    r = driver.run(dbg, cmds, threads_program())
    assert "corrupted: 10 unreadable" in r.output, r.output[-3000:]
    acts = activations(only_doc(r))
    assert set(acts) == THREAD_ACTS | {1, 2}
    for act in (40, 1, 2):
        _, _, heap, builds = acts[act]
        check_exact(act, builds)
        assert heap["tie_by_records"]
    # 10: its vmctx leads to unreadable memory.
    _, _, heap, builds = acts[10]
    assert not heap["located"] and "unreadable" in heap["note"], heap
    assert "0x10000000" in heap["note"]
    assert all(f["heap_note"] == heap["note"] for f in builds)
    assert all("object" not in s for f in builds for s in f["slots"])
    # 20: nothing in the runtime's records proves its store; its own vmctx decides, said so.
    _, _, heap, builds = acts[20]
    check_exact(20, builds)
    assert heap["located"] and not heap["tie_by_records"], heap
    assert "unconfirmed: no store context's exit/entry records match" in builds[0]["heap_note"]
    # 30: two stores (its own and 40's) explain its refs equally: no pick.
    _, _, heap, builds = acts[30]
    assert not heap["located"] and heap["note"].startswith("heap ambiguous: 2 store contexts")
    amb = set(heap["ambiguous"])
    others = {acts[a][2].get("store_context") for a in (20, 40, 1, 2)}
    s40 = acts[40][2]["store_context"]
    assert len(amb) == 2 and s40 in amb and not (amb - {s40}) & others, (amb, others)
    assert all("object" not in s for f in builds for s in f["slots"])
    assert all(f["heap_note"].startswith("heap ambiguous") for f in builds)
    # The text says so on those frames.
    assert re.search(r"\n\s+heap ambiguous: 2 store contexts", r.output), r.output[-4000:]
    assert "the store context is unreadable" in r.output


# -- wasm offsets: Wasmtime's own trap backtrace is the oracle --------------------------------

OFFSETS_WAT = """
(module
  (type $node (struct (field $v i32)))
  (func $leaf (param $x i32) (param $keep (ref $node)) (result i32)
    (drop (i32.div_u (i32.const 1) (local.get $x)))
    (struct.get $node $v (local.get $keep)))
  (func $mid (param $x i32) (result i32)
    (local $n (ref $node))
    (local.set $n (struct.new $node (i32.const 5)))
    (i32.add (call $leaf (local.get $x) (local.get $n)) (struct.get $node $v (local.get $n))))
  (func $top (param $d i32) (result i32)
    (if (result i32) (local.get $d)
      (then (i32.add (call $top (i32.sub (local.get $d) (i32.const 1))) (i32.const 1)))
      (else (call $mid (i32.const 0)))))
  (func (export "_start") (drop (call $top (i32.const 2)))))
"""


def _oracle(prog):
    p = subprocess.run(prog, capture_output=True, text=True, timeout=60)
    lines = re.findall(r"^\s*\d+:\s+(0x[0-9a-f]+) - ", p.stderr, re.M)
    assert lines, p.stderr
    return [int(x, 16) for x in lines]


@pytest.mark.parametrize("program", ["deep_trap", "offsets"])
def test_wasm_offsets_match_wasmtime_backtrace(dbg, tmp_path, program):
    if program == "offsets":
        wat = tmp_path / "offsets.wat"
        wat.write_text(OFFSETS_WAT)
        prog = [wasmtime_cli(), "run", *CLI_FLAGS, str(wat)]
    else:
        prog = cli_program()
    expected = _oracle(prog)
    r = driver.run(dbg, ["stackmap bt --json", "stackmap bt --wide"], prog)
    frames = frames_of(only_doc(r))
    wasm = [f for f in frames if "trampoline" not in (f["function"] or "")]
    assert [f["wasm_offset"] for f in wasm] == expected, r.output[-3000:]
    # Trampolines have none; the text line shows each as `@ 0x..`.
    assert all(f["wasm_offset"] is None for f in frames if "trampoline" in (f["function"] or ""))
    for f in wasm:
        assert re.search(rf"#{f['level']}\s.* @ {f['wasm_offset']:#x} fp=", r.output)


# -- activations from the runtime's records -----------------------------------------------


def test_activations_from_runtime_records(dbg):
    """host -> wasm -> host -> wasm -> host -> wasm in ONE store: the newest activation's
    bounds are the store context's records, the older two the records the store saved
    for each nested call. What the stack scan found there is labelled "runtime"; with the
    scan off, the records alone reach every activation the debugger did not."""
    prog = host_program("inproc", 3, 3)
    r = driver.run(dbg, ["stackmap bt --json", "stackmap bt --no-scan --json"], prog)
    full, no_scan = r.docs[-2], r.docs[-1]
    frames = frames_of(full)
    check_host_activations(frames, depth=3, activations=3)
    acts = full["threads"][0]["activations"]
    assert {a["source"] for a in acts} <= {"registers", "debugger", "runtime"}, acts
    assert all(a["heap"]["tie_by_records"] for a in acts), acts
    assert sum("saved for the nested call" in a["heap"]["tie"] for a in acts) == 2
    # Without the scan: the innermost activation from the debugger's unwinder (GDB) or, where
    # that stops short of wasm (LLDB in the Python host), the store's exit record; the
    # older two from the records saved for the nested calls.
    found = no_scan["threads"][0]["activations"]
    check_host_activations(frames_of(no_scan), depth=3, activations=3)
    assert [a["source"] for a in found][1:] == ["runtime", "runtime"], found
    assert found[0]["source"] in ("debugger", "runtime"), found
    assert all(a["heap"]["tie_by_records"] for a in found), found
