#!/usr/bin/env python3
"""Benchmark 2: a live wasm recursion 10,000 frames deep (CLI, stopped at the trap).

    .venv/bin/python benchmarks/bench_deep.py [--depth N]

`wasmtime run -W gc=y,max-wasm-stack=...,async-stack-size=...` runs a generated
module whose `$build` recurses N frames with a struct ref and an i31 ref live
across each call, then hits `unreachable`. In GDB (and LLDB when
lldb_plugin/stackmaps.py exists): time of `stackmap bt --json` (goal < 2 s), its
debugger memory reads per frame, and GDB's own `bt` to the same depth with the
plugin's unwinder installed (cold frame cache each run), with the unwinder's
own memory reads counted by wrapping its target.
"""

import argparse
import statistics
import time

import _gen
from _common import (
    HERE,
    cache_dir,
    fmt_s,
    gdb_batch,
    lldb_batch,
    lldb_path,
    lldb_plugin_ready,
    results_from,
    table,
    verdict,
    wasmtime_cli,
)

GOAL_BT = 2.0


def program(depth):
    wat = cache_dir() / f"deep_{depth}.wat"
    if not wat.exists():
        wat.write_text(_gen.deep_recursion_wat(depth))
    stack = max(1 << 20, depth * 128)
    return [
        wasmtime_cli(),
        "run",
        "-W",
        f"gc=y,max-wasm-stack={stack},async-stack-size={2 * stack}",
        "-O",
        "memory-reservation=16777216,memory-guard-size=65536",
        str(wat),
    ]


def run_gdb(depth):
    cmds = [
        "run",
        f"source {HERE / '_in_gdb.py'}",
        "python bench_stackmap_bt('stackmap bt --json', 3)",
        "python bench_gdb_bt('bt', 2)",
        "python bench_frame_walk('frame walk', 2)",
        "python bench_stackmap_bt('stackmap bt --json (after bt)', 1)",
        "python bench_json('json')",
        "python bench_cmd('stackmap bt (text)', 'stackmap bt', 1)",
        "python bench_phases('phases json', 'stackmap bt --json')",
        "python bench_phases('phases text', 'stackmap bt')",
    ]
    t0 = time.perf_counter()
    out, err, rc = gdb_batch(cmds, program(depth), timeout=900)
    res = results_from(out)
    if not res:
        raise SystemExit(f"gdb gave no results (rc {rc}):\n{out[-3000:]}\n{err[-3000:]}")
    return res, time.perf_counter() - t0


def run_lldb(depth):
    cmds = [
        f"command script import {HERE / '_in_lldb.py'}",
        "script _in_lldb.bench_lldb_bt(lldb.debugger, 'bt', 2)",
        "script _in_lldb.bench_stackmap_bt(lldb.debugger, 'stackmap bt --json', 3)",
    ]
    out, err, rc = lldb_batch(cmds, program(depth))
    res = results_from(out)
    if not res:
        print(f"(lldb gave no results, rc {rc}):\n{out[-2000:]}\n{err[-2000:]}")
    return res


def gdb_rows(by):
    """`stackmap bt --json` in GDB: first run, median, memory reads per frame."""
    sm = by["stackmap bt --json"]
    st = sm["stats"] or {}
    reads = st.get("memory_reads")
    nfr = st.get("frames") or sm["frames"]
    return [
        [
            "GDB",
            "stackmap bt --json, first run",
            fmt_s(sm["runs"][0]),
            f"{sm['frames']} wasm frames, {sm['activations']} activation(s)",
            f"< 2 s {verdict(sm['runs'][0] < GOAL_BT)}",
        ],
        ["GDB", "stackmap bt --json, median of 3", fmt_s(statistics.median(sm["runs"])), "", ""],
        [
            "GDB",
            "  debugger memory reads (stats)",
            f"{reads} = {reads / nfr:.4f}/frame" if reads is not None else "n/a",
            f"stats.frames={nfr}",
            "",
        ],
    ]


def unwinder_rows(by):
    """GDB's own `bt` and the unwind alone with the plugin's unwinder, and the ratios."""
    rows = []
    sm_first = by["stackmap bt --json"]["runs"][0]
    bt, btn = by["bt"], by["frame walk"]
    for lab, r in (("bt", bt), ("unwind only (Frame.older() loop)", btn)):
        rows.append(
            [
                "GDB",
                f"{lab} (plugin unwinder), cold, first",
                fmt_s(r["runs"][0]),
                f"{r['frames']} frames",
                "",
            ]
        )
        u = r["unwinder"] or {}
        if u:
            rows.append(
                [
                    "GDB",
                    "  unwinder: calls / claimed / time in it",
                    f"{u['calls']} / {u['claimed']} / {fmt_s(u['unwinder_time'])}",
                    f"{u['unwinder_time'] / max(1, u['calls']) * 1e6:.1f} µs/call",
                    "",
                ]
            )
            rows.append(
                [
                    "GDB",
                    "  unwinder memory reads",
                    f"{u['reads']} = {u['reads'] / max(1, u['claimed']):.4f}/frame",
                    f"{u['read_bytes']:,} bytes",
                    "",
                ]
            )
    rows.append(
        [
            "GDB",
            "ratio stackmap bt / bt",
            f"{sm_first / bt['runs'][0]:.2f}",
            "(< 1: stackmap bt is faster)",
            "",
        ]
    )
    rows.append(
        ["GDB", "ratio stackmap bt / unwind only", f"{sm_first / btn['runs'][0]:.2f}", "", ""]
    )
    after = by.get("stackmap bt --json (after bt)")
    if after:
        rows.append(["GDB", "stackmap bt --json after GDB's bt", fmt_s(after["runs"][0]), "", ""])
    return rows


