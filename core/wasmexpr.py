"""Constant expressions of the global section, skipped to reach each global's type."""

from __future__ import annotations

from typing import Any

from .wasmbinary import Reader, WasmParseError
from .wasmtypes import MAX_TYPES, heap_type, val_type

# Constant expressions: opcodes and how many immediates of which kind follow.
_CONST_OPS = {
    0x41: "s",
    0x42: "s64",
    0x43: "4",
    0x44: "8",
    0x23: "u",
    0xD2: "u",
    0xD0: "h",
    0x6A: "",
    0x6B: "",
    0x6C: "",
    0x7C: "",
    0x7D: "",
    0x7E: "",
}
_GC_CONST_OPS = {0: "u", 1: "u", 6: "u", 7: "u", 8: "uu", 0x1A: "", 0x1B: "", 0x1C: ""}


def skip_const_expr(r: Reader) -> None:
    for _ in range(100_000):
        op = r.byte()
        if op == 0x0B:
            return
        if op == 0xFB:
            imm = _GC_CONST_OPS.get(r.uleb())
            if imm is None:
                raise r.fail("unsupported GC opcode in a constant expression")
            for _ in imm:
                r.uleb()
            continue
        if op == 0xFD and r.uleb() == 12:
            r.bytes(16)
            continue
        kind = _CONST_OPS.get(op)
        if kind is None:
            raise r.fail(f"unsupported opcode {op:#04x} in a constant expression")
        if kind == "s":
            r.sleb(32)
        elif kind == "s64":
            r.sleb(64)
        elif kind in ("4", "8"):
            r.bytes(int(kind))
        elif kind == "u":
            r.uleb()
        elif kind == "h":
            heap_type(r)
    raise r.fail("constant expression too long")


def global_types(r: Reader, m: dict[str, Any]) -> None:
    try:
        for _ in range(r.count(MAX_TYPES, "global")):
            t = val_type(r)
            mut = r.byte() == 1
            m["globals"].append((t, mut))
            skip_const_expr(r)
    except WasmParseError:
        pass  # the globals before the first undecodable init expression are kept
