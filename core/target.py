"""The adapter protocol between the core and a debugger (or a test double over bytes).

A debugger plugin implements `Target`: read memory, list threads with their
innermost registers (and the debugger's own frames where it has them), and
memory regions when it knows them. Everything else lives in the core.
"""

import struct
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

from .abi import ADDRESS_LIMIT, PAGE_SIZE
from .errors import ReadError, StackMapsError


class Region(NamedTuple):
    start: int
    end: int
    perms: str  # e.g. "r-x" ("" when unknown)
    path: str | None  # backing file, None for anonymous


class DebuggerFrame(NamedTuple):
    """A frame as the debugger unwound it (host or wasm)."""

    level: int
    pc: int
    fp: int | None  # frame-pointer register value in that frame, if the debugger knows it
    sp: int | None
    name: str | None


class ThreadState(NamedTuple):
    num: int  # the debugger's thread number (gdb: global num; lldb: index id)
    tid: int | None
    name: str | None
    pc: int
    fp: int
    sp: int
    lr: int | None  # link register (aarch64/riscv64), None on x86_64
    frames: Callable[[], list[DebuggerFrame]] | None = None  # lazy: unwinding costs


OnHit = Callable[["Target"], bool]


class Target:
    """What a debugger must provide. `arch` is x86_64, aarch64 or riscv64."""

    arch: str = "x86_64"
    pointer_size: int = 8  # bytes of a pointer in the inferior (4 on a 32-bit Pulley host)
    little_endian: bool = True
    description: str = "target"

    def read_memory(self, address: int, size: int) -> bytes:  # pragma: no cover - protocol
        """Exactly `size` bytes at `address`, or ReadError."""
        raise NotImplementedError

    def regions(self) -> list[Region] | None:
        """Mapped regions, or None when the debugger cannot tell (remote, some cores)."""
        return None

    def threads(self) -> list[ThreadState]:  # pragma: no cover - protocol
        raise NotImplementedError

    def identity(self) -> tuple[object, ...]:
        """What distinguishes one inferior/process run from another (pid, core path...)."""
        return ()

    def selected_thread(self) -> int:
        """Number of the debugger's selected thread."""
        return self.threads()[0].num

    def selected_frame(self) -> DebuggerFrame | None:
        """The debugger's selected frame (pc and, if known, its FP), or None."""
        return None

    def stop_info(self) -> dict[str, Any] | None:
        """Why the process stopped: {"thread", "pc", "signal", "signal_name"}, or None."""
        return None

    def process_info(self) -> dict[str, Any]:
        """{"pid", "executable", "core_file"} as far as the debugger knows them."""
        return {}

    # -- breakpoints and watchpoints (gc-watch, watch); a core file has none -----------------
    def set_breakpoint(self, address: int, on_hit: "OnHit") -> object:
        """An internal breakpoint at `address`. When a thread reaches it, the debugger calls
        `on_hit(target)` in that stop (a Target for it, its `selected_thread()` the thread
        that hit); True keeps the process stopped, False continues it. Returns a handle."""
        raise StackMapsError(f"{self.description}: breakpoints are not supported here")

    def set_watchpoint(self, address: int, size: int, on_hit: "OnHit") -> object:
        """A hardware write watchpoint on `size` bytes at `address`, `on_hit` as above."""
        raise StackMapsError(f"{self.description}: watchpoints are not supported here")

    def delete_breakpoint(self, handle: object) -> None:
        """Remove a breakpoint or watchpoint; safe to call from its own `on_hit`."""

    def find_functions(self, text: str) -> list[tuple[str, int]]:
        """(name, address) of the host functions whose (demangled) name contains `text`."""
        return []

    def select_frame(self, thread: int, pc: int, fp: int | None) -> bool:
        """Select thread `thread` and its frame at (pc, fp) in the debugger; False if not found."""
        return False

    def write(self, text: str) -> None:
        """Print a line on the debugger's console (from a breakpoint's `on_hit`)."""
        print(text)


class ByteOrder:
    """The target's byte order: every multi-byte value read from the inferior (a word of
    its memory, a field of a runtime structure or a GC object) is decoded through one of
    these, made from `Target.little_endian` (MemoryCache.order)."""

    def __init__(self, little_endian: bool):
        self.little_endian = little_endian
        self.prefix: Literal["<", ">"] = "<" if little_endian else ">"
        self.name: Literal["little", "big"] = "little" if little_endian else "big"
        self._u32 = struct.Struct(self.prefix + "I").unpack_from
        self._u64 = struct.Struct(self.prefix + "Q").unpack_from

    def unpack(self, fmt: str, data: bytes, offset: int = 0) -> tuple[int, ...]:
        """struct.unpack_from of `fmt` (integer codes, no byte-order prefix) at `offset`."""
        return struct.unpack_from(self.prefix + fmt, data, offset)

    def u32(self, data: bytes, offset: int = 0) -> int:
        return int(self._u32(data, offset)[0])

    def u64(self, data: bytes, offset: int = 0) -> int:
        return int(self._u64(data, offset)[0])

    def int(self, data: bytes) -> int:
        """All of `data` as one unsigned integer."""
        return int.from_bytes(data, self.name)


