"""Wasmtime's runtime records a debugger can read: the VMContext and the VMStoreContext.

A `VMContext` starts with a magic (`b"core"` for a core instance, `b"comp"`
for a component) and points at its store's `VMStoreContext`; one store has
one store context, whatever the number of instances in it. The store context
records the last exit from wasm (the FP and the return address into wasm)
and the FP of the last entry trampoline: for an activation that is not
running (it called the host, or its fiber is suspended), these say which
store it belongs to and where its frames are.

Offsets are keyed by the first Wasmtime major version a row applies to, as
Wasmtime's `crates/environ/src/vmoffsets.rs` (and `vm/vmcontext.rs`) of each
release lays them out; see docs/format.md §6 (the table and its sources).
"""

import struct
from collections.abc import Callable
from typing import NamedTuple

from .errors import ReadError

# Where the store context pointer sits in a VMContext, by magic.
VMCTX_STORE_OFFSET: dict[bytes, int] = {b"core": 8, b"comp": 16}


class StoreContextLayout(NamedTuple):
    exit_fp: int  # last_wasm_exit_fp (37+: the exit trampoline's FP; the wasm FP is *(exit_fp))
    exit_pc: int  # last_wasm_exit_pc: the return address into wasm of the last exit
    entry_fp: int  # last_wasm_entry_fp: FP of the last array-to-wasm entry trampoline
    exit_fp_is_trampoline: bool


STORE_CONTEXT_LAYOUTS: dict[int, StoreContextLayout] = {
    32: StoreContextLayout(24, 32, 40, False),
    33: StoreContextLayout(40, 48, 56, False),
    37: StoreContextLayout(40, 48, 56, True),
    38: StoreContextLayout(40, 48, 64, True),
    43: StoreContextLayout(48, 56, 72, True),
}


def store_layout_for(major: int | None) -> StoreContextLayout | None:
    """The row for a Wasmtime major version (the last row for later ones), None before 32."""
    if major is None:
        return None
    keys = [k for k in sorted(STORE_CONTEXT_LAYOUTS) if k <= major]
    return STORE_CONTEXT_LAYOUTS[keys[-1]] if keys else None


class StoreContextState(NamedTuple):
    address: int
    exit_fp: int  # as stored (see StoreContextLayout.exit_fp)
    exit_pc: int
    entry_fp: int
    layout: StoreContextLayout


def read_store_context(
    read: Callable[[int, int], bytes],
    address: int,
    layout: StoreContextLayout,
    little_endian: bool = True,
) -> StoreContextState:
    """The activation fields of the store context at `address`.

    `read(addr, n)` reads target memory and raises ReadError; so does this.
    """
    end = max(layout.exit_fp, layout.exit_pc, layout.entry_fp) + 8
    data = read(address, end)
    if len(data) < end:
        raise ReadError(f"store context at {address:#x} is unreadable", address)
    q = struct.Struct(("<" if little_endian else ">") + "Q").unpack_from
    return StoreContextState(
        address,
        q(data, layout.exit_fp)[0],
        q(data, layout.exit_pc)[0],
        q(data, layout.entry_fp)[0],
        layout,
    )


def vmctx_store(
    read: Callable[[int, int], bytes], vmctx: int, little_endian: bool = True
) -> tuple[bytes, int] | None:
    """(magic, store context pointer) when `vmctx` starts with a VMContext magic, else None."""
    try:
        head = read(vmctx, 24)
    except ReadError:
        return None
    magic = head[:4] if little_endian else head[:4][::-1]
    off = VMCTX_STORE_OFFSET.get(magic)
    if off is None:
        return None
    return magic, int.from_bytes(head[off : off + 8], "little" if little_endian else "big")
