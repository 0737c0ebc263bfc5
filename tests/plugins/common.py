"""What the plugin scenario tests share: the programs, and checks of the JSON they print."""

import json
import struct
import sys

from tests.tooling import REPO, objdump, wasmtime_cli

PROGRAMS = REPO / "tests" / "programs"
PY = sys.executable  # the venv's python: it has the wasmtime package
CLI_FLAGS = ["-W", "gc=y", "-O", "memory-reservation=16777216,memory-guard-size=65536"]
CLI_DEPTH = 5  # fixed in deep_trap.wat's _start
SCHEMA = json.loads((REPO / "core" / "schema" / "report.schema.json").read_text())
TRIAGE = [sys.executable, "-m", "wasmtime_stackmaps.cli", "triage"]


def cli_program():
    return [wasmtime_cli(), "run", *CLI_FLAGS, str(PROGRAMS / "deep_trap.wat")]


def host_program(mode, *args):
    return [PY, str(PROGRAMS / "host.py"), mode, *map(str, args)]


def objdump_maps(path):
    """{text offset: (frame_size, offsets)} as printed by `wasmtime objdump --stack-maps`."""
    return {m.pc: (m.frame_size, m.offsets) for m in objdump(path).stack_maps}


def only_doc(result):
    assert result.docs, f"no JSON from the debugger:\n{result.output[-3000:]}"
    return result.docs[-1]


def frames_of(doc, thread=None):
    ths = doc["threads"]
    assert ths, doc
    return (
        ths[0]["frames"]
        if thread is None
        else next(t for t in ths if t["thread"] == thread)["frames"]
    )


def build_frames(frames):
    return [f for f in frames if f["function"] and f["function"].endswith("::build")]


def check_slots_distinct_heap(frames):
    heap = [s["value"] for f in frames for s in f["slots"] if s["kind"] == "heap"]
    assert heap, "no heap refs"
    assert all(v and v % 2 == 0 for v in heap), heap
    assert len(set(heap)) == len(heap), f"heap refs not distinct: {heap}"


def check_frame_layout(frames, at_calls):
    """Every frame pointer above the previous one; in each frame with a map
    SP = FP - frame_size, and every slot at SP + its offset."""
    fps = [f["fp"] for f in frames]
    assert fps == sorted(fps) and len(set(fps)) == len(fps), fps
    for f in at_calls:
        assert f["sp"] == f["fp"] - f["frame_size"], f
        for s in f["slots"]:
            assert s["address"] == f["sp"] + s["offset"], (f, s)


def check_host_activations(frames, depth=3, activations=2):
    builds = [f for f in build_frames(frames) if f["safepoint"]]
    assert len(builds) == depth * activations, frames
    acts = sorted({f["activation"] for f in frames})
    assert len(acts) == activations
    # Innermost activation first: act = activations-1 down to 0.
    got = [[s["value"] for s in f["slots"] if s["kind"] == "i31"] for f in builds]
    expected = []
    for act in reversed(range(activations)):
        expected += [[3 * (n + 1) + 1 + 1000 * act] for n in range(1, depth)] + [[-7 - act]]
    assert got == expected
    check_slots_distinct_heap(builds)


# -- GC objects decoded from the heap (tests/plugins/test_gcheap.py, tests/matrix) -------

HEADER = {"copying": 16, "drc": 24, "null": 8}


def heap_slots(frame):
    return [s for s in frame["slots"] if s["kind"] == "heap"]


def check_structs(frames, expected_v, collector=None):
    """`frames`: the build frames at call sites, innermost first; expected_v[i]: the i32
    field of frame i's struct. Returns the collector the objects were decoded with."""
    assert len(frames) == len(expected_v)
    objs = []
    for f in frames:
        (s,) = heap_slots(f)
        obj = s.get("object")
        assert obj, f"no object decoded for frame #{f['level']}: {f.get('heap_note')}"
        assert "error" not in obj, obj
        objs.append((s, obj))
    collectors = {o["collector"] for _, o in objs}
    assert len(collectors) == 1 and None not in collectors, collectors
    (used,) = collectors
    if collector is not None:
        assert used == collector
    hs = HEADER[used]
    types = {o["type_index"] for _, o in objs}
    sizes = {o["size"] for _, o in objs}
    assert len(types) == 1 and None not in types, types  # one $node type
    assert len(sizes) == 1, sizes
    (size,) = sizes
    assert hs + 8 <= size <= 64 and size % 8 == 0, size  # header + i32 + ref, aligned
    for i, (_slot, obj) in enumerate(objs):
        assert obj["kind"] == "structref"
        assert obj["length"] is None
        assert len(bytes.fromhex(obj["header"])) == hs
        body = bytes.fromhex(obj["payload"])
        v, nxt = struct.unpack_from("<iI", body)
        assert v == expected_v[i], (i, v, expected_v)
        # $next: the struct of the caller (next frame out) within one activation.
        if i + 1 < len(objs) and frames[i + 1]["activation"] == frames[i]["activation"]:
            assert nxt == objs[i + 1][0]["value"], (i, hex(nxt))
    return used


def check_heap_records(doc, frames):
    th = doc["threads"][0]
    acts = {f["activation"] for f in frames}
    heaps = [th["activations"][a]["heap"] for a in acts]
    assert all(h["located"] for h in heaps), heaps
    assert len({(h["base"], h["store_context"]) for h in heaps}) == 1  # one store, one heap
    h = heaps[0]
    assert h["length"] > 0 and h["base"] % 8 == 0
    for f in frames:
        for s in heap_slots(f):
            assert s["object"]["address"] == h["base"] + s["value"]
            assert s["value"] < h["length"]
        assert f["heap_note"].startswith("GC heap 0x")
    return h
