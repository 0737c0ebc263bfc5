"""Randomized differential test: binaryen-generated GC modules, decoder vs objdump.

binaryen's `wasm-opt -ttf` turns random bytes into a valid random module. We
enable the GC-related features Wasmtime 49 accepts (reference types, GC,
tail calls, bulk memory, multivalue, ...) and leave out what it rejects or
cannot compile (legacy exception handling `try`, which is all binaryen emits
for EH; strings, stack switching, shared-everything, custom descriptors...).
Half the seeds also enable SIMD and relaxed SIMD; those are not compiled for
riscv64gc, whose Cranelift backend panics on SIMD without the V extension.

Each module is compiled with the wasmtime CLI for every native target and
Pulley, and the decoder must agree entry for entry with `wasmtime objdump`.
Modules Wasmtime refuses are skipped and counted. The normal run tries a few
seeds; `--long` tries many. The base seed is random unless
STACKMAPS_FUZZ_SEED is set; every failure names the seed that reproduces it.
"""

import os
import random
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import tooling
from core_fixtures import long_run
from wasmtime_stackmaps import StackMapsError, WasmtimeImage

FEATURES = [
    "--mvp-features",
    "--enable-sign-ext",
    "--enable-mutable-globals",
    "--enable-nontrapping-float-to-int",
    "--enable-bulk-memory",
    "--enable-bulk-memory-opt",
    "--enable-reference-types",
    "--enable-multivalue",
    "--enable-gc",
    "--enable-tail-call",
    "--enable-extended-const",
]
SIMD_FEATURES = ["--enable-simd", "--enable-relaxed-simd"]
TARGETS = tooling.NATIVE_TARGETS + ("pulley64",)
NO_SIMD_TARGETS = {"riscv64gc-unknown-linux-gnu"}


def follows_x86_call(text: bytes, pc: int) -> bool:
    """Whether an x86_64 call (`e8 rel32`, or `ff /2` of 2..7 bytes) may end at `pc`.

    Checks that an entry objdump did not print is at least a plausible return address.
    """
    if pc >= 5 and text[pc - 5] == 0xE8:
        return True
    return any(
        pc >= k and text[pc - k] == 0xFF and (text[pc - k + 1] >> 3) & 7 == 2 for k in range(2, 8)
    )


