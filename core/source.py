"""Byte sources an image can be read from: bytes, a file, or a debugger's memory."""

import mmap
import os
import stat
from collections.abc import Callable

from .abi import PAGE_SIZE
from .errors import ReadError
from .text import safe

# Pseudo file systems: their files stat as regular but are generated on read (sizes lie,
# reads can block or never end).
PSEUDO_ROOTS = ("/proc/", "/sys/", "/dev/")


def check_input_file(path: str, what: str = "file") -> os.stat_result:
    """stat() `path` and refuse anything but a regular file, before anything opens it.

    A FIFO blocks open() forever, a device or /proc file can return endless or
    changing bytes, a directory is not data: each is one line here instead.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ReadError(f"no such {what}: {safe(path)}") from None
    except OSError as e:
        raise ReadError(f"{safe(path)}: cannot read: {e.strerror or e}") from None
    mode = st.st_mode
    kind = None
    if stat.S_ISDIR(mode):
        kind = "a directory"
    elif stat.S_ISFIFO(mode):
        kind = "a FIFO"
    elif stat.S_ISSOCK(mode):
        kind = "a socket"
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        kind = "a device"
    elif not stat.S_ISREG(mode):
        kind = "a special file"
    else:
        real = os.path.realpath(path)
        root = next((r for r in PSEUDO_ROOTS if real.startswith(r)), None)
        if root is not None:
            kind = f"a file of the {root.strip('/')} pseudo file system"
    if kind is not None:
        raise ReadError(f"{safe(path)}: is {kind}, not a {what}")
    return st


class ByteSource:
    """Random access to a bounded run of bytes. `size` may be None (unknown yet)."""

    size: int | None = None
    name: str = "<bytes>"

    def read(self, offset: int, size: int) -> bytes:  # pragma: no cover - protocol
        raise NotImplementedError

    def view(self, offset: int, size: int) -> memoryview:
        """Like read(), without a copy where the source allows it."""
        return memoryview(self.read(offset, size))

    def _check(self, offset: int, size: int) -> None:
        if offset < 0 or size < 0:
            raise ReadError(f"{self.name}: bad read of {size} bytes at offset {offset}")
        if self.size is not None and offset + size > self.size:
            raise ReadError(
                f"{self.name}: read of {size} bytes at offset {offset:#x} is past the end "
                f"({self.size:#x} bytes)"
            )


class BytesSource(ByteSource):
    def __init__(self, data: bytes, name: str = "<bytes>"):
        self._data = data
        self.size = len(data)
        self.name = name

    def read(self, offset: int, size: int) -> bytes:
        self._check(offset, size)
        return bytes(self._data[offset : offset + size])

    def view(self, offset: int, size: int) -> memoryview:
        self._check(offset, size)
        return memoryview(self._data)[offset : offset + size]


class FileSource(ByteSource):
    """A file on disk, memory-mapped (read lazily by the OS, nothing copied up front)."""

    def __init__(self, path: str):
        self.name = safe(path)
        check_input_file(path, "Wasmtime image")
        try:
            with open(path, "rb") as f:
                self.size = os.fstat(f.fileno()).st_size
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if self.size else b""
        except OSError as e:
            raise ReadError(f"{self.name}: cannot read: {e.strerror or e}") from None

    def read(self, offset: int, size: int) -> bytes:
        self._check(offset, size)
        return self._map[offset : offset + size]

    def view(self, offset: int, size: int) -> memoryview:
        """The bytes without a copy (the OS pages them in as they are touched)."""
        self._check(offset, size)
        return memoryview(self._map)[offset : offset + size]


class MemorySource(ByteSource):
    """Bytes at `base` in a target's memory, fetched on demand in page-aligned chunks.

    `read_memory(address, size) -> bytes` is the debugger's read; it raises
    ReadError (or returns short) for unreadable memory. Chunks are cached so a
    section is read from the target once.
    """

    CHUNK = 64 * 1024

    def __init__(
        self,
        read_memory: Callable[[int, int], bytes],
        base: int,
        size: int | None = None,
        name: str | None = None,
    ):
        self._read_memory = read_memory
        self.base = base
        self.size = size
        self.name = name or f"memory at {base:#x}"
        self._chunks: dict[int, bytes] = {}
        self.reads = 0  # how many target reads were made (benchmarks report it)

    def _chunk(self, ci: int) -> bytes:
        data = self._chunks.get(ci)
        if data is None:
            start = ci * self.CHUNK
            want = self.CHUNK if self.size is None else min(self.CHUNK, self.size - start)
            self.reads += 1
            try:
                data = self._read_memory(self.base + start, want)
            except ReadError:
                data = b""
            if len(data) < want:
                # Fall back to page granularity so a partly readable chunk gives what it can.
                data = self._read_pages(self.base + start, want, data)
            self._chunks[ci] = data
        return data

    def _read_pages(self, addr: int, want: int, got: bytes) -> bytes:
        page = PAGE_SIZE
        out = bytearray(got)
        while len(out) < want:
            n = min(page - (addr + len(out)) % page, want - len(out))
            self.reads += 1
            try:
                piece = self._read_memory(addr + len(out), n)
            except ReadError:
                piece = b""
            out += piece
            if len(piece) < n:
                break
        return bytes(out)

    def read(self, offset: int, size: int) -> bytes:
        self._check(offset, size)
        if size == 0:
            return b""
        parts = []
        pos, end = offset, offset + size
        while pos < end:
            ci, within = divmod(pos, self.CHUNK)
            chunk = self._chunk(ci)
            piece = chunk[within : within + (end - pos)]
            if not piece:
                raise ReadError(
                    f"{self.name}: memory at {self.base + pos:#x} is not readable", self.base + pos
                )
            parts.append(piece)
            pos += len(piece)
            if len(chunk) < self.CHUNK and pos < end and pos >= ci * self.CHUNK + len(chunk):
                raise ReadError(
                    f"{self.name}: memory at {self.base + pos:#x} is not readable", self.base + pos
                )
        return b"".join(parts)
