#!/usr/bin/env python3
"""Benchmark 1: decoding `.wasmtime.stackmap`.

(a) A synthetic, valid image with 1,000,000 stack-map entries (the section
    written by `wasmtime_stackmaps.stackmap.encode`, wrapped in a Wasmtime-style
    ELF by benchmarks/_elf.py, 10,000 function symbols): open + index time, a
    lookup's median time, memory beyond the section bytes (tracemalloc).
(b) A real image compiled by the `wasmtime` CLI (49) from a generated module
    with 10,000 functions, each keeping GC refs live across two calls (30,000
    entries): time to the answer "the stack map at pc X" with
    `wasmtime objdump --stack-maps` versus `wasmtime-stackmaps lookup`.

    .venv/bin/python benchmarks/bench_decode.py [--entries N] [--functions N]
"""

import argparse
import gc
import os
import random
import statistics
import subprocess
import sys
import time
import tracemalloc

import _elf
import _gen
from _common import REPO, cache_dir, fmt_s, median_time, table, verdict, wasmtime_cli
from wasmtime_stackmaps import WasmtimeImage, encode
from wasmtime_stackmaps.stackmap import SECTION_NAME

GOAL_OPEN = 0.050
GOAL_LOOKUP = 5e-6
GOAL_BYTES_PER_ENTRY = 4
GOAL_OBJDUMP_RATIO = 10


def synthetic_image(n: int, nfuncs: int = 10_000):
    path = cache_dir() / f"synthetic_{n}.cwasm"
    spacing = 16
    text_size = spacing * n + 4096
    if not path.exists():
        rnd = random.Random(1)
        # 64 distinct maps, shared by many entries (as Wasmtime shares identical maps).
        maps = []
        for k in range(64):
            fs = 16 * (2 + k % 20)
            offs = tuple(sorted(rnd.sample(range(0, fs, 4), 1 + k % 5)))
            maps.append((fs, offs))
        entries = [(spacing * i + 8, *maps[rnd.randrange(64)]) for i in range(n)]
        per = text_size // nfuncs
        funcs = [(per * j, per, f"wasm[0]::function[{j}]::f{j}") for j in range(nfuncs)]
        t0 = time.perf_counter()
        sec = encode(entries)
        data = _elf.build_image(text_size, funcs, sec)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        print(
            f"(built {path.name}: {len(data)} bytes, section {len(sec)} bytes, "
            f"{time.perf_counter() - t0:.1f} s)"
        )
    return path


def open_index(path):
    img = WasmtimeImage.from_file(str(path))
    _ = img.text_range  # fail now on a broken image
    sm = img.stackmaps
    return img, sm


def _open_rows(path, n: int):
    """Open + index time (median of 9 fresh opens), building Functions, validate()."""
    rows = []
    # Warm imports (pyelftools) and the page cache once; then time fresh opens.
    open_index(path)
    times = []
    for _ in range(9):
        gc.collect()
        t0 = time.perf_counter()
        img, sm = open_index(path)
        times.append(time.perf_counter() - t0)
    t_open = statistics.median(times)
    assert len(sm) == n, len(sm)
    rows.append(
        [
            "open + index (header, sections, .wasmtime.stackmap)",
            fmt_s(t_open),
            f"< {fmt_s(GOAL_OPEN)}",
            verdict(t_open < GOAL_OPEN),
        ]
    )
    t0 = time.perf_counter()
    _ = img.functions
    t_funcs = time.perf_counter() - t0
    rows.append(["build all 10,000 Function records (img.functions)", fmt_s(t_funcs), "", ""])
    t0 = time.perf_counter()
    sm.validate()
    t_val = time.perf_counter() - t0
    rows.append(["validate() every entry (offline `check`)", fmt_s(t_val), "", ""])
    return rows, img, sm, t_open


def _per_call(fn, args, repeat=21):
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for a in args:
            fn(a)
        ts.append((time.perf_counter() - t0) / len(args))
    return statistics.median(ts)


def _lookup_rows(img, sm, n: int):
    """Lookups: batches of random hits, and random misses."""
    rnd = random.Random(2)
    pcs = sm.pcs
    hits = [pcs[rnd.randrange(n)] for _ in range(2000)]
    misses = [p + 4 for p in hits]
    t_hit = _per_call(img.lookup, hits)
    t_miss = _per_call(img.lookup, misses)
    t_find = _per_call(sm.find, hits)

    def answer(pc):  # what a frame needs: the map and the function name
        img.lookup(pc)
        img.function_at(pc)

    t_answer = _per_call(answer, hits)
    rows = []
    rows.append(
        [
            "lookup, hit (map decoded), median",
            fmt_s(t_hit),
            f"< {fmt_s(GOAL_LOOKUP)}",
            verdict(t_hit < GOAL_LOOKUP),
        ]
    )
    rows.append(
        [
            "lookup, miss (not a safepoint), median",
            fmt_s(t_miss),
            f"< {fmt_s(GOAL_LOOKUP)}",
            verdict(t_miss < GOAL_LOOKUP),
        ]
    )
    rows.append(["find (binary search only), median", fmt_s(t_find), "", ""])
    rows.append(["lookup + function_at, median", fmt_s(t_answer), "", ""])
    return rows, hits, t_hit


