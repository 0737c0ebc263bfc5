"""Pulley: wasm interpreted by the `wasmtime` CLI (--target pulley64), stopped in a host call.

tests/programs/pulley_gc.wat recurses 5 deep keeping a struct (v = n) and an
i31 (3*(n+1)+1, -7 at the top) live in every frame, then calls WASI's
sched_yield: GDB `break sched_yield` / LLDB `breakpoint set -r sched_yield`
stop there with the interpreted frames on Pulley's own stack. The frames must
come out with the values the program stored, decoded in the store's heap, with
the frame sizes and slot offsets `wasmtime objdump --stack-maps` prints for the
same module compiled for pulley64; live and from a gcore core file.
"""

import os
import subprocess

import pytest

from tests.plugins import driver
from tests.plugins.common import (
    CLI_FLAGS,
    PROGRAMS,
    build_frames,
    check_host_activations,
    check_structs,
    host_program,
    objdump_maps,
    only_doc,
)
from tests.tooling import run_wasmtime, wasmtime_cli

DEPTH = 5
PULLEY = ["--target", "pulley64"]
BREAK = {"gdb": "break sched_yield", "lldb": "breakpoint set -r sched_yield"}
LAUNCH = {"gdb": "run", "lldb": "process launch"}


def pulley_program():
    # No compilation cache nor parallel compilation: their worker threads call sched_yield too
    # (and would stop first).
    return [
        wasmtime_cli(),
        "run",
        *PULLEY,
        "-C",
        "cache=n,parallel-compilation=n",
        *CLI_FLAGS,
        str(PROGRAMS / "pulley_gc.wat"),
    ]


@pytest.fixture(scope="module")
def pulley_image(tmp_path_factory):
    out = tmp_path_factory.mktemp("pulley") / "pulley_gc.cwasm"
    run_wasmtime("compile", *PULLEY, *CLI_FLAGS, "-o", out, PROGRAMS / "pulley_gc.wat")
    return out


def stopped(dbg, commands, **kw):
    """Run the CLI under `dbg` to the sched_yield breakpoint, then `commands`."""
    return driver.run(dbg, [BREAK[dbg], LAUNCH[dbg], *commands], pulley_program(), run=False, **kw)


def check_pulley_doc(doc, maps=None):
    (th,) = [t for t in doc["threads"] if t["frames"]]
    frames = th["frames"]
    pulley = [a for a in th["activations"] if a["source"] == "pulley"]
    assert len(pulley) == 1, th["activations"]
    builds = build_frames(frames)
    assert len(builds) == DEPTH + 1, frames
    at_calls = [f for f in builds if f["safepoint"]]
    assert len(at_calls) == DEPTH and not builds[0]["safepoint"]  # n = 0 called sched_yield
    i31s = [[s["value"] for s in f["slots"] if s["kind"] == "i31"] for f in at_calls]
    assert i31s == [[3 * (n + 1) + 1] for n in range(1, DEPTH)] + [[-7]]
    check_structs(at_calls, list(range(1, DEPTH + 1)), collector="copying")
    heap = pulley[0]["heap"]
    assert heap["located"] and heap["store_context"] and heap["found_in"] == "thread stack"
    fps = [f["fp"] for f in frames]
    assert fps == sorted(fps) and len(set(fps)) == len(fps)
    for f in at_calls:
        assert f["sp"] == f["fp"] - f["frame_size"]
        for s in f["slots"]:
            assert s["address"] == f["sp"] + s["offset"]
            if s["kind"] == "heap":
                assert s["object"]["address"] == heap["base"] + s["value"]
    # The innermost frame returns to a call site in `build`; the outermost is the trampoline.
    assert frames[-1]["function"].startswith("wasm[0]::array_to_wasm_trampoline")
    if maps is not None:
        for f in at_calls:
            assert maps[f["text_offset"]] == (
                f["frame_size"],
                tuple(s["offset"] for s in f["slots"]),
            )


def test_pulley_live(dbg, pulley_image):
    r = stopped(dbg, ["stackmap images", "stackmap bt --json", "stackmap bt"])
    assert "pulley64" in r.output
    check_pulley_doc(only_doc(r), objdump_maps(pulley_image))
    assert "wasm[0]::function[1]::build" in r.output and "SP+0=i31 -7" in r.output


@pytest.fixture(scope="module")
def pulley_core(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("pulleycore") / "pulley.core")
    argv = driver.gdb_argv(
        [BREAK["gdb"], "run", f"gcore {path}"], pulley_program(), run=False, load=False
    )
    env = dict(os.environ, NO_COLOR="1")
    p = subprocess.run(argv, capture_output=True, text=True, timeout=driver.TIMEOUT, env=env)
    assert os.path.exists(path), p.stdout + p.stderr
    return path


def test_pulley_core(dbg, pulley_core, pulley_image):
    r = driver.run(dbg, ["stackmap bt -a --json"], core=pulley_core, executable=wasmtime_cli())
    check_pulley_doc(only_doc(r), objdump_maps(pulley_image))


# -- a Python embedder under Pulley: host -> wasm -> host -> wasm in one store ----------------


def check_nested_pulley(doc):
    (th,) = [t for t in doc["threads"] if t["frames"]]
    acts = th["activations"]
    assert [a["source"] for a in acts] == ["pulley", "pulley"], acts
    frames = th["frames"]
    check_host_activations(frames)  # i31s of both activations, innermost first
    at_calls = [f for f in build_frames(frames) if f["safepoint"]]
    check_structs(at_calls, [1000 * act + n for act in (1, 0) for n in (1, 2, 3)])
    heaps = [a["heap"] for a in acts]
    assert all(h["located"] for h in heaps) and len({h["store_context"] for h in heaps}) == 1


def test_python_host_pulley_nested(dbg):
    r = driver.run(dbg, ["stackmap bt --json"], host_program("inproc", 3, 2, "--pulley"))
    check_nested_pulley(only_doc(r))


def test_python_host_pulley_nested_core(dbg, tmp_path_factory):
    prog = host_program("inproc", 3, 2, "--pulley")
    core = driver.gcore(prog, str(tmp_path_factory.mktemp("pulleyhost") / "host.core"))
    r = driver.run(dbg, ["stackmap bt --json"], core=core, executable=prog[0])
    check_nested_pulley(only_doc(r))
