#!/usr/bin/env python3
"""Benchmark 3: many images. A Python embedder (wasmtime 50) with 200 modules
compiled in-process (benchmarks/many_host.py), stopped in a host function.

    .venv/bin/python benchmarks/bench_images.py [--modules N] [--levels L]

(a) wasm mode: module 0 -> host -> module N-1 -> host, SIGTRAP. In GDB: the
    plugin's stop hook (image discovery) from nothing, `stackmap images` cold
    (registry emptied first) and warm, the first `stackmap bt` after the stop.
    Goal: `stackmap images` and the first `stackmap bt` < 1 s.
(b) host mode: the same modules loaded, then a host-only recursion (~200
    native frames, no wasm on the stack). GDB's `bt` (cold frame cache) with
    and without the plugin: every frame goes through the unwinder's fast
    reject. Goal: ratio <= 1.2 (and < 5 µs per reject).
"""

import argparse
import json
import statistics

from _common import (
    HERE,
    VENV_PY,
    cache_dir,
    fmt_s,
    gdb_batch,
    lldb_batch,
    lldb_path,
    lldb_plugin_ready,
    results_from,
    table,
    verdict,
)

GOAL_CMD = 1.0
GOAL_RATIO = 1.2
GOAL_REJECT = 5e-6


def prog(mode, n, arg):
    return [str(VENV_PY), str(HERE / "many_host.py"), mode, str(n), str(arg)]


def gdb_results(cmds, program, load=True):
    out, err, rc = gdb_batch(["run", f"source {HERE / '_in_gdb.py'}", *cmds], program, load=load)
    res = results_from(out)
    if not res:
        raise SystemExit(f"gdb gave no results (rc {rc}):\n{out[-3000:]}\n{err[-3000:]}")
    return {r["label"]: r for r in res}


def lldb_results(cmds, program):
    out, err, rc = lldb_batch([f"command script import {HERE / '_in_lldb.py'}", *cmds], program)
    return {r["label"]: r for r in results_from(out)}


def wasm_rows(n):
    """(a) stopped wasm -> host -> wasm -> host: the stop hook, `images`, the first `bt` in GDB."""
    r = gdb_results(
        [
            "python bench_cmd('first bt', 'stackmap bt --json', 1)",
            "python bench_cmd('first images', 'stackmap images --json', 1)",
            "python bench_stop_hook('stop hook', 3)",
            "python bench_cmd('images cold', 'stackmap images --json', 3, forget_images)",
            "python bench_cmd('images warm', 'stackmap images --json', 3)",
            "python bench_cmd('bt cold', 'stackmap bt --json', 3, forget_images)",
            "python bench_cmd('bt warm', 'stackmap bt --json', 3)",
            "python bench_stackmap_bt('bt stats', 1)",
        ],
        prog("wasm", n, 3),
    )
    rows = []
    hook = r["stop hook"]
    rows.append(
        [
            "GDB",
            "stop hook: discover images from nothing (median of 3)",
            fmt_s(statistics.median(hook["runs"])),
            f"{hook['images']} images, {hook['problems']} problems",
            "",
        ]
    )
    for lab, what in (
        ("first images", "stackmap images, first after the stop"),
        ("images cold", "stackmap images, registry emptied first (median)"),
        ("images warm", "stackmap images, warm (median)"),
        ("first bt", "stackmap bt --json, first after the stop"),
        ("bt cold", "stackmap bt --json, registry emptied first (median)"),
        ("bt warm", "stackmap bt --json, warm (median)"),
    ):
        t = r[lab]["runs"][0] if lab.startswith("first") else statistics.median(r[lab]["runs"])
        goal = f"< 1 s {verdict(t < GOAL_CMD)}"
        rows.append(["GDB", what, fmt_s(t), "", goal])
    st = r["bt stats"]
    rows.append(
        [
            "GDB",
            "  stackmap bt found",
            f"{st['frames']} wasm frames",
            f"{st['activations']} activations, {st['stats']['memory_reads']} memory reads",
            "",
        ]
    )
    return rows


def lldb_wasm_rows(n):
    """(a) the same in LLDB."""
    rows = []
    if not (lldb_plugin_ready() and lldb_path()):
        return rows
    lr = lldb_results(
        [
            "script _in_lldb.bench_cmd(lldb.debugger, 'first images', 'stackmap images --json', 1)",
            "script _in_lldb.bench_stackmap_bt(lldb.debugger, 'first bt', 1)",
            "script _in_lldb.forget_images()",
            "script _in_lldb.bench_cmd(lldb.debugger, 'images cold', 'stackmap images --json', 1)",
        ],
        prog("wasm", n, 3),
    )
    for lab, what in (
        ("first images", "stackmap images, first"),
        ("images cold", "stackmap images, registry emptied first"),
        ("first bt", "stackmap bt --json, first"),
    ):
        if lab in lr:
            t = lr[lab]["runs"][0]
            extra = ""
            if lab == "first bt":
                extra = f"{lr[lab]['frames']} wasm frames, {lr[lab]['activations']} activations"
            rows.append(["LLDB", what, fmt_s(t), extra, f"< 1 s {verdict(t < GOAL_CMD)}"])
    return rows


