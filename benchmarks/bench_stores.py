#!/usr/bin/env python3
"""Benchmark 5: many threads, each with its own Store and wasm stack, every activation
tied to its store.

    .venv/bin/python benchmarks/bench_stores.py [--threads N]

tests/programs/threads.py with N threads (default 64), each with its own Store,
parked in a host call under a GC recursion, plus host -> wasm (store A) -> host
-> wasm (store B) on the main thread. In GDB: `stackmap bt -a --json` (first run
and median; goal < 2 s), its debugger memory reads, frames, activations, how many
activations were tied to their store by the runtime's records, and how many
distinct store contexts and heaps were used (goal: one per store, N + 2).
A host option for suspended fibers (`--fibers N`) can be passed through with
`--host-args`.
"""

import argparse
import shlex
import statistics
import sys
import time

from _common import HERE, REPO, VENV_PY, fmt_s, gdb_batch, results_from, table, verdict

GOAL_BT = 2.0

TIES = (
    "python import json; d = json.loads(gdb.execute('stackmap bt -a --json', to_string=True)); "
    "hs = [a.get('heap') or {} for t in d['threads'] for a in t['activations']]; "
    "emit(kind='ties', label='ties', activations=len(hs), "
    "by_records=sum(1 for h in hs if h.get('tie_by_records')), "
    "located=sum(1 for h in hs if h.get('located')), "
    "stores=len({h.get('store_context') for h in hs if h.get('located')}), "
    "bases=len({h.get('base') for h in hs if h.get('located')}), "
    "notes=sorted({h.get('note') for h in hs if h.get('note')})[:3])"
)


def program(threads: int, extra: list[str]) -> list[str]:
    return [
        str(VENV_PY),
        str(REPO / "tests" / "programs" / "threads.py"),
        "--threads",
        str(threads),
        "--nested-stores",
        *extra,
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--host-args", default="", help="more options for threads.py")
    args = ap.parse_args()
    prog = program(args.threads, shlex.split(args.host_args))
    print(f"bench_stores: {args.threads} threads x own store + nested two stores: {prog[1:]}")
    cmds = [
        "run",
        f"source {HERE / '_in_gdb.py'}",
        f"python bench_stackmap_bt('stackmap bt -a --json', {args.repeat}, '-a --json')",
        TIES,
        "python bench_phases('phases', 'stackmap bt -a --json')",
    ]
    t0 = time.perf_counter()
    out, err, rc = gdb_batch(cmds, prog, timeout=900)
    wall = time.perf_counter() - t0
    res = {r["label"]: r for r in results_from(out)}
    if "stackmap bt -a --json" not in res or "ties" not in res:
        raise SystemExit(f"gdb gave no results (rc {rc}):\n{out[-3000:]}\n{err[-3000:]}")
    sm, ties = res["stackmap bt -a --json"], res["ties"]
    first, med = sm["runs"][0], statistics.median(sm["runs"])
    st = sm.get("stats") or {}
    want = args.threads + 2
    rows = [
        ["stackmap bt -a --json, first run", fmt_s(first), "< 2 s", verdict(first < GOAL_BT)],
        [f"median of {len(sm['runs'])}", fmt_s(med), "< 2 s", verdict(med < GOAL_BT)],
        ["frames / activations", f"{sm['frames']} / {sm['activations']}", "", ""],
        ["debugger memory reads", str(st.get("memory_reads")), "bulk", ""],
        [
            "activations tied by the runtime's records",
            f"{ties['by_records']} of {ties['activations']}",
            "all",
            verdict(ties["by_records"] == ties["activations"]),
        ],
        [
            "distinct store contexts / heap bases used",
            f"{ties['stores']} / {ties['bases']}",
            str(want),
            verdict(ties["stores"] == ties["bases"] == want),
        ],
    ]
    table(rows, ["measure", "figure", "goal", ""])
    if ties["notes"]:
        print("notes:", ties["notes"])
    phases = res.get("phases")
    if phases:
        print("where the time goes (one run):")
        for name, sec in sorted(phases.get("phases", {}).items(), key=lambda kv: -kv[1])[:6]:
            print(f"  {fmt_s(sec):>10}  {name}")
    print(f"(gdb session: {wall:.1f} s wall, including starting {args.threads} threads)")
    return 0 if first < GOAL_BT else 1


if __name__ == "__main__":
    sys.exit(main())
