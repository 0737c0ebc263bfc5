"""`stackmap gc-watch` on a real process, under GDB and LLDB.

The program (tests/programs/gc_churn.wat) keeps five $node structs live in five
frames while the CLI's copying collector runs about 140 collections. The count
the checks compare with comes from the runtime itself: the same program run
outside the debugger with `WASMTIME_LOG=wasmtime::runtime::store::gc=trace`
logs one "Begin GC" per collection.
"""

import os
import re
import struct
import subprocess
import sys

import pytest
from wasmtime_stackmaps.batch import (
    GDB_BATCH_OPTIONS,
    GDB_PLUGIN,
    LLDB_PLUGIN,
    debugger_path,
    json_docs,
)

from tests.plugins.common import CLI_FLAGS, PROGRAMS
from tests.plugins.driver import TIMEOUT
from tests.tooling import wasmtime_cli

CHURN = PROGRAMS / "gc_churn.wat"
DEPTH = 5  # $build(4) .. $build(0): one $node each
DEPTH_ASYNC = 3  # gc_suspended.py: $nodes v = 1000*act + 1..3 on each fiber
HEADER = 16  # copying collector object header


def churn_program(collector: str | None = None):
    """The CLI running gc_churn.wat (with its default, copying, collector unless told)."""
    chosen = ["-C", f"collector={collector}"] if collector else []
    return [wasmtime_cli(), "run", *CLI_FLAGS, *chosen, str(CHURN)]


def runtime_collections(collector: str | None = None) -> int:
    """Collections the runtime runs for the program (its own trace log)."""
    env = dict(os.environ, WASMTIME_LOG="wasmtime::runtime::store::gc=trace")
    prog = churn_program(collector)
    p = subprocess.run(prog, capture_output=True, text=True, env=env, timeout=120)
    n = p.stderr.count("Begin GC") + p.stdout.count("Begin GC")
    assert n > 0, p.stderr[-2000:]
    return n


def run_from_entry(
    dbg: str, steps: list[str], final: list[str], collector: str | None = None
) -> str:
    """Start the program stopped at its first instruction, run `steps` ("continue" resumes),
    then `final` once it has stopped for good (the trap at the end, or a stop of ours)."""
    return run_program(dbg, churn_program(collector), steps, final)


def run_program(dbg: str, prog: list[str], steps: list[str], final: list[str], entry=True) -> str:
    """run_from_entry for any program; entry=False: run it to its first stop (a SIGTRAP
    it raises itself) before `steps`."""
    if dbg == "gdb":
        argv = [debugger_path("gdb") or "gdb", *GDB_BATCH_OPTIONS, "-ex", f"source {GDB_PLUGIN}"]
        argv += ["-ex", "starti" if entry else "run"]
        for c in steps + final:
            argv += ["-ex", c]
        argv += ["--args", *prog]
    else:
        argv = [debugger_path("lldb") or "lldb", "--no-lldbinit", "-b"]
        argv += ["-o", "settings set auto-confirm true", "-o", "settings set use-color false"]
        argv += ["-o", f"command script import {LLDB_PLUGIN}"]
        argv += ["-o", "process launch" + (" --stop-at-entry" if entry else "")]
        for c in steps:
            argv += ["-o", "process continue" if c == "continue" else c]
        # A stop on a signal ends the -o list in batch mode and runs the -k list instead.
        for c in final:
            argv += ["-o", c]
        for c in final:
            argv += ["-k", c]
        argv += ["--", *prog]
    env = dict(os.environ, NO_COLOR="1")
    env.pop("PYTHONPATH", None)
    p = subprocess.run(
        argv, capture_output=True, text=True, timeout=TIMEOUT, env=env, stdin=subprocess.DEVNULL
    )
    return p.stdout + "\n" + p.stderr


def last_doc(output: str, key: str) -> dict:
    """The last JSON document the commands printed that has `key`."""
    docs = [d for d in json_docs(output) if key in d]
    assert docs, output[-3000:]
    return docs[-1]


