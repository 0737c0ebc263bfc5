"""Reading a stack's bytes as words: the bounded, page-wise reads the frame finders share.

The thread stack scan (walk.py), the Pulley finders (pulley.py) and the fiber
finder (fibers.py) all read "from an address up to the end of its mapping, at
most N bytes, stopping at the first unreadable page" and look at the 8-byte
words there. One helper does it, through the command's chunked MemoryCache.
"""

import struct
from typing import NamedTuple

from .discover import ImageRegistry
from .errors import ReadError
from .target import MemoryCache, Region, Target


class Seek(NamedTuple):
    """What a search for activations needs besides the stack: the command's memory,
    the target, its images and the depth limit of a walk."""

    mem: MemoryCache
    target: Target
    registry: ImageRegistry
    max_depth: int


def span_above(regions: list[Region] | None, addr: int, limit: int) -> tuple[int, int]:
    """[lo, hi): from `addr` (8-aligned down) up to the end of the region holding it (when
    the map is known), at most `limit` bytes."""
    lo = addr - addr % 8
    hi = lo + limit
    for r in regions or ():
        if r.start <= lo < r.end:
            hi = min(hi, r.end)
            break
    return lo, hi


def read_up(mem: MemoryCache, lo: int, hi: int) -> bytes:
    """The readable bytes of [lo, hi) from lo up: page by page (each served by the cache's
    bulk chunks), stopping at the first page that cannot be read."""
    parts = []
    pos = lo
    while pos < hi:
        n = min(MemoryCache.PAGE - pos % MemoryCache.PAGE, hi - pos)
        try:
            parts.append(mem.read(pos, n))
        except ReadError:
            break
        pos += n
    return b"".join(parts)


def words(data: bytes, little: bool) -> tuple[int, ...]:
    """The whole 8-byte words of `data` in the target's byte order."""
    n = len(data) // 8
    return struct.unpack(("<" if little else ">") + f"{n}Q", data[: n * 8])


def words_above(
    mem: MemoryCache, regions: list[Region] | None, addr: int, limit: int, little: bool
) -> tuple[int, tuple[int, ...]]:
    """(base, words) of the readable stack above `addr` (see span_above and read_up)."""
    lo, hi = span_above(regions, addr, limit)
    return lo, words(read_up(mem, lo, hi), little)
