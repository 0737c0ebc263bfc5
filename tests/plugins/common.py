"""What the plugin scenario tests share: the programs, and checks of the JSON they print."""

import sys

from tests.tooling import REPO, objdump, wasmtime_cli

PROGRAMS = REPO / "tests" / "programs"
PY = sys.executable  # the venv's python: it has the wasmtime package
CLI_FLAGS = ["-W", "gc=y", "-O", "memory-reservation=16777216,memory-guard-size=65536"]
CLI_DEPTH = 5  # fixed in deep_trap.wat's _start


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
