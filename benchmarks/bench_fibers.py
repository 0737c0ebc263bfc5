#!/usr/bin/env python3
"""Benchmark: many threads with a store each, plus many suspended async fibers, in GDB.

    .venv/bin/python benchmarks/bench_fibers.py [--threads 64] [--fibers 200] [--depth 3]

tests/programs/threads.py --fibers: the main thread suspends FIBERS async calls
(one store each, DEPTH+1 wasm frames on each fiber stack), then THREADS threads
park in a host call under DEPTH+1 frames of their own store, and the last one
stops the process. In GDB: time of `stackmap bt -a --json` (goal < 2 s), the
number of suspended stacks and thread frames it reports, and its debugger
memory reads (the `stats` of the document).
"""

import argparse
import json
import statistics
import sys
import time

from _common import REPO, VENV_PY, fmt_s, gdb_batch, table, verdict

GOAL = 2.0

IN_GDB = r"""
python
import json, time, gdb
runs = []
doc = None
for i in range(REPEAT):
    t0 = time.perf_counter()
    out = gdb.execute("stackmap bt -a --json", to_string=True)
    runs.append(time.perf_counter() - t0)
    if doc is None:
        doc = json.loads(out[out.find("{"):])
res = {
    "runs": runs,
    "threads": len(doc["threads"]),
    "thread_frames": sum(len(t["frames"]) for t in doc["threads"]),
    "suspended": len(doc.get("suspended", [])),
    "suspended_frames": sum(len(s["frames"]) for s in doc.get("suspended", [])),
    "heaps_located": sum(
        1 for s in doc.get("suspended", []) for a in s["activations"]
        if (a.get("heap") or {}).get("located")
    ),
    "stats": doc.get("stats"),
}
print("@@BENCH " + json.dumps(res))
end
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--threads", type=int, default=64)
    ap.add_argument("--fibers", type=int, default=200)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    prog = [
        VENV_PY,
        REPO / "tests" / "programs" / "threads.py",
        "--threads",
        args.threads,
        "--depth",
        args.depth,
        "--fibers",
        args.fibers,
    ]
    script = REPO / "benchmarks" / ".cache" / "fibers_in_gdb.gdb"
    script.parent.mkdir(exist_ok=True)
    script.write_text(IN_GDB.replace("REPEAT", str(args.repeat)))
    t0 = time.perf_counter()
    out, err, rc = gdb_batch(["run", f"source {script}"], prog, timeout=900)
    wall = time.perf_counter() - t0
    line = next((x for x in out.splitlines() if x.startswith("@@BENCH ")), None)
    if line is None:
        sys.exit(f"gdb gave no result (rc {rc}):\n{out[-3000:]}\n{err[-3000:]}")
    res = json.loads(line[len("@@BENCH ") :])
    runs = res["runs"]
    print(
        f"{args.threads} threads (one store each), {args.fibers} suspended fibers, "
        f"depth {args.depth}; GDB session {wall:.1f} s"
    )
    table(
        [
            [
                "stackmap bt -a --json",
                fmt_s(runs[0]),
                fmt_s(statistics.median(runs[1:] or runs)),
                f"< {GOAL:.0f} s",
                verdict(max(runs) < GOAL),
            ]
        ],
        ["command", "first", "median of the rest", "goal", ""],
    )
    print(
        f"threads {res['threads']}, thread frames {res['thread_frames']}, suspended stacks "
        f"{res['suspended']} ({res['suspended_frames']} frames, {res['heaps_located']} heaps "
        f"located), stats {res['stats']}"
    )
    if res["suspended"] != args.fibers:
        sys.exit(f"expected {args.fibers} suspended stacks, got {res['suspended']}")


if __name__ == "__main__":
    main()