def one_seed(wasm_opt: str, workdir, seed: int):
    """Generate, compile and compare one module. Returns (stats, failures)."""
    rng = random.Random(seed)
    stats = {"generated": 0, "entries": {}, "refused": {}, "compiled": {}, "simd": 0}
    stats["unprinted"] = {}  # target: entries objdump could not print (past_printed_code)
    failures = []
    src = workdir / f"seed-{seed}.bin"
    wasm = workdir / f"seed-{seed}.wasm"
    src.write_bytes(rng.randbytes(rng.choice([2000, 6000, 20000, 40000])))
    simd = rng.random() < 0.5
    features = FEATURES + (SIMD_FEATURES if simd else [])
    r = subprocess.run(
        [wasm_opt, "-ttf", str(src), *features, "-o", str(wasm)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if r.returncode != 0:
        failures.append(f"seed {seed}: wasm-opt -ttf failed: {r.stderr[-1000:]}")
        return stats, failures
    stats["generated"] = 1
    stats["simd"] = int(simd)
    for target in TARGETS:
        if simd and target in NO_SIMD_TARGETS:
            continue
        out = workdir / f"seed-{seed}-{target}.cwasm"
        try:
            tooling.compile_wat(wasm, out, target=target, flags=tooling.GC_WASM_FLAGS)
        except subprocess.CalledProcessError as e:
            first = e.stderr.strip().splitlines() or ["?"]
            stats["refused"][target] = first[0][:200]
            continue
        stats["compiled"][target] = 1
        try:
            img = WasmtimeImage.from_file(str(out))
            sm = img.stackmaps
            ours = [] if sm is None else [(e.pc, e.frame_size, tuple(e.offsets)) for e in sm]
            if sm is not None:
                sm.validate()
            names = [
                None if img.function_at(pc) is None else img.function_at(pc).name
                for pc, _, _ in ours
            ]
        except StackMapsError as e:
            failures.append(f"seed {seed} {target}: decoder error: {e}")
            continue
        od = tooling.objdump(out)
        theirs = [m.key() for m in od.stack_maps]
        # Entries objdump cannot print (its disassembly of that function stopped
        # before them, see tooling.past_printed_code) are left out of the
        # comparison, but only those, and each must lie in the same function.
        unprinted = set()
        text_off, text_size = img.text_range
        text = out.read_bytes()[text_off : text_off + text_size]
        for i, (pc, _, _) in enumerate(ours):
            func = img.function_at(pc)
            held = func and tooling.past_printed_code(od, pc, func.end)
            if held:
                if held.name != func.name:
                    failures.append(f"seed {seed} {target}: {pc:#x} in {func.name} vs {held.name}")
                elif target.startswith("x86_64") and not follows_x86_call(text, pc):
                    failures.append(f"seed {seed} {target}: unprinted {pc:#x} follows no call")
                unprinted.add(i)
        if unprinted:
            ours = [e for i, e in enumerate(ours) if i not in unprinted]
            names = [n for i, n in enumerate(names) if i not in unprinted]
            stats["unprinted"][target] = len(unprinted)
        if ours != theirs:
            missing = sorted(set(theirs) - set(ours))[:5]
            extra = sorted(set(ours) - set(theirs))[:5]
            failures.append(
                f"seed {seed} {target}: decoder {len(ours)} entries, objdump "
                f"{len(theirs)}; only in objdump {missing}, only in decoder {extra}"
            )
            continue
        if names != [m.function for m in od.stack_maps]:
            failures.append(f"seed {seed} {target}: function_at() names differ from objdump's")
            continue
        stats["entries"][target] = len(ours)
        out.unlink()
    return stats, failures


def one_seed_guarded(wasm_opt: str, workdir, seed: int):
    try:
        return one_seed(wasm_opt, workdir, seed)
    except Exception as e:  # a tool timed out, objdump output did not parse, ...
        import traceback

        return (
            {
                "generated": 0,
                "entries": {},
                "refused": {},
                "compiled": {},
                "simd": 0,
                "unprinted": {},
            },
            [f"seed {seed}: {type(e).__name__}: {e}\n{traceback.format_exc()}"],
        )


def _compiled_without_entries(results, target: str) -> bool:
    compiled = any(target in stats["compiled"] for stats, _ in results)
    return compiled and not sum(stats["entries"].get(target, 0) for stats, _ in results)


def test_binaryen_random_modules(request, wasm_opt, tmp_path, random_stats, compared):
    long = long_run(request.config)
    count = 60 if long else 5
    base = int(os.environ.get("STACKMAPS_FUZZ_SEED") or random.randrange(1 << 32))
    seeds = [base + i for i in range(count)]
    print(
        f"binaryen random modules: base seed {base} (STACKMAPS_FUZZ_SEED={base} repeats "
        f"this run), seeds {seeds[0]}..{seeds[-1]}"
    )
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        results = list(pool.map(lambda s: one_seed_guarded(wasm_opt, tmp_path, s), seeds))
        # A few seeds can compile for a target (riscv64 takes only the non-SIMD half) and
        # hold no ref live across a call: that is a valid module, not a decoder bug. Add
        # seeds, boundedly, until every target that compiled something was compared on
        # real entries, so the per-target check below is never vacuous.
        for _ in range(4):
            if not any(_compiled_without_entries(results, t) for t in TARGETS):
                break
            more = [seeds[-1] + 1 + i for i in range(count)]
            seeds += more
            results += list(pool.map(lambda s: one_seed_guarded(wasm_opt, tmp_path, s), more))
    count = len(seeds)
    failures = [f for _, fs in results for f in fs]
    generated = sum(s["generated"] for s, _ in results)
    random_stats["modules generated"] += generated
    random_stats["modules generated with SIMD"] += sum(s["simd"] for s, _ in results)
    per_target = {}
    for t in TARGETS:
        n_compiled = sum(t in s["compiled"] for s, _ in results)
        n_refused = sum(t in s["refused"] for s, _ in results)
        n_entries = sum(s["entries"].get(t, 0) for s, _ in results)
        per_target[t] = (n_compiled, n_refused, n_entries)
        random_stats[f"{t}: compiled"] += n_compiled
        random_stats[f"{t}: refused by wasmtime"] += n_refused
        random_stats[f"{t}: entries compared"] += n_entries
        random_stats[f"{t}: entries objdump did not print"] += sum(
            s["unprinted"].get(t, 0) for s, _ in results
        )
        compared[f"random:{t}"] += n_entries
    refusals = sorted({r for s, _ in results for r in s["refused"].values()})
    summary = (
        f"base seed {base}: {generated}/{count} generated; per target "
        f"(compiled, refused, entries): {per_target}; refusals: {refusals[:5]}"
    )
    print(summary)
    assert not failures, f"{len(failures)} disagreements ({summary}):\n" + "\n".join(failures)
    assert generated == count, summary
    x86 = per_target["x86_64-unknown-linux-gnu"]
    assert x86[0] > 0, f"no random module compiled for x86_64: {summary}"
    assert x86[2] > 0, f"random modules compiled but had no stack-map entries: {summary}"
    for t, (n_compiled, _, n_entries) in per_target.items():
        assert n_compiled == 0 or n_entries > 0, f"{t}: compiled modules but no entries: {summary}"


def test_entry_objdump_cannot_print(wasm_opt, tmp_path, monkeypatch):
    """Seed 1488473968 on x86_64: capstone stops at the jump table inside
    function[23], so objdump prints no stack map at 0x211d (after a call to
    gc_alloc_raw). The comparison must excuse exactly that entry and still match
    all 84 others."""
    monkeypatch.setattr(sys.modules[__name__], "TARGETS", ("x86_64-unknown-linux-gnu",))
    stats, failures = one_seed(wasm_opt, tmp_path, 1488473968)
    assert not failures
    assert stats["unprinted"] == {"x86_64-unknown-linux-gnu": 1}
    assert stats["entries"] == {"x86_64-unknown-linux-gnu": 84}
