"""The `.wasmtime.stackmap` section format alone: bytes in, plain records out.

Layout (Wasmtime >= 32, `crates/environ/src/compile/stack_maps.rs`), every
field a little-endian u32 whatever the ELF's own byte order::

    N, pc[N] (ascending text offsets of return addresses), index[N],
    data[...]: at data[index[i]]: frame_size, M, M bitmap words
    (bit b of word w set => live GC ref at SP + 4 * (32 * w + b)).

Wasmtime writes the maps one after another, one per entry, with no gaps; the
last bitmap word is never 0 (so every map has a live slot) and frames are at most 1 GiB (Cranelift's
`maximum_frame_size`). Opening indexes the header only (O(1): the pc and index
arrays are views on the section bytes); entries are decoded and checked one at
a time when asked for; `validate()` checks everything in one linear pass (maps
must form that chain, so shared or overlapping bitmaps cannot make any pass
quadratic). Every size is checked against the words present before anything is
decoded, and a map may hold at most MAX_LIVE_SLOTS live slots.
"""

import bisect
import operator
import struct
import sys
from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

from .errors import CorruptSection

SECTION_NAME = ".wasmtime.stackmap"

_U32 = struct.Struct("<I")
_DECODED_MAX = 4096
# Cranelift refuses frames above 1 GiB (`maximum_frame_size`).
MAX_FRAME_SIZE = 1 << 30
# Live GC refs at one call site: a bound on what one map may make us build (1 MiB of
# refs in one frame; real frames hold a handful).
MAX_LIVE_SLOTS = 1 << 18


class StackMapEntry(NamedTuple):
    """One safepoint: a return address (text offset) and its frame's live slots."""

    pc: int
    frame_size: int
    offsets: tuple[int, ...]  # byte offsets from SP, ascending
    map_index: int  # where the map starts in data[] (u32 units)


def _u32_view(buf: memoryview) -> Sequence[int]:
    """A read-only sequence of little-endian u32 over `buf` (zero copy on LE hosts)."""
    if sys.byteorder == "little":
        return buf.cast("I") if len(buf) else ()
    arr = array("I")
    arr.frombytes(buf.tobytes())
    arr.byteswap()
    return arr