def cwasm_rows(n):
    """(a') the same, each module loaded from its own .cwasm file (file-backed mappings)."""
    rows = []
    d = cache_dir() / f"cwasm_{n}"
    d.mkdir(exist_ok=True)
    rf = gdb_results(
        [
            "python bench_cmd('first images', 'stackmap images --json', 1)",
            "python bench_cmd('images cold', 'stackmap images --json', 3, forget_images)",
            "python bench_cmd('first bt', 'stackmap bt --json', 1)",
        ],
        prog("wasm", n, 3) + [str(d)],
    )
    out_f = gdb_batch(["run", "stackmap images --json"], prog("wasm", n, 3) + [str(d)])[0]
    doc = json.JSONDecoder().raw_decode(out_f, out_f.find('{\n "schema"'))[0]
    with_path = sum(1 for i in doc["images"] if i["path"])
    for lab, what in (
        ("first images", "(.cwasm files) stackmap images, first"),
        ("images cold", "(.cwasm files) stackmap images, registry emptied (median)"),
        ("first bt", "(.cwasm files) stackmap bt --json, first"),
    ):
        t = statistics.median(rf[lab]["runs"])
        extra = (
            f"{len(doc['images'])} images, {with_path} with their file"
            if lab == "first images"
            else ""
        )
        rows.append(["GDB", what, fmt_s(t), extra, f"< 1 s {verdict(t < GOAL_CMD)}"])
    return rows


def host_stack(n, levels, rep):
    """(b) host-only stack: bare GDB, GDB with a no-op Python unwinder, GDB with the plugin."""
    walk = [
        f"python bench_gdb_bt('bt', {rep})",
        f"python bench_gdb_bt('bt -no-filters', {rep}, '-no-filters')",
        f"python bench_frame_walk('walk', {rep})",
    ]
    p = prog("host", n, levels)
    bare = gdb_results(walk, p, load=False)
    noop = gdb_results(["python install_noop_unwinder()", *walk], p, load=False)
    plug = gdb_results(
        [*walk, "python bench_reject_micro('micro')", "python bench_unwinder_ab('ab', 30)"],
        p,
        load=True,
    )
    rows = []
    for lab, what in (
        ("bt", "bt"),
        ("bt -no-filters", "bt -no-filters"),
        ("walk", "unwind only (Frame.older() loop)"),
    ):
        tb, tn, tp = (min(x[lab]["runs"]) for x in (bare, noop, plug))
        fr = plug[lab]["frames"]
        ratio = tp / tb
        goal = f"<= {GOAL_RATIO} {verdict(ratio <= GOAL_RATIO)}" if lab == "bt" else ""
        rows.append(
            [
                what,
                fmt_s(tb),
                fmt_s(tn),
                fmt_s(tp),
                f"{fr}/{bare[lab]['frames']}",
                f"{ratio:.3f}",
                goal,
                f"{(tp - tb) / fr * 1e6:.1f} µs",
                f"{(tp - tn) / fr * 1e6:.1f} µs",
            ]
        )
    print(
        f"\n(b) host-only stack, {n} modules loaded (GDB, cold frame cache each run, best of "
        f"{rep}; 'no-op unwinder' = bare GDB plus a Python unwinder that only reads the pc)"
    )
    table(
        rows,
        [
            "measure",
            "bare GDB",
            "no-op unwinder",
            "with plugin",
            "frames",
            "ratio plugin/bare",
            "goal",
            "added/frame vs bare",
            "vs no-op",
        ],
    )
    return plug


def print_unwinder(plug):
    """(b) the unwinder: calls in one bt, interleaved on/off, the reject micro-benchmark."""
    u = plug["bt"]["unwinder"]
    per = u["unwinder_time"] / max(1, u["calls"])
    m = plug.get("micro", {})
    print(
        f"unwinder calls in one bt: {u['calls']} (claimed {u['claimed']}); time inside it "
        f"(Python wrapper, includes the wrapper) {fmt_s(u['unwinder_time'])} = {fmt_s(per)}/call"
    )
    ab = plug.get("ab")
    if ab:
        base = {k: min(v["walk"]) for k, v in ab["results"].items()}
        bt = {k: min(v["bt"]) for k, v in ab["results"].items()}
        fr = ab["frames"]["plugin off"]
        rows = []
        for k in ab["results"]:
            rows.append(
                [
                    k,
                    fmt_s(base[k]),
                    f"{(base[k] - base['plugin off']) / fr * 1e6:.1f} µs",
                    fmt_s(bt[k]),
                    f"{bt[k] / bt['plugin off']:.3f}",
                ]
            )
        print(
            f"\nsame session, interleaved, best of {len(ab['results']['plugin off']['walk'])} "
            f"({fr} frames; 'plugin off' = its unwinder and frame filter disabled)"
        )
        table(rows, ["configuration", "unwind only", "added per frame", "bt", "bt ratio to off"])
    if m.get("reject") is not None:
        print(
            f"reject micro-benchmark on a real PendingFrame (pc {m['pc']:#x}, inside the images' "
            f"[lo, hi) span: {m['in_range']}): {fmt_s(m['reject'])} per call "
            f"(goal < 5 µs: {verdict(m['reject'] < GOAL_REJECT)}), of which "
            f"read_register('pc') + int() {fmt_s(m['read_register'])}"
        )
        print(f"  reading the arch's own pc register instead: {fmt_s(m['read_arch_pc'])}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--modules", type=int, default=200)
    ap.add_argument("--levels", type=int, default=20, help="host recursion levels in (b)")
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    n = args.modules
    print(f"bench_images: {n} modules compiled in-process by a Python host")
    rows = wasm_rows(n) + lldb_wasm_rows(n) + cwasm_rows(n)
    print(f"\n(a) {n} modules, wasm -> host -> wasm -> host (SIGTRAP)")
    table(rows, ["debugger", "measure", "value", "detail", "goal"])
    print_unwinder(host_stack(n, args.levels, args.repeat))


if __name__ == "__main__":
    main()
