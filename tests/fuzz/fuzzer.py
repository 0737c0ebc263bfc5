"""Two in-process fuzzers of the image decoder, each case bounded in time and memory.

- `mutate`: real images (and the valid images `structured` makes) with random edits:
  bytes, u32/u64 fields set to boundary values, runs zeroed, copied, inserted,
  deleted, truncated, biased towards headers and the sections the tools read.
- `structured`: images rebuilt from parts (tests/fuzz/elfgen.py) with sections
  resized or declared larger than they are, huge counts (entries, bitmap words,
  symbols), long and hostile names (control characters, 5,000-digit indices,
  Unicode digits), sparse layouts, both byte orders.

Every case goes through `exercise()`: the one validity (validate_image), then
everything `info`/`dump`/`lookup` read and print, with the checks the issue asks
for: only StackMapsError may escape; a valid image decodes completely and
consistently; no text made for the terminal holds a control character. The
fuzzer checks its own bounds: every case's wall time (CASE_SECONDS), a
tracemalloc peak on a sample of cases (CASE_BYTES), and RLIMIT_AS on the
whole process as a backstop.

    .venv/bin/python tests/fuzz/fuzzer.py [--cases N] [--seconds S] [--seed X] [SEED.cwasm...]
"""

import argparse
import random
import resource
import struct
import sys
import time
import tracemalloc
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import elfgen  # noqa: E402
from wasmtime_stackmaps import StackMapsError, WasmtimeImage  # noqa: E402
from wasmtime_stackmaps.cli import entry_record, image_info  # noqa: E402
from wasmtime_stackmaps.text import has_unsafe, safe  # noqa: E402
from wasmtime_stackmaps.validate import validate_image  # noqa: E402

CASE_SECONDS = 2.0  # CPU seconds a case (the inputs are small: anything slower is a bug)
CASE_BYTES = 64 << 20  # tracemalloc peak per sampled case
ADDRESS_SPACE = 2 << 30  # RLIMIT_AS of the fuzzing process
TRACE_EVERY = 16

U32 = [0, 1, 2, 3, 4, 7, 8, 31, 32, 33, 0xFF, 0x100, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000,
       0xFFFFFFFE, 0xFFFFFFFF, 1 << 30, (1 << 30) + 1, 1 << 18, (1 << 18) + 1]  # fmt: skip
U64 = [0, 1, 0x40, 0x1000, 0xFFFFFFFF, 1 << 32, 1 << 40, 1 << 62, (1 << 63) - 1, (1 << 64) - 1]
NAMES = [
    "wasm[0]::function[{i}]::f",
    "wasm[0]::function[{i}]",
    "wasm[0]::function[{i}]::\x1b[2J\x07\nforged",
    "wasm[0]::array_to_wasm_trampoline[{i}]",
    "wasm[" + "9" * 5000 + "]::function[{i}]",
    "wasm[0]::function[\u00b2]::unicode",
    "wasm[0]::function[{i}]::" + "x" * 3000,
    "\u202ewasm[0]::function[{i}]",
    "",
]


class Failure(AssertionError):
    pass


def exercise(data: bytes) -> str:
    """Run one input through everything the offline tools do; the outcome's kind."""
    try:
        img = WasmtimeImage.from_bytes(data, "fuzz.cwasm")
    except StackMapsError:
        return "not an image"
    try:
        sm = validate_image(img)
    except StackMapsError as e:
        _check_text(str(e))
        _after_invalid(img)
        return "invalid"
    info = image_info(img)
    _check_text(" ".join(safe(v) for v in info.values() if isinstance(v, str)))
    if sm is None:
        return "valid, no stack maps"
    n = len(sm)
    prev = -1
    for i, e in enumerate(sm):
        if i >= 2000:
            break
        if e.pc <= prev or not e.offsets or e.offsets[-1] >= e.frame_size:
            raise Failure(f"valid section, bad entry {i}: {e}")
        prev = e.pc
        if sm.lookup(e.pc) != e:
            raise Failure(f"lookup({e.pc:#x}) differs from entry {i}")
        rec = entry_record(img, e)
        if rec["function"] is not None:
            _check_text(safe(rec["function"]))
    if not (0 < info["distinct_maps"] <= n or info["distinct_maps"] == n == 0):
        raise Failure(f"distinct_maps {info['distinct_maps']} for {n} entries")
    for f in img.functions[:50]:
        _check_text(safe(f.name))
        got = img.function_at(f.start)
        if got is not None and not got.start <= f.start < got.end:
            raise Failure(f"function_at({f.start:#x}) gave {got}")
    img.find_function("1")
    img.find_function("\u00b2")
    return "valid"