class StackMapSection:
    """An indexed `.wasmtime.stackmap` section. `where` names it in error messages."""

    def __init__(self, data: bytes | memoryview, where: str = SECTION_NAME):
        self.where = where
        self._raw = data
        size = len(data)
        if size < 4:
            raise CorruptSection(f"{where}: section is {size} bytes, too short for the entry count")
        (n,) = _U32.unpack_from(data, 0)
        header = 4 + 8 * n
        if header > size:
            raise CorruptSection(
                f"{where}: entry count N={n} needs {header} bytes of pcs and indices "
                f"but the section has {size}"
            )
        if (size - header) % 4:
            raise CorruptSection(
                f"{where}: map data is {size - header} bytes, not a whole number of u32 words"
            )
        mv = memoryview(data)
        self._n = n
        self._pcs = _u32_view(mv[4 : 4 + 4 * n])
        self._index = _u32_view(mv[4 + 4 * n : header])
        self._data = _u32_view(mv[header:])
        self._nwords = (size - header) // 4
        self._header = header
        self._validated = False
        self._distinct = 0
        # map index -> (frame_size, offsets) of maps already decoded and checked. Wasmtime
        # shares identical maps, so a few decoded maps serve most lookups; bounded so
        # that memory stays O(1) per section.
        self._decoded: dict[int, tuple[int, tuple[int, ...]]] = {}

    def __len__(self) -> int:
        return self._n

    @property
    def pcs(self) -> Sequence[int]:
        """The sorted return-address text offsets (a sequence of ints)."""
        return self._pcs

    def entry(self, i: int) -> StackMapEntry:
        """Decode entry `i`, checking every bound it touches."""
        if not 0 <= i < self._n:
            raise CorruptSection(f"{self.where}: entry {i} out of range (N={self._n})")
        pc = self._pcs[i]
        k = self._index[i]
        known = self._decoded.get(k)
        if known is not None:  # a map shared with an entry decoded (and checked) before
            return StackMapEntry(pc, known[0], known[1], k)
        frame_size, words = self._map_at(k, f"entry {i} (pc {pc:#x})")
        offsets = _bit_offsets(words)  # below frame_size: _map_at checked the top bit
        if len(self._decoded) >= _DECODED_MAX:
            self._decoded.clear()
        self._decoded[k] = (frame_size, offsets)
        return StackMapEntry(pc, frame_size, offsets, k)

    def _map_at(self, k: int, what: str) -> tuple[int, Sequence[int]]:
        """(frame_size, bitmap words) of the map at data[k], every bound checked first.

        Linear in the bitmap's words, at C speed (one big integer), before any
        offset is produced.
        """
        nwords = self._nwords
        if k + 2 > nwords:
            raise CorruptSection(
                f"{self.where}: {what}: map index {k} is past the end of the map data "
                f"({nwords} words)"
            )
        frame_size = self._data[k]
        m = self._data[k + 1]
        if frame_size == 0:
            raise CorruptSection(f"{self.where}: {what}: frame_size is 0")
        if frame_size > MAX_FRAME_SIZE:
            raise CorruptSection(
                f"{self.where}: {what}: frame_size {frame_size} is above Cranelift's "
                f"limit of {MAX_FRAME_SIZE}"
            )
        if m == 0:
            raise CorruptSection(f"{self.where}: {what}: bitmap has 0 words")
        if k + 2 + m > nwords:
            raise CorruptSection(
                f"{self.where}: {what}: bitmap of {m} words at data[{k + 2}] runs past the end "
                f"of the map data ({nwords} words)"
            )
        if self._data[k + 1 + m] == 0:
            raise CorruptSection(
                f"{self.where}: {what}: the bitmap's last word is 0 (Wasmtime ends every "
                "bitmap with its highest live slot)"
            )
        if m == 1:
            bits = self._data[k + 2]
        else:
            start = self._header + 4 * (k + 2)
            bits = int.from_bytes(self._raw[start : start + 4 * m], "little")
        top = 4 * (bits.bit_length() - 1)
        if top >= frame_size:
            raise CorruptSection(
                f"{self.where}: {what}: slot at SP+{top} is beyond frame_size {frame_size}"
            )
        if m > MAX_LIVE_SLOTS // 32 and bits.bit_count() > MAX_LIVE_SLOTS:
            raise CorruptSection(
                f"{self.where}: {what}: map has {bits.bit_count()} live slots, more than "
                f"the {MAX_LIVE_SLOTS} this tool decodes"
            )
        return frame_size, self._data[k + 2 : k + 2 + m]

    def find(self, pc: int) -> int:
        """Index of the entry whose pc is exactly `pc`, or -1 (binary search)."""
        pcs = self._pcs
        i = bisect.bisect_left(pcs, pc)
        if i < self._n and pcs[i] == pc:
            return i
        return -1

    def lookup(self, pc: int) -> StackMapEntry | None:
        """The stack map at return-address text offset `pc`, or None if it has none."""
        i = self.find(pc)
        return self.entry(i) if i >= 0 else None

    def __iter__(self) -> Iterator[StackMapEntry]:
        for i in range(self._n):
            yield self.entry(i)

    def entries_between(self, start: int, end: int) -> Iterator[StackMapEntry]:
        """Entries whose pc is in [start, end)."""
        lo = bisect.bisect_left(self._pcs, start)
        hi = bisect.bisect_left(self._pcs, end)
        for i in range(lo, hi):
            yield self.entry(i)

    def count_between(self, start: int, end: int) -> int:
        """How many entries have their pc in [start, end)."""
        return bisect.bisect_left(self._pcs, end) - bisect.bisect_left(self._pcs, start)

    def validate(self) -> None:
        """Check the whole section in one linear pass; raise CorruptSection naming the first
        problem. The one validity: what this accepts, every entry() decodes."""
        if self._validated:
            return
        n, pcs = self._n, self._pcs
        if n > 1 and not all(map(operator.lt, pcs[:-1], pcs[1:])):
            i = next(i for i in range(1, n) if pcs[i] <= pcs[i - 1])
            raise CorruptSection(
                f"{self.where}: pcs not strictly ascending at entry {i}: "
                f"{pcs[i]:#x} after {pcs[i - 1]:#x}"
            )
        # The maps, in the order written: each one checked once, never twice. One-word
        # maps (nearly all) take the inline path; distinct maps are counted from exact
        # keys (one-word) or hashes (longer), in 64 buckets so no set grows large.
        nwords, data, raw, hdr = self._nwords, self._data, self._raw, self._header
        starts = bytearray(nwords + 1)
        small = [array("Q") for _ in range(64)]
        large = [array("q") for _ in range(64)]
        k = 0
        while k < nwords:
            if k + 2 < nwords and data[k + 1] == 1:
                fs, w = data[k], data[k + 2]
                if w and 0 < fs <= MAX_FRAME_SIZE and 4 * w.bit_length() - 4 < fs:
                    starts[k] = 1
                    small[w & 63].append(fs << 32 | w)
                    k += 3
                    continue
            try:
                _, words = self._map_at(k, f"map at data[{k}]")
            except CorruptSection as e:
                raise self._blame(k, e) from None
            starts[k] = 1
            end = k + 2 + len(words)
            h = hash(bytes(raw[hdr + 4 * k : hdr + 4 * end]))
            large[h & 63].append(h)
            k = end
        index = self._index
        if n and max(index) >= self._nwords:
            self.entry(next(i for i in range(n) if index[i] >= self._nwords))
        if n and not all(map(starts.__getitem__, index)):
            i = next(i for i in range(n) if not starts[index[i]])
            self.entry(i)  # past the end: its own message
            raise CorruptSection(
                f"{self.where}: entry {i} (pc {pcs[i]:#x}): map index {self._index[i]} is "
                f"not the start of a map (maps are written one after another)"
            )
        for k in index:  # every map written is some entry's (Wasmtime writes no others)
            starts[k] = 2
        k = starts.find(1)
        if k >= 0:
            raise CorruptSection(f"{self.where}: the map at data[{k}] is used by no entry")
        self._distinct = sum(len(set(b)) for b in small + large)
        self._validated = True

    def _blame(self, k: int, err: CorruptSection) -> CorruptSection:
        """Name the first entry that uses the map at data[k] in `err`, when one does."""
        key = _U32.pack(k)
        raw = bytes(self._raw[4 + 4 * self._n : self._header])
        pos = raw.find(key)
        while pos >= 0 and pos % 4:
            pos = raw.find(key, pos + 1)
        if pos < 0:
            return err
        i = pos // 4
        return CorruptSection(
            str(err).replace(f"map at data[{k}]", f"entry {i} (pc {self._pcs[i]:#x})", 1)
        )

    def distinct_maps(self) -> int:
        """How many different (frame_size, bitmap) maps the section holds (validates it)."""
        self.validate()
        return self._distinct


