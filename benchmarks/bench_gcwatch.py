#!/usr/bin/env python3
"""Benchmark: the cost of `stackmap gc-watch on` (and `--verify`) in GDB, about 1,000 collections.

    .venv/bin/python benchmarks/bench_gcwatch.py [--rounds 5000] [--repeat 3]

tests/programs/gc_churn.wat with ROUNDS garbage arrays (5,000: about 1,000
collections of the CLI 49's copying collector with five live roots in five
frames). The program is started in GDB (`starti`), then the time of one
`continue` to its final trap is measured inside GDB's Python, for: the plugin
loaded and gc-watch off; `gc-watch on`; `gc-watch on --verify`. Interleaved
runs; the median of each. The collection count comes from the runtime itself
(`WASMTIME_LOG=wasmtime::runtime::store::gc=trace`, outside the debugger) and
from gc-watch's status (which must agree).
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys

from _common import REPO, cache_dir, fmt_s, gdb_batch, table, wasmtime_cli

FLAGS = ["-W", "gc=y", "-O", "memory-reservation=16777216,memory-guard-size=65536"]

IN_GDB = r"""
python
import json, time, gdb
t0 = time.perf_counter()
gdb.execute("continue", to_string=True)
dt = time.perf_counter() - t0
st = None
if MODE:
    st = json.loads(gdb.execute("stackmap gc-watch status --json", to_string=True))
print("@@BENCH " + json.dumps({"seconds": dt, "status": st}))
end
"""


def program(rounds: int):
    src = (REPO / "tests" / "programs" / "gc_churn.wat").read_text()
    out = cache_dir() / f"gc_churn_{rounds}.wat"
    # _start's round count only (the arrays keep their 700 elements).
    text, n = re.subn(r"\(i32\.const 4\) \(ref\.null \$node\) \(i32\.const \d+\)",
                      f"(i32.const 4) (ref.null $node) (i32.const {rounds})", src)  # fmt: skip
    if n != 1:
        sys.exit("gc_churn.wat changed: cannot set the round count")
    out.write_text(text)
    return [wasmtime_cli(), "run", *FLAGS, str(out)]


def runtime_collections(prog) -> int:
    env = dict(os.environ, WASMTIME_LOG="wasmtime::runtime::store::gc=trace")
    p = subprocess.run(prog, capture_output=True, text=True, env=env, timeout=600)
    return (p.stdout + p.stderr).count("Begin GC")


def one(prog, mode: str) -> dict:
    script = cache_dir() / f"gcwatch_{abs(hash(mode))}.gdb"
    script.write_text(IN_GDB.replace("MODE", repr(bool(mode))))
    cmds = ["starti"] + ([f"stackmap gc-watch on {mode}".strip()] if mode else [])
    out, err, rc = gdb_batch(cmds + [f"source {script}"], prog, timeout=1800)
    line = next((x for x in out.splitlines() if x.startswith("@@BENCH ")), None)
    if line is None:
        sys.exit(f"gdb gave no result (rc {rc}):\n{out[-3000:]}\n{err[-3000:]}")
    return json.loads(line[len("@@BENCH ") :])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--rounds", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    prog = program(args.rounds)
    n = runtime_collections(prog)
    modes = {
        "plugin loaded, gc-watch off": "",
        "gc-watch on": " ",
        "gc-watch on --verify": "--verify",
    }
    times: dict[str, list[float]] = {k: [] for k in modes}
    checked: dict[str, set] = {k: set() for k in modes}
    for _ in range(args.repeat):
        for label, mode in modes.items():
            res = one(prog, mode)
            times[label].append(res["seconds"])
            if res["status"]:
                st = res["status"]
                checked[label].add((st["collections"], st["violations"], st["errors"]))
    base = statistics.median(times["plugin loaded, gc-watch off"])
    rows = []
    for label in modes:
        med = statistics.median(times[label])
        per = (med - base) / n * 1000 if n and label != "plugin loaded, gc-watch off" else None
        rows.append(
            [
                label,
                fmt_s(med),
                f"{min(times[label]):.2f}-{max(times[label]):.2f} s",
                f"{med / base:.1f}x" if base else "-",
                f"{per:.1f} ms" if per is not None else "-",
                ", ".join(f"{c} checked, {v} violations, {e} errors" for c, v, e in checked[label])
                or "-",
            ]
        )
    print(f"gc_churn.wat, {args.rounds} rounds: {n} collections (the runtime's own count)")
    table(
        rows,
        ["GDB, continue to the end", "median", "range", "vs off", "per collection", "gc-watch"],
    )


if __name__ == "__main__":
    main()