def _memory_rows(path, n: int, hits):
    """Memory: what open + index allocates beyond the section's own bytes (which are
    counted only when they were copied: a file's are mapped, not allocated)."""
    rows = []
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    img, sm = open_index(path)
    section_bytes = img.sections[SECTION_NAME][1]
    cur, peak = tracemalloc.get_traced_memory()
    for p in hits[:1000]:
        img.lookup(p)
    cur2, peak2 = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # The section read from a file is a view of its mmap'd pages: tracemalloc does not see
    # it, so there is nothing to take off.
    copied = section_bytes if isinstance(sm._raw, bytes | bytearray) else 0
    extra = cur - base - copied
    extra2 = cur2 - base - copied
    per_entry = extra / n
    rows.append(
        [
            f"memory beyond the section ({section_bytes:,} B) after open + index",
            f"{extra:,} B = {per_entry:.4f} B/entry",
            f"< {GOAL_BYTES_PER_ENTRY} B/entry",
            verdict(per_entry < GOAL_BYTES_PER_ENTRY),
        ]
    )
    rows.append(
        [
            "  ... after 1,000 lookups more",
            f"{extra2:,} B = {extra2 / n:.4f} B/entry",
            f"< {GOAL_BYTES_PER_ENTRY} B/entry",
            verdict(extra2 / n < GOAL_BYTES_PER_ENTRY),
        ]
    )
    rows.append(
        [
            "  peak during open + index, beyond the section",
            f"{peak - base - copied:,} B",
            "",
            "",
        ]
    )
    return rows, per_entry


def bench_synthetic(n: int):
    path = synthetic_image(n)
    rows, img, sm, t_open = _open_rows(path, n)
    lookup_rows, hits, t_hit = _lookup_rows(img, sm, n)
    del img, sm
    memory_rows, per_entry = _memory_rows(path, n, hits)
    print(f"\n(a) synthetic image {path.name}: {n:,} entries, {os.path.getsize(path):,} bytes")
    table(rows + lookup_rows + memory_rows, ["measure", "value", "goal", ""])
    return {"open": t_open, "lookup": t_hit, "bytes_per_entry": per_entry}


def real_image(nfuncs: int):
    wat = cache_dir() / f"funcs_{nfuncs}.wat"
    out = cache_dir() / f"funcs_{nfuncs}.cwasm"
    if not out.exists():
        wat.write_text(_gen.many_functions_wat(nfuncs))
        t0 = time.perf_counter()
        subprocess.run(
            [wasmtime_cli(), "compile", "-W", "gc=y", "-o", str(out), str(wat)], check=True
        )
        print(f"(compiled {out.name} with the wasmtime CLI in {time.perf_counter() - t0:.1f} s)")
    return out


def objdump_first_answer(path, func_name, func_start, pc, extra=()):
    """Seconds until `wasmtime objdump` has printed the stack map at `pc`, and the map line."""
    argv = [
        wasmtime_cli(),
        "objdump",
        "--addresses",
        "--funcs",
        "all",
        "--stack-maps",
        "--color",
        "never",
        *extra,
        str(path),
    ]
    want_abs = f"{pc:x}:"
    want_rel = f"{pc - func_start:x}:"
    header = f" {func_name}:"
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=1 << 16)
    in_func = at_pc = False
    answer = None
    for raw in p.stdout:
        line = raw.decode("utf-8", "replace")
        if not line.startswith(" "):
            in_func = line.rstrip("\n").endswith(header)
            continue
        s = line.strip()
        if in_func and (s.startswith(want_abs) or s.startswith(want_rel)):
            at_pc = True
            continue
        if at_pc:
            if "stack_map:" in s:
                answer = s
                break
            if not s.startswith(("├", "╰", "│")):
                at_pc = False
    elapsed = time.perf_counter() - t0
    p.kill()
    p.wait()
    return elapsed, answer


def _objdump_times(path, f, pc, ours_answer):
    """`wasmtime objdump` until the map at pc is printed: the full listing (what you do
    without knowing the function), and restricted to the function (best case)."""
    runs = [objdump_first_answer(path, f.name, f.start, pc) for _ in range(3)]
    t_obj = statistics.median(r[0] for r in runs)
    ans = runs[0][1]
    assert ans and ours_answer in ans, (ans, ours_answer)
    # objdump restricted to the function (needs the function name first: best case).
    runs_f = [
        objdump_first_answer(path, f.name, f.start, pc, ("--filter", f.name)) for _ in range(3)
    ]
    t_obj_f = statistics.median(r[0] for r in runs_f)
    assert runs_f[0][1] and ours_answer in runs_f[0][1], runs_f[0][1]
    return t_obj, t_obj_f


