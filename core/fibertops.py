"""Where suspended fiber stacks end: the top of each candidate mapping, and page ends
inside a mapping the kernel merged with its neighbour above.

Wasmtime maps a fiber stack as one anonymous mapping: a guard page (no access)
at the bottom, the read-write stack above it, the stack's top at the end of
the mapping (fiber/src/unix.rs, `MmapFiberStack::new`; the pooling allocator
keeps a guard page under each stack of its pool the same way). Nothing keeps
the kernel from putting another anonymous read-write mapping right above the
stack and merging the two into one: under Pulley the interpreter's stack (a
plain allocation, no guard) often lands there. Then the mapping's end is not
the fiber's top; the top is a page end inside it. A fiber's stack never
continues a read-write mapping below it (its guard page is there), so the
stack starts where the candidate mapping starts and its top is the first page
end above that start holding a suspended fiber's top words (0 at top-8, a
saved SP between the start and top-16 at top-16).

Cost, bounded: a mapping whose own end holds no fiber is read from its start
up to MAX_FIBER_STACK bytes (in SCAN_CHUNK reads, not kept in the cache), and
all such reads of one command stop at SCAN_BUDGET bytes, the mappings right
above a one-page guard first. Only the top words of each page end are
looked at; at most MAX_INNER_TOPS page ends that look like a fiber's top are
searched for a saved exit record (fibers.py), each in its live part, already
read; the bytes of those live parts count against the same budget. The live
parts under mapping ends share LIVE_BUDGET. A stack longer than MAX_FIBER_STACK merged with its neighbour is missed.

A guard page is listed with no access (GDB live), read-only (a core written by
GDB's gcore marks every segment readable) or not at all (a live LLDB leaves
it out): never read-write, so "not continuing a read-write mapping below"
holds in all three.
"""

import bisect
import struct
from collections.abc import Iterator
from typing import NamedTuple

from .errors import ReadError
from .target import MemoryCache, Region, ThreadState

MAX_REGIONS = 100_000
MAX_LIVE = 8 * 1024 * 1024  # bytes of a suspended fiber's live part searched, from its top
MAX_FIBER_STACK = 16 * 1024 * 1024  # Wasmtime's default async stack is 2 MiB
SCAN_BUDGET = 64 * 1024 * 1024  # about half a second of GDB reads
LIVE_BUDGET = 64 * 1024 * 1024  # live parts searched under mapping tops, all together
SCAN_CHUNK = 1024 * 1024
MAX_INNER_TOPS = 256


def candidate_regions(regions: list[Region] | None, threads: list[ThreadState]) -> list[Region]:
    """Anonymous read-write regions that no thread is running on and that do not continue
    a read-write mapping right below them (a fiber stack sits on a guard page; LLDB does
    not list such a page at all, GDB and core files list it without write permission)."""
    if not regions:
        return []
    rs = sorted(regions, key=lambda r: r.start)
    sps = sorted(t.sp for t in threads if t.sp)
    out = []
    for k, r in enumerate(rs):
        if r.path or not r.perms.startswith("rw") or "x" in r.perms or r.end - r.start < 4096:
            continue
        below = rs[k - 1] if k else None
        if below is not None and below.end == r.start and below.perms.startswith("rw"):
            continue
        i = bisect.bisect_left(sps, r.start)
        if i < len(sps) and sps[i] < r.end:
            continue  # a thread runs on it: the thread's walk reports its frames
        out.append(r)
        if len(out) >= MAX_REGIONS:
            break
    return out


def suspended_top(lo: int, top: int, saved_sp: int, running: int) -> bool:
    """Do the two words under `top` (saved SP at top-16, result cell at top-8) say a fiber
    whose stack starts at `lo` is suspended there?"""
    return running == 0 and lo <= saved_sp < top - 16 and saved_sp % 8 == 0


class InnerTop(NamedTuple):
    stack: Region  # [mapping start, top): the fiber's stack inside the merged mapping
    saved_sp: int
    live: bytes | None  # the bytes of [live_from, top), when all of them were read
    live_from: int