def log_of(output: str) -> dict:
    return last_doc(output, "collections")


def watched_run(dbg: str, verify: str, collector: str | None) -> list[dict]:
    """gc_churn.wat run to its end under `gc-watch on [--verify]`: its records, once checked
    that they are every collection the runtime ran (its own count), without violation."""
    expected = runtime_collections(collector)
    steps = [f"stackmap gc-watch on {verify}", "continue"]
    out = run_from_entry(dbg, steps, ["stackmap gc-watch log --json"], collector=collector)
    doc = log_of(out)
    st = doc["status"]
    assert st["collections"] == expected, (st, out[-2000:])
    assert st["unbracketed"] == 0 and st["errors"] == 0 and st["violations"] == 0, st
    recs = doc["collections"]
    assert len(recs) == expected
    assert len(re.findall(r"^gc-watch: collection #\d+: ", out, re.M)) == expected
    return recs


@pytest.mark.parametrize("verify", ["", "--verify"])
def test_every_collection_checked(dbg, verify):
    """Every collection of the run is checked, each root moves to an identical object,
    and none of ~140 collections reports a violation (nor, with --verify, a heap problem:
    the five nodes reachable before each collection are the live objects after it)."""
    recs = watched_run(dbg, verify, None)
    assert len(recs) >= 100
    for rec in recs:
        assert rec["point"] == "gc_alloc_raw" and rec["collections"] >= 1, rec
        assert rec["caller"]["function"].endswith("::churn"), rec["caller"]
        assert rec["violations"] == [], rec["violations"]
        c = rec["counts"]
        # Five live $nodes, one per $build frame; the copying collector moves them all.
        assert c["roots"] == DEPTH and c["moved"] == DEPTH, c
        moved = {r["old"]: r["new"] for r in rec["roots"]}
        values = set()
        for r in rec["roots"]:
            assert r["function"].endswith("::build"), r
            assert r["identical"] is True, r
            before, after = bytes.fromhex(r["before"]), bytes.fromhex(r["after"])
            v0, next0 = struct.unpack_from("<iI", before, HEADER)
            v1, next1 = struct.unpack_from("<iI", after, HEADER)
            assert v0 == v1, r
            values.add(v0)
            # $next moved with the object it points at (null for the first node).
            assert next1 == (moved[next0] if next0 else 0), (hex(next0), hex(next1))
        assert values == {100 + n for n in range(DEPTH)}, values
        assert rec["lost"] == [] and rec["counts"]["lost"] == 0, rec["lost"]
        ver = rec.get("verify")
        if verify:
            assert ver["problem_count"] == 0 and not ver["lost"], ver
            assert ver["reachable_before"] == DEPTH and ver["untraced_before"] == 0, ver
            # The five nodes, and at most the array whose allocation ran the collection.
            assert DEPTH <= ver["objects"] <= DEPTH + 1 and ver["untraced"] == 0, ver
            # The heap inspector's typed verify (module types from the command line).
            ty = ver["typed"]
            assert ty["typed"] and ty["count"] == 0 and ty["objects"] == DEPTH, ty
        else:
            assert ver is None
    # The roots are the frames' slots: distinct addresses, the same in every collection.
    slots = {tuple(sorted(r["address"] for r in rec["roots"])) for rec in recs}
    assert len(slots) == 1 and len(next(iter(slots))) == DEPTH


DRC_HEADER = 24  # DRC object header: kind, type, ref count (u64), stack-root link, size