def _bit_offsets(words: Iterable[int]) -> tuple[int, ...]:
    out: list[int] = []
    for w, word in enumerate(words):
        base = 128 * w  # 32 bits a word, 4 bytes a bit
        while word:
            low = word & -word
            out.append(base + 4 * (low.bit_length() - 1))
            word ^= low
    return tuple(out)


def encode(entries: Iterable[tuple[int, int, Sequence[int]]]) -> bytes:
    """Write a section from (pc, frame_size, offsets) triples, sharing identical maps.

    The inverse of the reader, used by tests and benchmarks to build sections
    (like Wasmtime's `StackMapSection::finish`). Offsets must be multiples of 4.
    """
    entries = sorted(entries, key=lambda e: e[0])
    pcs: list[int] = []
    index: list[int] = []
    data: list[int] = []
    shared: dict[tuple[int, tuple[int, ...]], int] = {}
    for pc, frame_size, offsets in entries:
        nbits = max(offsets) // 4 + 1 if offsets else 1
        words = [0] * ((nbits + 31) // 32)
        for off in offsets:
            if off % 4:
                raise ValueError(f"offset {off} is not a multiple of 4")
            b = off // 4
            words[b // 32] |= 1 << (b % 32)
        key = (frame_size, tuple(words))
        k = shared.get(key)
        if k is None:
            k = shared[key] = len(data)
            data.extend((frame_size, len(words), *words))
        pcs.append(pc)
        index.append(k)
    out = array("I", [len(pcs)] + pcs + index + data)
    if sys.byteorder != "little":
        out.byteswap()
    return out.tobytes()
