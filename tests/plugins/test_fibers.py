"""Suspended async fibers: wasm stacks no thread runs, each decoded in its own store's heap.

tests/programs/async_host.py suspends FIBERS async calls (stores act = 1..FIBERS,
each pending in an async host function) and stops in a sync host call of one
more store (act = 0) on the same thread. Every store's frames hold its own
values (struct v = 1000*act + n, i31 3*(n+1)+1+1000*act, -7-act at the top),
so a heap ref decoded in another store's heap shows the wrong v. Run under GDB
and LLDB, live and from a gcore core file.
"""

import json
import re
import subprocess

import jsonschema
import pytest

from tests.plugins import driver
from tests.plugins.common import (
    PROGRAMS,
    PY,
    SCHEMA,
    TRIAGE,
    build_frames,
    check_structs,
    cli_program,
    host_program,
    only_doc,
)

DEPTH = 3
FIBERS = 2


def async_program(depth=DEPTH, fibers=FIBERS):
    return [PY, str(PROGRAMS / "async_host.py"), str(depth), str(fibers)]


def act_of(frames):
    """The store's act from the outermost build frame's i31 (-7 - act)."""
    top = [s["value"] for s in build_frames(frames)[-1]["slots"] if s["kind"] == "i31"]
    assert len(top) == 1, frames
    return -7 - top[0]


def check_store_frames(frames, act, depth=DEPTH):
    at_calls = [f for f in build_frames(frames) if f["safepoint"]]
    assert len(at_calls) == depth, frames
    i31s = [[s["value"] for s in f["slots"] if s["kind"] == "i31"] for f in at_calls]
    expected = [[3 * (n + 1) + 1 + 1000 * act] for n in range(1, depth)] + [[-7 - act]]
    assert i31s == expected
    # Objects decoded in this store's heap hold this store's values.
    check_structs(at_calls, [1000 * act + n for n in range(1, depth + 1)])
    return at_calls


def check_document(doc, fibers=FIBERS, damaged=0):
    threads = [t for t in doc["threads"] if t["frames"]]
    assert len(threads) == 1, [t["thread"] for t in threads]
    running = threads[0]
    assert act_of(running["frames"]) == 0
    check_store_frames(running["frames"], 0)
    running_heap = running["activations"][0]["heap"]
    assert running_heap["located"], running_heap
    susp = doc["suspended"]
    assert len(susp) == fibers, [s["stack"] for s in susp]
    acts, stores, bases = set(), {running_heap["store_context"]}, {running_heap["base"]}
    for s in susp:
        lo, hi = s["stack"]
        if s["note"] is None:
            assert lo < s["saved_sp"] < hi
        else:
            damaged -= 1
            assert s["saved_sp"] is None and "0x4141414141414141" in s["note"], s["note"]
        assert all(lo <= f["fp"] < hi for f in s["frames"]), s["frames"]
        assert [f["level"] for f in s["frames"]] == list(range(len(s["frames"])))
        act = act_of(s["frames"])
        acts.add(act)
        check_store_frames(s["frames"], act)
        (a,) = s["activations"]
        assert a["source"] == "fiber" and a["frames"] == len(s["frames"])
        heap = a["heap"]
        assert heap["located"] and heap["store_context"] == s["store_context"], a
        assert a["vmctx"] and "confirmed by vmctx" in a["store_note"]
        for f in build_frames(s["frames"]):
            for slot in f["slots"]:
                if slot["kind"] == "heap":
                    assert slot["object"]["address"] == heap["base"] + slot["value"]
        stores.add(s["store_context"])
        bases.add(heap["base"])
    assert acts == set(range(1, fibers + 1))
    assert damaged == 0
    assert len(stores) == fibers + 1 and len(bases) == fibers + 1  # one store, one heap each


def check_text(output, fibers=FIBERS):
    heads = re.findall(
        r"^Suspended fiber stack 0x[0-9a-f]+-0x[0-9a-f]+: (\d+) wasm frames, store context 0x",
        output,
        re.M,
    )
    assert heads == [str(DEPTH + 3)] * fibers, output[-4000:]
    # After the threads: the last thread line comes before the first suspended block.
    assert output.rindex("Thread ") < output.index("Suspended fiber stack")