def _after_invalid(img: WasmtimeImage) -> None:
    """An invalid image: the lazy APIs (the debuggers use them) still raise StackMapsError only."""
    for fn in (
        lambda: img.text_range,
        lambda: img.engine,
        lambda: len(img.functions),
        lambda: img.stackmaps,
        lambda: img.lookup(0x10),
        lambda: img.function_at(0x10),
        lambda: img.describe_no_map(0x10),
    ):
        try:
            fn()
        except StackMapsError:
            pass
    try:
        sm = img.stackmaps
        if sm is not None:
            for i in range(min(len(sm), 64)):
                try:
                    sm.entry(i)
                except StackMapsError:
                    pass
    except StackMapsError:
        pass


def _check_text(text: str) -> None:
    if has_unsafe(text):
        raise Failure(f"raw control character in text output: {text[:200]!r}")


# -- the structure-aware generator ---------------------------------------------------------


def structured(rng: random.Random) -> bytes:
    nfunc = rng.choice([0, 1, 2, 5, 30])
    text_size = rng.choice([0x40, 0x1000, 0x10000])
    funcs = []
    for i in range(nfunc):
        start = rng.randrange(0, text_size)
        name = rng.choice(NAMES).format(i=rng.choice([i, 0, 4294967295, 10**12]))
        funcs.append((start, rng.choice([0, 16, 0x40, 1 << 40]), name))
    entries = []
    pc = rng.randrange(0, 64)
    for _ in range(rng.choice([0, 1, 3, 20, 200])):
        pc += rng.choice([0, 1, 4, 16, 0x100]) if rng.random() < 0.97 else -8
        fs = rng.choice([16, 32, 64, 4096, 1 << 30, (1 << 30) + 4, 0, 0xFFFFFFFF])
        nwords = rng.choice([1, 1, 1, 2, 8, 3000])
        pattern = [rng.choice([0, 1, 0b101, 0xFFFFFFFF, 1 << 31]) for _ in range(3)]
        words = (pattern * (nwords // 3 + 1))[:nwords]
        if rng.random() < 0.9:  # mostly believable: slots below the frame size
            words = [w & 1 for w in words[: max(1, min(nwords, fs // 128))]] or [1]
            words[-1] |= 1
        entries.append((pc & 0xFFFFFFFF, fs, words))
    img = elfgen.standard(
        functions=funcs,
        entries=entries,
        text_size=text_size,
        version=rng.choice(["49", "50.0.1", "31", "\x1b[31m", "9" * 200, ""]),
        target=rng.choice(["x86_64-unknown-linux-gnu", "pulley64", "a\x07b", "t" * 300]),
    )
    img.little_endian = rng.random() < 0.9
    img.machine = rng.choice(list(elfgen.EM))
    img.flags = rng.choice([1, 2, 1 | 8, 2 | 4, 0xFFFFFFFF])
    sm = img.section(".wasmtime.stackmap")
    if rng.random() < 0.2:  # a lying entry count or bitmap word count
        words = bytearray(sm.data)
        pos = 0 if rng.random() < 0.5 else rng.randrange(0, max(1, len(words) // 4)) * 4
        words[pos : pos + 4] = struct.pack("<I", rng.choice(U32))
        sm.data = bytes(words)
    for s in img.sections:
        r = rng.random()
        if r < 0.04:
            s.declared_size = rng.choice([0, 1, len(s.data) + 1, 1 << 30, (1 << 64) - 1])
        elif r < 0.06:
            s.offset = rng.choice([0, 8, 1 << 16, 1 << 20])  # overlapping or sparse
        elif r < 0.07:
            s.data = s.data * rng.choice([2, 50])  # resized
    if rng.random() < 0.05:
        img.sections.pop(rng.randrange(len(img.sections)))
    if rng.random() < 0.05:
        img.sections.append(elfgen.Section(rng.choice([".text", ".symtab", ".strtab"]), b"\0" * 64))
    if rng.random() < 0.03:
        img.shoff = rng.choice([0, 8, 1 << 20])
    return elfgen.build(img)


# -- mutations of whole images -------------------------------------------------------------


def mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    hot = _hot_regions(data)
    for _ in range(rng.choice([1, 1, 2, 3, 6])):
        if not b:
            break
        if hot and rng.random() < 0.7:
            lo, hi = rng.choice(hot)
            pos = rng.randrange(lo, max(lo + 1, min(hi, len(b))))
        else:
            pos = rng.randrange(len(b))
        pos = min(pos, len(b) - 1)
        kind = rng.choice(["byte", "u32", "u32", "u64", "zero", "copy", "insert", "delete", "cut"])
        if kind == "byte":
            b[pos] = rng.randrange(256)
        elif kind == "u32":
            b[pos : pos + 4] = struct.pack("<I", rng.choice(U32))
        elif kind == "u64":
            b[pos : pos + 8] = struct.pack("<Q", rng.choice(U64))
        elif kind == "zero":
            n = rng.choice([1, 4, 64])
            b[pos : pos + n] = bytes(len(b[pos : pos + n]))
        elif kind == "copy":
            src = rng.randrange(len(b))
            b[pos : pos + 16] = b[src : src + 16]
        elif kind == "insert":
            b[pos:pos] = bytes([rng.randrange(256)]) * rng.choice([1, 4, 64])
        elif kind == "delete":
            del b[pos : pos + rng.choice([1, 4, 64])]
        else:
            del b[pos:]
    return bytes(b)


def _hot_regions(data: bytes) -> list[tuple[int, int]]:
    """The ELF header, the section header table and the first bytes of every section."""
    try:
        img = WasmtimeImage.from_bytes(data)
        out = [(0, 64), (img.header.shoff, img.size)]
        for off, size in img.sections.values():
            out.append((off, off + min(size, 4096)))
        return out
    except StackMapsError:
        return [(0, 64)]


# -- the driver ----------------------------------------------------------------------------


def run(
    cases: int, seconds: float, seed: int, seeds: list[bytes], log=print, progress: int = 0
) -> tuple[Counter, float]:
    """Run up to `cases` cases (or `seconds`); returns (counts by kind and outcome, worst
    case seconds). Raises Failure on the first broken case, with how to repeat it."""
    rng = random.Random(seed)
    counts: Counter = Counter()
    worst = 0.0
    start = time.monotonic()
    pool = list(seeds) or [elfgen.build(elfgen.standard())]
    for i in range(cases):
        if time.monotonic() - start > seconds:
            break
        case_rng = random.Random(rng.getrandbits(64))
        state = case_rng.getstate()
        kind = "structured" if i % 2 else "mutate"
        data = (
            structured(case_rng)
            if kind == "structured"
            else mutate(case_rng, case_rng.choice(pool))
        )
        traced = i % TRACE_EVERY == 0
        if traced:
            tracemalloc.start()
        t = time.process_time()  # CPU time: the machine may be shared
        try:
            outcome = exercise(data)
        except Failure as f:
            raise Failure(f"case {i} ({kind}, seed {seed}): {f}") from None
        except Exception as e:
            raise Failure(
                f"case {i} ({kind}, seed {seed}): {type(e).__name__}: {e} (not a StackMapsError)"
            ) from e
        finally:
            took = time.process_time() - t
            peak = tracemalloc.get_traced_memory()[1] if traced else 0
            if traced:
                tracemalloc.stop()
        worst = max(worst, took)
        if took > CASE_SECONDS:
            raise Failure(f"case {i} ({kind}, seed {seed}): {took:.1f} s (state {hash(state)})")
        if peak > CASE_BYTES:
            raise Failure(f"case {i} ({kind}, seed {seed}): {peak >> 20} MB allocated")
        counts[f"{kind}: {outcome}"] += 1
        if progress and (i + 1) % progress == 0:
            log(f"{i + 1} cases, {time.monotonic() - start:.0f} s, slowest {worst * 1e3:.1f} ms")
        if kind == "structured" and outcome == "valid" and len(pool) < 64:
            pool.append(data)  # valid structured images seed the mutator too
    return counts, worst


def limit_memory() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    want = ADDRESS_SPACE if hard == resource.RLIM_INFINITY else min(ADDRESS_SPACE, hard)
    resource.setrlimit(resource.RLIMIT_AS, (want, hard))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=1_000_000)
    ap.add_argument("--seconds", type=float, default=float("inf"))
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--progress", type=int, default=0, help="print a line every N cases")
    ap.add_argument("images", nargs="*", help="real .cwasm images to mutate")
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else random.randrange(1 << 32)
    limit_memory()
    seeds = [Path(p).read_bytes() for p in a.images]
    t = time.monotonic()
    try:
        counts, worst = run(a.cases, a.seconds, seed, seeds, progress=a.progress)
    except Failure as f:
        print(f"FAILED: {f}", file=sys.stderr)
        return 1
    total = sum(counts.values())
    print(
        f"seed {seed}: {total} cases in {time.monotonic() - t:.1f} s, slowest {worst * 1e3:.1f} ms"
    )
    for k, v in sorted(counts.items()):
        print(f"  {k:40} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