@pytest.mark.parametrize("verify", ["", "--verify"])
def test_drc_collections_leave_roots_in_place(dbg, verify):
    """The deferred reference-counting collector does not move objects: gc-watch reports
    every collection of the run (the runtime's own count), each root unchanged and its
    object identical (the collector's ref count aside), and no violation."""
    recs = watched_run(dbg, verify, "drc")
    assert len(recs) >= 20
    first = None
    for rec in recs:
        assert rec["point"] == "gc_alloc_raw" and rec["collections"] >= 1, rec
        assert rec["heap_before"]["collector"] == "drc", rec["heap_before"]
        assert rec["violations"] == [] and rec["lost"] == [], rec
        c = rec["counts"]
        assert c["roots"] == DEPTH and c["unchanged"] == DEPTH and c["moved"] == 0, c
        values, refs = set(), {r["old"] for r in rec["roots"]}
        for r in rec["roots"]:
            assert r["function"].endswith("::build") and r["new"] == r["old"], r
            assert r["identical"] is True and r["problem"] is None, r
            v0, next0 = struct.unpack_from("<iI", bytes.fromhex(r["before"]), DRC_HEADER)
            v1, next1 = struct.unpack_from("<iI", bytes.fromhex(r["after"]), DRC_HEADER)
            assert (v0, next0) == (v1, next1), r
            assert next0 == 0 or next0 in refs, r  # the previous frame's node, in place
            values.add(v0)
        assert values == {100 + n for n in range(DEPTH)}, values
        # The same slots holding the same refs at every collection: nothing moved.
        now = sorted((r["address"], r["old"]) for r in rec["roots"])
        first = first or now
        assert now == first, (now, first)
        ver = rec.get("verify")
        if verify:
            ty = ver["typed"]
            assert ver["problem_count"] == 0 and ty["typed"] and ty["count"] == 0, ver
            assert ty["objects"] == DEPTH, ty
        else:
            assert ver is None


PLANT = {
    # The last collection's last moved root: its slot gets back its pre-move value.
    "gdb": (
        "python import json; r = [x for x in json.loads(gdb.execute('stackmap gc-watch log "
        "--json', to_string=True))['collections'][-1]['roots'] if x['state'] == 'moved'][-1]; "
        "gdb.execute('set {unsigned int}%#x = %#x' % (r['address'], r['old'])); "
        "print('PLANTED %#x %#x' % (r['address'], r['old']))"
    ),
    "lldb": (
        "script import json; ci = lldb.debugger.GetCommandInterpreter(); "
        "res = lldb.SBCommandReturnObject(); ci.HandleCommand('stackmap gc-watch log --json', "
        "res); r = [x for x in json.loads(res.GetOutput())['collections'][-1]['roots'] "
        "if x['state'] == 'moved'][-1]; ci.HandleCommand('memory write -s 4 %#x %#x' % "
        "(r['address'], r['old']), res); print('PLANTED %#x %#x' % (r['address'], r['old']))"
    ),
}


def test_stale_root_reported(dbg):
    """A root slot rewritten with its pre-move value between collections is reported at the
    next collection with its frame and slot, and --stop-on-violation stops there with that
    frame selected."""
    steps = [
        "stackmap gc-watch on --stop-at 3",
        "continue",
        PLANT[dbg],
        "stackmap gc-watch on --stop-on-violation --verify",
        "continue",
    ]
    final = ["stackmap gc-watch log --json", "stackmap frame --json"]
    out = run_from_entry(dbg, steps, final)
    m = re.search(r"PLANTED (0x[0-9a-f]+) (0x[0-9a-f]+)", out)
    assert m, out[-3000:]
    addr, stale = int(m.group(1), 16), int(m.group(2), 16)
    doc = log_of(out)
    assert [r["collection"] for r in doc["collections"]] == [1, 2, 3, 4]
    assert all(not r["violations"] for r in doc["collections"][:3])
    rec = doc["collections"][3]
    first = rec["violations"][0]
    assert first["address"] == addr and first["old"] == stale, first
    assert "forwarded object" in first["problem_before"], first
    assert first["function"].endswith("::build") and first["path"].endswith(f"SP+{first['offset']}")
    assert re.search(
        rf"VIOLATION thread \d+ frame #{first['level']} \S+::build SP\+{first['offset']} "
        rf"\({addr:#x}\): {stale:#x} -> ",
        out,
    ), out[-3000:]
    # --verify: the object the stale root reached was not copied: gone while referenced.
    (gone,) = rec["lost"]
    assert rec["verify"]["lost"] == rec["lost"]
    assert gone["ref"] == stale and gone["path"] == f"{first['path']} = heap {stale:#x}", gone
    assert re.search(rf"HEAP object {stale:#x}: reachable before the collection, not copied", out)
    # The typed verify after it: that root now points at a forwarding header.
    typed = rec["verify"]["typed"]["violations"]
    assert any(v["ref"] == first["new"] and "forwarding header" in v["problem"] for v in typed), (
        first,
        typed,
    )
    # Stopped with the offending root's frame selected.
    frame = last_doc(out, "threads")
    (sel,) = frame["threads"][0]["frames"]
    assert sel["fp"] == first["fp"] and sel["pc"] == first["pc"], (sel, first)
    assert any(s["address"] == addr for s in sel["slots"])


