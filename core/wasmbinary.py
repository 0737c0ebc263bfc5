"""Bounded reading of WebAssembly binaries: bytes, LEB128 numbers, vectors and names.

The input is untrusted (a file named by the user or found on a command
line): every count and length is checked against the bytes really present,
and any malformation raises WasmParseError with one line saying where.
"""

from __future__ import annotations

MAX_NAME = 4096


class WasmParseError(ValueError):
    pass


class Reader:
    """A cursor over `data[pos:end]`."""

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None):
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def fail(self, what: str) -> WasmParseError:
        return WasmParseError(f"{what} at byte offset {self.pos:#x}")

    def byte(self) -> int:
        if self.pos >= self.end:
            raise self.fail("unexpected end of data")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def peek(self) -> int:
        if self.pos >= self.end:
            raise self.fail("unexpected end of data")
        return self.data[self.pos]

    def bytes(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise self.fail(f"{n} bytes wanted, {self.end - self.pos} left")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def _leb(self, bits: int) -> tuple[int, int, int]:
        """(value, shift, last byte) of a LEB128 number of at most `bits` bits."""
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return result, shift, b
            if shift >= bits + 7:
                raise self.fail("LEB128 number too long")

    def uleb(self, bits: int = 32) -> int:
        result, _, _ = self._leb(bits)
        if result >= 1 << bits:
            raise self.fail("LEB128 number out of range")
        return result

    def sleb(self, bits: int = 33) -> int:
        result, shift, last = self._leb(bits)
        return result - (1 << shift) if last & 0x40 else result

    def count(self, limit: int, what: str) -> int:
        """A vector length: at most one element per byte left, and `limit`."""
        n = self.uleb()
        if n > self.end - self.pos or n > limit:
            raise self.fail(f"{what} count {n} exceeds the data")
        return n

    def name(self) -> str:
        n = self.uleb()
        if n > self.end - self.pos:
            raise self.fail(f"name length {n} exceeds the data")
        raw = self.bytes(n)[:MAX_NAME]
        return raw.decode("utf-8", "replace")

    def sub(self, size: int) -> Reader:
        """A reader over the next `size` bytes (skipped here)."""
        if size > self.end - self.pos:
            raise self.fail(f"section size {size} exceeds the data")
        r = Reader(self.data, self.pos, self.pos + size)
        self.pos += size
        return r