def output_rows(by):
    """The JSON encoding and the text rendering of `stackmap bt` in GDB."""
    rows = []
    js = by.get("json")
    if js:
        rows.append(
            [
                "GDB",
                "  of which json.dumps(doc, indent=1)",
                fmt_s(js["indent1"]),
                f"{js['bytes_indent']:,} bytes",
                "",
            ]
        )
        rows.append(
            [
                "GDB",
                "  json.dumps(doc) compact, C encoder",
                fmt_s(js["compact"]),
                f"saves {fmt_s(js['indent1'] - js['compact'])}",
                "",
            ]
        )
        rows.append(
            [
                "GDB",
                "  top-level keys indented, values compact",
                fmt_s(js["top_level_indent"]),
                "keeps '{\\n \"schema\"' for tests/plugins/driver.py",
                "",
            ]
        )
    txt = by.get("stackmap bt (text)")
    if txt:
        ratio = txt["runs"][0] / by["bt"]["runs"][0]
        rows.append(["GDB", "stackmap bt (text output)", fmt_s(txt["runs"][0]), "", ""])
        rows.append(["GDB", "ratio stackmap bt (text) / bt", f"{ratio:.2f}", "", ""])
    return rows


def lldb_rows(depth):
    """`stackmap bt --json` and LLDB's own `bt` in LLDB."""
    if not (lldb_plugin_ready() and lldb_path()):
        return [["LLDB", "(lldb_plugin/stackmaps.py not there yet: skipped)", "", "", ""]]
    rows = []
    lres = {r["label"]: r for r in run_lldb(depth)}
    sm = lres.get("stackmap bt --json")
    if sm:
        lst = sm.get("stats") or {}
        rows.append(
            [
                "LLDB",
                "stackmap bt --json, first run",
                fmt_s(sm["runs"][0]),
                f"{sm['frames']} wasm frames",
                f"< 2 s {verdict(sm['runs'][0] < GOAL_BT)}",
            ]
        )
        rows.append(
            ["LLDB", "stackmap bt --json, median", fmt_s(statistics.median(sm["runs"])), "", ""]
        )
        if lst.get("memory_reads") is not None:
            per = lst["memory_reads"] / max(1, lst.get("frames") or 1)
            rows.append(
                [
                    "LLDB",
                    "  debugger memory reads (stats)",
                    f"{lst['memory_reads']} = {per:.4f}/frame",
                    "",
                    "",
                ]
            )
    b = lres.get("bt")
    if b:
        rows.append(
            ["LLDB", "bt (LLDB's own), first", fmt_s(b["runs"][0]), f"{b['frames']} frames", ""]
        )
        if sm:
            ratio = sm["runs"][0] / b["runs"][0]
            rows.append(["LLDB", "ratio stackmap bt / bt", f"{ratio:.2f}", "", ""])
    return rows


def print_phases(by):
    """Where one `stackmap bt` spends its time in GDB (json and text)."""
    for key in ("phases json", "phases text"):
        ph = by.get(key)
        if not ph:
            continue
        print(
            f"\nGDB, where `{ph['cmd']}` spends its time (best of 2, {fmt_s(ph['total'])} in all):"
        )
        prow = [
            [name, fmt_s(t), f"{100 * t / ph['total']:.0f}%"]
            for name, t in sorted(ph["phases"].items(), key=lambda kv: -kv[1])
        ]
        rest = ph["total"] - sum(ph["phases"].values())
        prow.append(
            [
                "(the rest: argument parsing, plugin glue, gdb.write)",
                fmt_s(rest),
                f"{100 * rest / ph['total']:.0f}%",
            ]
        )
        table(prow, ["phase", "time", "share"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--depth", type=int, default=10_000)
    args = ap.parse_args()
    depth = args.depth
    print(f"bench_deep: wasm recursion {depth} frames deep, CLI {program(depth)[2:4]}")
    res, wall = run_gdb(depth)
    by = {r["label"]: r for r in res}
    rows = gdb_rows(by) + unwinder_rows(by) + output_rows(by) + lldb_rows(depth)
    table(rows, ["debugger", "measure", "value", "detail", "goal"])
    print(f"(gdb session wall time {wall:.1f} s)")
    print_phases(by)


if __name__ == "__main__":
    main()