@pytest.mark.parametrize("action", ["off", "status"])
def test_gc_watch_off_and_status(dbg, action):
    """`gc-watch off` removes every breakpoint: the program then runs to its end unwatched."""
    steps = ["stackmap gc-watch on --stop-at 2", "continue", f"stackmap gc-watch {action}"]
    steps.append("continue")
    out = run_from_entry(dbg, steps, ["stackmap gc-watch status --json"])
    st = last_doc(out, "enabled")
    if action == "off":
        assert st["enabled"] is False and st["collections"] == 2, st
    else:
        assert st["enabled"] is True and st["collections"] > 2, st


@pytest.mark.parametrize("field", ["+16", ".v"])
def test_watch_field_follows_moves(dbg, field):
    """A watch on $node.v of build(0)'s struct survives every move of the object (about
    140 collections) and stops at $poke, the wasm function that writes 4242 into it."""
    expected = runtime_collections()
    steps = [
        "stackmap gc-watch on --stop-at 2",
        "continue",
        "stackmap gc-watch off",
        f"stackmap watch #1 SP+0->{field}",  # frame #1 is build(0): its $node, field $v
        "continue",
    ]
    out = run_from_entry(dbg, steps, ["stackmap watch --list --json", "stackmap bt --json"])
    m = re.search(
        rf"watch #1 \(#1 SP\+0->{re.escape(field)}\): (0x[0-9a-f]+) written by (\S+) "
        r"\(thread \d+\): (0x[0-9a-f]+) -> (0x[0-9a-f]+)",
        out,
    )
    assert m, out[-3000:]
    assert m.group(2).split("+")[0].endswith("::poke"), m.group(0)
    assert (int(m.group(3), 16), int(m.group(4), 16)) == (100, 4242)
    (w,) = last_doc(out, "watches")["watches"]
    # Armed after collection 2: every later collection moved the object, and the watch.
    assert w["moves"] == expected - 2 and w["hits"] == 1, w
    assert w["address"] == int(m.group(1), 16)
    top = last_doc(out, "threads")["threads"][0]["frames"][0]
    assert top["function"].endswith("::poke"), top


def test_watch_slot_ignores_the_collector(dbg):
    """A watch on a root slot: the collector rewrites the slot at every collection (its
    object moves) and the watch lets those writes through: the program runs to its end."""
    expected = runtime_collections()
    steps = [
        "stackmap gc-watch on --stop-at 1",
        "continue",
        "stackmap watch #2 SP+0",  # build(1)'s $node slot
        "continue",
    ]
    final = ["stackmap watch --list --json", "stackmap gc-watch log --json"]
    out = run_from_entry(dbg, steps, final)
    m = re.search(r"watch #1: frame #2 \S+::build at (0x[0-9a-f]+) \(4 bytes\)", out)
    assert m, out[-3000:]
    addr = int(m.group(1), 16)
    assert "written by" not in out
    (w,) = last_doc(out, "watches")["watches"]
    assert w["hits"] == 0 and w["address"] == addr, w
    recs = log_of(out)["collections"]
    assert len(recs) == expected
    # Every collection after the watch was set rewrote the watched slot.
    for rec in recs[1:]:
        (slot,) = [r for r in rec["roots"] if r["address"] == addr]
        assert slot["state"] == "moved" and slot["new"] != slot["old"], slot


