"""Decoding a raw 32-bit `VMGcRef` as Wasmtime stores it in a stack slot."""

from typing import NamedTuple


class GcRef(NamedTuple):
    raw: int
    kind: str  # "null" | "i31" | "heap"
    value: int | None  # i31: the signed value; heap: the byte index into the GC heap

    @property
    def i31_unsigned(self) -> int | None:
        return (self.raw >> 1) if self.kind == "i31" else None

    def describe(self) -> str:
        if self.kind == "null":
            return "null"
        if self.kind == "i31":
            return f"i31 {self.value}"
        return f"heap {self.value:#x}"


def decode_gcref(raw: int) -> GcRef:
    """0 is null; odd is an i31ref (value in the upper 31 bits); else a heap index."""
    raw &= 0xFFFFFFFF
    if raw == 0:
        return GcRef(raw, "null", None)
    if raw & 1:
        u = raw >> 1
        return GcRef(raw, "i31", u - (1 << 31) if u & (1 << 30) else u)
    return GcRef(raw, "heap", raw)