def test_async_two_stores_live(dbg):
    r = driver.run(dbg, ["stackmap bt -a --json", "stackmap bt -a"], async_program())
    check_document(only_doc(r))
    check_text(r.output)


def test_async_report_json(dbg):
    r = driver.run(dbg, ["stackmap report --json"], async_program(fibers=1))
    doc = only_doc(r)
    jsonschema.validate(doc, SCHEMA)
    check_document(doc, fibers=1)
    assert doc["images"] and doc["stop"]["signal_name"] == "SIGTRAP"


@pytest.mark.parametrize("which", ["cli", "host"])
def test_no_false_suspended_stacks(dbg, which):
    """No async call is suspended: the CLI runs its guest on a fiber a thread is on, the
    Python host on the thread's stack; nothing may be reported as suspended."""
    prog = cli_program() if which == "cli" else host_program("inproc", 3, 2)
    doc = only_doc(driver.run(dbg, ["stackmap bt -a --json"], prog))
    assert doc["suspended"] == [] and any(t["frames"] for t in doc["threads"])


def test_bt_of_one_thread_has_no_suspended_key(dbg):
    r = driver.run(dbg, ["stackmap bt --json"], async_program(fibers=1))
    assert "suspended" not in only_doc(r)


def test_fiber_stack_top_garbage(dbg):
    """The saved SP at the top of one fiber stack overwritten: one clear note on that stack,
    its frames still found from the saved exit record, the other stack unchanged."""
    prog = async_program() + ["--garbage-top"]
    r = driver.run(dbg, ["stackmap bt -a --json", "stackmap bt -a"], prog)
    check_document(only_doc(r), damaged=1)
    notes = re.findall(r"^      note: the top of this stack .*$", r.output, re.M)
    assert len(notes) == 1 and "0x4141414141414141" in notes[0], r.output[-4000:]


@pytest.fixture(scope="module")
def async_core(tmp_path_factory):
    d = tmp_path_factory.mktemp("asynccore")
    prog = async_program()
    return driver.gcore(prog, str(d / "async.core")), prog


def test_async_two_stores_core(dbg, async_core):
    core, prog = async_core
    r = driver.run(dbg, ["stackmap bt -a --json", "stackmap bt -a"], core=core, executable=prog[0])
    check_document(only_doc(r))
    check_text(r.output)


def test_async_core_triage_json(async_core, tmp_path):
    """`wasmtime-stackmaps triage --json` of the core: the suspended stacks are in the report."""
    core, prog = async_core
    out = tmp_path / "report.json"
    p = subprocess.run(
        TRIAGE + ["--core", core, "--exe", prog[0], "--json", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, SCHEMA)
    check_document(doc)


def check_pulley_document(doc):
    """Every suspended Pulley stack found, exact in its own store: the saved exit record on
    the fiber stack, the frames on the interpreter's stack (often mapped right above the
    fiber stack and merged with it by the kernel: the stack's top is then inside the
    mapping)."""
    (running,) = [t for t in doc["threads"] if t["frames"]]
    check_store_frames(running["frames"], 0)
    susp = doc["suspended"]
    assert sorted(act_of(s["frames"]) for s in susp) == list(range(1, FIBERS + 1)), [
        s["stack"] for s in susp
    ]
    for s in susp:
        check_store_frames(s["frames"], act_of(s["frames"]))
        (a,) = s["activations"]
        assert a["heap"]["located"] and "confirmed by vmctx" in a["store_note"]
        lo, hi = s["stack"]
        assert lo < s["saved_sp"] < hi
        assert not any(lo <= f["fp"] < hi for f in s["frames"])  # on the interpreter's stack


def test_async_pulley_suspended(dbg):
    r = driver.run(dbg, ["stackmap bt -a --json"], async_program() + ["--pulley"])
    check_pulley_document(only_doc(r))


@pytest.fixture(scope="module")
def pulley_core(tmp_path_factory):
    d = tmp_path_factory.mktemp("pulleycore")
    prog = async_program() + ["--pulley"]
    return driver.gcore(prog, str(d / "pulley.core")), prog


def test_async_pulley_suspended_core(dbg, pulley_core):
    core, prog = pulley_core
    r = driver.run(dbg, ["stackmap bt -a --json"], core=core, executable=prog[0])
    check_pulley_document(only_doc(r))