SUSPENDED_HOST = PROGRAMS / "gc_suspended.py"  # stores 1 and 2 suspended; store 1 collected
IN_STACK_ROOTS = 1 << 1  # DRC header bit: the object is in the over-approximated stack roots


def test_suspended_fiber_roots_checked(dbg):
    """The roots of async calls suspended on fiber stacks are in every collection's
    snapshot. The host collects store 1 (`wasmtime_context_gc`, DRC: the Python package's
    default) three times while its call is suspended: Wasmtime traces only the stacks of
    running wasm, so the collector drops the counts that kept store 1's fiber-held objects
    alive and frees them in place. gc-watch reports each of those roots, with its fiber
    stack, frame and slot; store 2's suspended roots stay live and are not reported."""
    prog = [sys.executable, str(SUSPENDED_HOST), str(DEPTH_ASYNC), "3"]
    steps = ["stackmap gc-watch on", "continue"]
    out = run_program(dbg, prog, steps, ["stackmap gc-watch log --json"], entry=False)
    doc = log_of(out)
    st = doc["status"]
    assert st["collections"] == 3 and st["errors"] == 0 and st["unbracketed"] == 0, st
    assert out.count("host: collected store 1") == 3, out[-3000:]
    assert st["violations"] == 3 * DEPTH_ASYNC, st  # store 1's three $nodes at each one
    stacks: dict[int, str] = {}  # act -> its fiber stack
    for n, rec in enumerate(doc["collections"], 1):
        assert rec["point"] == "wasmtime_context_gc" and rec["collections"] == 1, rec
        assert rec["heap_before"]["collector"] == "drc", rec
        heap_roots = [r for r in rec["roots"] if r.get("before")]
        assert rec["roots"] and all(r["thread"] == 0 and r["stack"] for r in rec["roots"])
        by_act: dict[int, list[dict]] = {}
        for r in heap_roots:
            v = struct.unpack_from("<i", bytes.fromhex(r["before"]), DRC_HEADER)[0]
            by_act.setdefault(v // 1000, []).append(r)
            assert stacks.setdefault(v // 1000, r["stack"]) == r["stack"], r
            assert r["function"].endswith("::build") and r["state"] == "unchanged", r
        assert sorted(by_act) == [1, 2], sorted(by_act)
        for act, roots in by_act.items():
            values = sorted(
                struct.unpack_from("<i", bytes.fromhex(r["before"]), DRC_HEADER)[0] for r in roots
            )
            assert values == [1000 * act + k for k in range(1, DEPTH_ASYNC + 1)], values
        for r in by_act[2]:  # not collected: still counted, in the list, identical
            assert r["problem"] is None and r["problem_before"] is None, r
            assert r["identical"] is True, r
        for r in by_act[1]:
            assert r["problem"].startswith("freed object: its DRC ref count is 0"), r
            head, count = struct.unpack_from("<IxxxxQ", bytes.fromhex(r["after"]))
            assert count == 0 and not head & IN_STACK_ROOTS, r["after"]
            if n == 1:  # live when the first collection started
                head, count = struct.unpack_from("<IxxxxQ", bytes.fromhex(r["before"]))
                assert count >= 1 and head & IN_STACK_ROOTS and r["problem_before"] is None
            else:
                assert r["problem_before"].startswith("freed object"), r
        assert {v["address"] for v in rec["violations"]} == {r["address"] for r in by_act[1]}
        lines = re.findall(
            rf"^  VIOLATION {re.escape(stacks[1])} frame #\d \S+::build SP\+\d+ \(0x[0-9a-f]+\): "
            r"(0x[0-9a-f]+) -> \1: after the collection: freed object",
            out,
            re.M,
        )
        assert len(lines) == 3 * DEPTH_ASYNC, out[-3000:]
    assert stacks[1] != stacks[2]
