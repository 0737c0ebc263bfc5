#!/usr/bin/env python3
"""Benchmark: `stackmap heap --stat` on a live heap of N objects (default 1,000,000), in GDB.

    .venv/bin/python benchmarks/bench_heap.py [--objects N] [--repeat R]

`wasmtime run -W gc=y` (CLI 49, copying collector) runs a generated module that
builds a linked list of N-1 $node structs plus one array, holds its head and
the array across a call, and traps there. In GDB, the time of
`stackmap heap --stat --json` (a fresh walk each time: nothing is cached
between commands), wall clock and the GDB process's CPU time (user + system:
what the command costs without the other processes of a shared machine), and
the objects it found (must be N). Goal: under 10 s for 1,000,000 objects.
"""

import argparse
import os
import statistics

from _common import cache_dir, fmt_s, gdb_batch, results_from, table, verdict, wasmtime_cli

GOAL = 10.0


def program(n):
    wat = cache_dir() / f"heap_{n}.wat"
    wat.write_text(
        f"""(module
  (type $node (struct (field $val i32) (field $next (ref null $node))))
  (type $arr (array (mut i32)))
  (func $stop (unreachable))
  (func $hold (param $l (ref null $node)) (param $a (ref $arr)) (result i32)
    (call $stop)
    (i32.add (struct.get $node $val (local.get $l)) (array.len (local.get $a))))
  (func (export "_start")
    (local $l (ref null $node)) (local $i i32)
    (loop $more
      (local.set $l (struct.new $node (local.get $i) (local.get $l)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $more (i32.lt_u (local.get $i) (i32.const {n - 1}))))
    (drop (call $hold (local.get $l) (array.new $arr (i32.const 7) (i32.const 100))))))
"""
    )
    return [wasmtime_cli(), "run", "-W", "gc=y", str(wat)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    cmd = (
        "python import json, time; t = time.perf_counter(); c = time.process_time(); "
        "d = gdb.execute('stackmap heap --stat --json', to_string=True); "
        "s = time.perf_counter() - t; c = time.process_time() - c; "
        "d = json.loads(d[d.index('{'):]); "
        "print('@@BENCH ' + json.dumps({'seconds': s, 'cpu': c, 'objects': d['objects'], "
        "'bytes': d['bytes'], 'stat': [(x['type'] or {}).get('name') for x in d['stat']]}))"
    )
    out, err, _ = gdb_batch(["run"] + [cmd] * args.repeat, program(args.objects), timeout=1800)
    res = results_from(out)
    if not res:
        raise SystemExit(f"no result:\n{out[-3000:]}\n{err[-3000:]}")
    secs = [r["seconds"] for r in res]
    cpu = min(r["cpu"] for r in res)
    best = min(secs)
    ok = best < GOAL and all(r["objects"] == args.objects for r in res)
    table(
        [
            [
                f"heap --stat, {args.objects:,} objects",
                fmt_s(best),
                fmt_s(statistics.median(secs)),
                fmt_s(cpu),
                f"{res[0]['objects']:,}",
                f"{res[0]['bytes']:,}",
                f"< {GOAL:.0f} s",
                verdict(ok),
            ]
        ],
        [
            "GDB",
            "best",
            "median",
            "GDB CPU (best)",
            "objects found",
            "object bytes",
            "goal",
            "",
        ],
    )
    print(f"types: {res[0]['stat']}; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