def _our_times(path, pc, e):
    """`wasmtime-stackmaps lookup` in a new process (with and without .pyc), and in-process."""
    # Ours: the console tool in a fresh process (Python start-up, imports, open, lookup),
    # with byte code cached (an installed checkout) and without (this sandbox sets
    # PYTHONDONTWRITEBYTECODE=1: every module compiled at each start).
    cli = [str(REPO / ".venv" / "bin" / "wasmtime-stackmaps"), "lookup", str(path), hex(pc)]
    warm_env = dict(os.environ, PYTHONPYCACHEPREFIX=str(cache_dir() / "pycache"))
    warm_env.pop("PYTHONDONTWRITEBYTECODE", None)
    import tempfile

    nopyc = tempfile.mkdtemp(prefix="wsm-nopyc-")
    cold_env = dict(os.environ, PYTHONPYCACHEPREFIX=nopyc, PYTHONDONTWRITEBYTECODE="1")

    def run_cli(env_=warm_env):
        out = subprocess.run(cli, capture_output=True, text=True, check=True, env=env_).stdout
        assert f"frame_size={e.frame_size}" in out, out

    run_cli()
    t_cli = median_time(run_cli, repeat=7)
    t_cli_nopyc = median_time(lambda: run_cli(cold_env), repeat=5)
    os.rmdir(nopyc)

    # Ours in-process (a debugger plugin's case: already loaded), fresh image each time.
    def inproc():
        im = WasmtimeImage.from_file(str(path))
        im.lookup(pc)
        im.function_at(pc)

    t_in = median_time(inproc, repeat=9)
    return t_cli, t_cli_nopyc, t_in


def bench_objdump(nfuncs: int):
    path = real_image(nfuncs)
    img = WasmtimeImage.from_file(str(path))
    sm = img.stackmaps
    n = len(sm)
    pc = sm.pcs[n // 2]
    e = img.lookup(pc)
    f = img.function_at(pc)
    ours_answer = f"frame_size={e.frame_size}, frame_offsets=[{', '.join(map(str, e.offsets))}]"
    t_obj, t_obj_f = _objdump_times(path, f, pc, ours_answer)
    t_cli, t_cli_nopyc, t_in = _our_times(path, pc, e)
    rows = []
    r_cli = t_obj / t_cli
    r_cli_f = t_obj_f / t_cli
    r_in = t_obj / t_in
    rows.append(["wasmtime objdump --stack-maps, until the map at pc is printed", fmt_s(t_obj), ""])
    rows.append(["wasmtime objdump --stack-maps --filter FUNC (best case)", fmt_s(t_obj_f), ""])
    rows.append(["wasmtime-stackmaps lookup FILE PC (new process, .pyc cached)", fmt_s(t_cli), ""])
    rows.append(
        ["wasmtime-stackmaps lookup FILE PC (new process, no .pyc)", fmt_s(t_cli_nopyc), ""]
    )
    rows.append(["open + lookup + function name, in-process", fmt_s(t_in), ""])
    rows.append(
        [
            "ratio objdump / wasmtime-stackmaps lookup",
            f"{r_cli:.1f}x",
            f">= {GOAL_OBJDUMP_RATIO}x {verdict(r_cli >= GOAL_OBJDUMP_RATIO)}",
        ]
    )
    rows.append(
        [
            "ratio objdump / lookup without .pyc",
            f"{t_obj / t_cli_nopyc:.1f}x",
            f">= {GOAL_OBJDUMP_RATIO}x {verdict(t_obj / t_cli_nopyc >= GOAL_OBJDUMP_RATIO)}",
        ]
    )
    rows.append(
        [
            "ratio objdump --filter / wasmtime-stackmaps lookup",
            f"{r_cli_f:.2f}x",
            f"(>= {GOAL_OBJDUMP_RATIO}x {verdict(r_cli_f >= GOAL_OBJDUMP_RATIO)})",
        ]
    )
    rows.append(["ratio objdump / in-process", f"{r_in:.0f}x", ""])
    print(
        f"\n(b) real image {path.name}: {len(img.functions):,} functions "
        f"({sum(1 for x in img.functions if x.is_wasm):,} wasm), {n:,} entries, "
        f"{os.path.getsize(path):,} bytes; question: the map at pc {pc:#x} "
        f"({f.name}+{pc - f.start:#x}, entry {n // 2}) -> {ours_answer}"
    )
    table(rows, ["measure", "value", "goal"])
    return {"objdump": t_obj, "cli": t_cli, "ratio": r_cli}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--functions", type=int, default=10_000)
    args = ap.parse_args()
    print(f"bench_decode: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    bench_synthetic(args.entries)
    bench_objdump(args.functions)


if __name__ == "__main__":
    main()
