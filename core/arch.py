"""The architectures the core walks, in one table: register names as each debugger
spells them, the return-address mask, the `ret` encodings, and how each debugger
names the architecture. Both plugins read their registers through it.
"""

from collections.abc import Callable, Iterable
from typing import NamedTuple

from .abi import WORD_MASK
from .errors import StackMapsError
from .target import DebuggerFrame


class Registers(NamedTuple):
    """Register names, each with the aliases a debugger may use for it (first readable wins)."""

    pc: tuple[str, ...]
    fp: tuple[str, ...]
    sp: tuple[str, ...]
    lr: tuple[str, ...] | None  # link register (None: the return address is on the stack)


class Arch(NamedTuple):
    name: str
    gdb: Registers
    lldb: Registers
    # Bits of a return address that are the address (aarch64 Linux user addresses fit
    # in 48 bits; the bits above carry a pointer-authentication code under PAC).
    return_address_mask: int
    # 32-bit little-endian encodings of the return instructions (no frame record set up).
    ret_words: tuple[int, ...]


ARCHES: dict[str, Arch] = {
    "x86_64": Arch(
        "x86_64",
        gdb=Registers(("rip",), ("rbp",), ("rsp",), None),
        lldb=Registers(("rip", "pc"), ("rbp", "fp"), ("rsp", "sp"), None),
        return_address_mask=WORD_MASK,
        ret_words=(),
    ),
    "aarch64": Arch(
        "aarch64",
        gdb=Registers(("pc",), ("x29",), ("sp",), ("x30",)),
        lldb=Registers(("pc",), ("fp", "x29"), ("sp",), ("lr", "x30")),
        return_address_mask=(1 << 48) - 1,
        ret_words=(0xD65F03C0, 0xD65F0BFF),  # ret, retaa
    ),
    "riscv64": Arch(
        "riscv64",
        gdb=Registers(("pc",), ("fp",), ("sp",), ("ra",)),
        lldb=Registers(("pc",), ("fp", "x8", "s0"), ("sp", "x2"), ("ra", "x1")),
        return_address_mask=WORD_MASK,
        ret_words=(0x00008067,),  # ret (jalr x0, 0(ra))
    ),
}
SUPPORTED = ", ".join(ARCHES)

# How far a debugger's own unwinder is asked to go looking for the first wasm frame
# of a thread stopped in host code (the stack scan finds the rest).
MAX_HOST_FRAMES = 256


def arch_from_gdb(name: str) -> str:
    """Our name of a GDB architecture name (`i386:x86-64`, `aarch64`, `riscv:rv64`)."""
    if "x86-64" in name:
        return "x86_64"
    if name.startswith("aarch64"):
        return "aarch64"
    if name.startswith("riscv"):
        return "riscv64"
    raise StackMapsError(f"unsupported architecture {name!r} ({SUPPORTED})")


def arch_from_triple(triple: str) -> str:
    """Our name of the CPU of a target triple (`x86_64-...`, `arm64-...`)."""
    cpu = triple.split("-", 1)[0]
    if cpu in ("x86_64", "amd64"):
        return "x86_64"
    if cpu in ("aarch64", "arm64"):
        return "aarch64"
    if cpu == "riscv64":
        return "riscv64"
    raise StackMapsError(f"unsupported architecture {triple or '?'!r} ({SUPPORTED})")


def strip_pac(arch: str, address: int) -> int:
    """A return address without its pointer-authentication bits (aarch64)."""
    a = ARCHES.get(arch)
    return address & a.return_address_mask if a is not None else address


def register(read: Callable[[str], int | None], names: tuple[str, ...] | None) -> int | None:
    """The first of `names` that `read(name)` can read, as a 64-bit value, or None."""
    for name in names or ():
        v = read(name)
        if v is not None:
            return v & WORD_MASK
    return None


def host_frames(
    frames: Iterable[DebuggerFrame],
    in_wasm: Callable[[int], bool],
    limit: int = MAX_HOST_FRAMES,
) -> list[DebuggerFrame]:
    """The debugger's own frames of a thread (innermost first) up to and including the
    first whose pc is in wasm code, `limit` at most. `frames` unwinds lazily."""
    out: list[DebuggerFrame] = []
    for f in frames:
        out.append(f)
        if in_wasm(f.pc) or len(out) >= limit:
            break
    return out
