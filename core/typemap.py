"""Engine-wide shared type indices to the module's wasm types, from an instance's type-ids.

Each instance's VMContext points at a `type_ids` array: the shared
(engine-wide) type index of each of the module's *interned* types
(core/gctypes.py replays how Wasmtime interns the type section).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import NamedTuple

from .abi import MAX_TYPE_INDEX
from .errors import ReadError
from .gctypes import interned_map, type_ids_offset
from .wasmparse import WasmModule

MAX_TYPE_IDS = 1 << 20


class TypeMap(NamedTuple):
    """Engine-wide shared type index -> the module's wasm type index."""

    module: WasmModule
    shared_to_wasm: dict[int, int]
    source: str  # where the mapping came from, for notes
    module_path: str | None

    def name(self, idx: int) -> str | None:
        return self.module.type_names.get(idx)


def read_type_map(
    read: Callable[[int, int], bytes],
    vmctx: int,
    major: int | None,
    module: WasmModule,
    path: str | None,
    little: bool = True,
) -> tuple[TypeMap | None, str]:
    """The type map from the instance's `type_ids` array, or (None, why not)."""
    off = type_ids_offset(major)
    if off is None:
        return None, f"Wasmtime {major} is not covered by the type-ids table"
    to_interned, count = interned_map(module)
    if count == 0:
        return None, "the module declares no types"
    if count > MAX_TYPE_IDS:
        return None, f"{count} interned types: too many to read"
    e = "<" if little else ">"
    try:
        ptr = struct.unpack(e + "Q", read(vmctx + off, 8))[0]
        raw = read(ptr, 4 * count)
    except ReadError as ex:
        return None, f"the instance's type-ids array is unreadable ({ex})"
    if len(raw) < 4 * count:
        return None, "the instance's type-ids array is short"
    ids = struct.unpack(e + f"{count}I", raw)
    if any(i >= MAX_TYPE_INDEX for i in ids):
        return None, (
            f"the type-ids array at {ptr:#x} (vmctx {vmctx:#x}+{off}) holds implausible "
            f"shared type indices: the module does not match this instance"
        )
    shared_to_wasm: dict[int, int] = {}
    for idx, interned in enumerate(to_interned):
        shared_to_wasm.setdefault(ids[interned], idx)
    return TypeMap(module, shared_to_wasm, f"type-ids of vmctx {vmctx:#x}", path), ""