class MemoryCache:
    """Bulk, chunked reads of target memory for the length of one command.

    A frame walk asks for many small reads (saved FP, return address, slots);
    they are served from 16 KiB chunks read once each, so a deep stack costs
    a handful of debugger reads instead of several per frame. A chunk that is
    not wholly readable is retried page by page.
    """

    PAGE = PAGE_SIZE
    CHUNK = 16 * 1024

    def __init__(self, target: Target):
        self.target = target
        self._pages: dict[int, bytes | None] = {}
        self.reads = 0
        self.order = ByteOrder(target.little_endian)
        self.byteorder = self.order.name
        # The hot path of a walk: unpack directly, in the same byte order.
        self._u64: Callable[[bytes], tuple[int]] = struct.Struct(self.order.prefix + "Q").unpack
        self._u32: Callable[[bytes], tuple[int]] = struct.Struct(self.order.prefix + "I").unpack

    def _fetch(self, address: int, size: int) -> bytes | None:
        self.reads += 1
        try:
            data = self.target.read_memory(address, size)
        except ReadError:
            return None
        return data if len(data) == size else None

    def _page(self, pn: int) -> bytes | None:
        if pn not in self._pages:
            per = self.CHUNK // self.PAGE
            first = pn - pn % per
            data = self._fetch(first * self.PAGE, self.CHUNK)
            if data is not None:
                for i in range(per):
                    self._pages[first + i] = data[i * self.PAGE : (i + 1) * self.PAGE]
            else:
                self._pages[pn] = self._fetch(pn * self.PAGE, self.PAGE)
        return self._pages[pn]

    def read_pages(self, address: int, size: int) -> bytes:
        """Whole pages [address, address + size) (page-aligned) in ONE target read, kept in
        the cache: for a block known to be mapped exactly there (the top of a stack mapping,
        whose end a 16 KiB chunk would overrun). ReadError if it cannot be read."""
        if address % self.PAGE or size % self.PAGE or size <= 0:
            raise ReadError(f"not whole pages: {size} bytes at {address:#x}", address)
        first = address // self.PAGE
        if all(self._pages.get(first + i) is not None for i in range(size // self.PAGE)):
            return self.read(address, size)
        data = self._fetch(address, size)
        if data is None:
            raise ReadError(f"cannot read memory at {address:#x}", address)
        for i in range(size // self.PAGE):
            self._pages[first + i] = data[i * self.PAGE : (i + 1) * self.PAGE]
        return data

    def read(self, address: int, size: int) -> bytes:
        if address < 0 or size < 0 or address + size > ADDRESS_LIMIT:
            raise ReadError(f"cannot read {size} bytes at {address:#x}", address)
        # Fast path (most reads of a walk): inside one page already read.
        pn, within = divmod(address, self.PAGE)
        if within + size <= self.PAGE:
            page = self._pages.get(pn)
            if page is not None:
                return page[within : within + size]
        out = []
        pos, end = address, address + size
        while pos < end:
            pn, within = divmod(pos, self.PAGE)
            page = self._page(pn)
            n = min(self.PAGE - within, end - pos)
            if page is None:
                # Part of a page may be readable (a minidump saves a stack from SP up).
                part = self._fetch(pos, n)
                if part is None:
                    raise ReadError(f"cannot read memory at {pos:#x}", pos)
                out.append(part)
            else:
                out.append(page[within : within + n])
            pos += n
        return b"".join(out)

    def u64(self, address: int) -> int:
        return self._u64(self.read(address, 8))[0]

    def u32(self, address: int) -> int:
        return self._u32(self.read(address, 4))[0]

    def try_u64(self, address: int) -> int | None:
        try:
            return self.u64(address)
        except ReadError:
            return None


class MemoryTarget(Target):
    """A Target over byte blocks in memory: for tests and offline use, no debugger.

    `blocks` maps a start address to bytes; `threads` are ThreadStates.
    """

    def __init__(
        self,
        blocks: dict[int, bytes],
        threads: list[ThreadState],
        arch: str = "x86_64",
        regions: list[Region] | None = None,
    ):
        self.blocks = sorted(blocks.items())
        self._threads = threads
        self.arch = arch
        self._regions = regions
        self.reads = 0
        self.description = "memory"

    def read_memory(self, address: int, size: int) -> bytes:
        self.reads += 1
        for start, data in self.blocks:
            if start <= address and address + size <= start + len(data):
                return data[address - start : address - start + size]
        raise ReadError(f"cannot read {size} bytes at {address:#x}", address)

    def regions(self) -> list[Region] | None:
        return self._regions

    def threads(self) -> list[ThreadState]:
        return self._threads
