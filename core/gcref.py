"""Decoding a raw 32-bit `VMGcRef` as Wasmtime stores it in a stack slot."""

from enum import StrEnum
from typing import NamedTuple


class SlotKind(StrEnum):
    """What a live stack-map slot holds (the JSON `kind` of a slot is its value)."""

    NULL = "null"
    I31 = "i31"
    HEAP = "heap"
    UNREADABLE = "unreadable"  # the slot's memory could not be read


class GcRef(NamedTuple):
    raw: int
    kind: SlotKind  # NULL, I31 or HEAP
    value: int | None  # i31: the signed value; heap: the byte index into the GC heap

    @property
    def i31_unsigned(self) -> int | None:
        return (self.raw >> 1) if self.kind is SlotKind.I31 else None


def decode_gcref(raw: int) -> GcRef:
    """0 is null; odd is an i31ref (value in the upper 31 bits); else a heap index."""
    raw &= 0xFFFFFFFF
    if raw == 0:
        return GcRef(raw, SlotKind.NULL, None)
    if raw & 1:
        u = raw >> 1
        return GcRef(raw, SlotKind.I31, u - (1 << 31) if u & (1 << 30) else u)
    return GcRef(raw, SlotKind.HEAP, raw)