def _guard_first(regions: list[Region] | None, cands: list[Region]) -> list[Region]:
    """`cands` with those right above a one-page guard first (listed without write access,
    as GDB and core files list it, or a one-page hole, as LLDB leaves it out); otherwise by
    address."""
    page = MemoryCache.PAGE
    rs = sorted(regions or (), key=lambda r: r.start)
    ends = [r.end for r in rs]

    def key(r: Region) -> tuple[int, int]:
        i = bisect.bisect_right(ends, r.start) - 1  # the last mapping ending at or below
        below = rs[i] if i >= 0 else None
        guard = below is not None and (
            (below.end == r.start and below.end - below.start == page and below.perms[1:2] != "w")
            or below.end == r.start - page
        )
        return (0 if guard else 1, r.start)

    return sorted(cands, key=key)


class TopScan:
    """The bounded search for fiber tops inside merged mappings, for one command."""

    def __init__(self, mem: MemoryCache):
        self.mem = mem
        self.budget = SCAN_BUDGET
        self.live_budget = LIVE_BUDGET
        self.tops_left = MAX_INNER_TOPS

    def take_live(self, n: int) -> bool:
        """May a live part of n bytes under a mapping's top be searched? (A process full of
        mappings whose tops look like a fiber's must not cost MAX_LIVE each.)"""
        if n > self.live_budget:
            return False
        self.live_budget -= n
        return True

    def _window(self, lo: int, hi: int) -> list[tuple[int, bytes]]:
        """Readable chunks of [lo, hi), within the budget."""
        out = []
        pos = lo
        while pos < hi and self.budget > 0:
            n = min(SCAN_CHUNK, hi - pos, self.budget)
            n -= n % MemoryCache.PAGE
            if n <= 0:
                break
            self.budget -= n
            self.mem.reads += 1
            try:
                data = self.mem.target.read_memory(pos, n)
            except ReadError:
                data = b""
            if len(data) == n:
                out.append((pos, data))
            pos += n
        return out

    def inner_tops(self, r: Region) -> Iterator[InnerTop]:
        """Page ends inside `r` (not its end) under which a suspended fiber's top words sit,
        lowest first."""
        page = MemoryCache.PAGE
        hi = min(r.end - page, r.start + MAX_FIBER_STACK)
        if hi <= r.start or self.tops_left <= 0:
            return
        chunks = self._window(r.start, hi)
        fmt = self.mem.order.prefix + "QQ"
        for base, data in chunks:
            for off in range(page, len(data) + 1, page):
                saved_sp, running = struct.unpack_from(fmt, data, off - 16)
                top = base + off
                if not suspended_top(r.start, top, saved_sp, running):
                    continue
                live_from = max(saved_sp, top - MAX_LIVE)
                # Searching a live part costs a pass over its words: charged to the budget
                # (a mapping full of top-like words must not cost a pass per page).
                if self.budget < top - live_from:
                    return
                self.budget -= top - live_from
                self.tops_left -= 1
                yield InnerTop(
                    Region(r.start, top, r.perms, r.path),
                    saved_sp,
                    _gather(chunks, live_from, top),
                    live_from,
                )
                if self.tops_left <= 0:
                    return


def _gather(chunks: list[tuple[int, bytes]], lo: int, hi: int) -> bytes | None:
    """The bytes of [lo, hi) from consecutive read chunks, or None if any part was not read."""
    parts = []
    pos = lo
    for base, data in chunks:
        if base <= pos < base + len(data):
            n = min(hi, base + len(data)) - pos
            parts.append(data[pos - base : pos - base + n])
            pos += n
            if pos >= hi:
                return b"".join(parts)
    return None


def merged_candidates(regions: list[Region] | None, rest: list[Region]) -> list[Region]:
    """The candidate mappings whose end held no fiber and that have page ends inside, in
    the order the budget is spent on them."""
    return _guard_first(regions, [r for r in rest if r.end - r.start > MemoryCache.PAGE])
