"""What a walk finds: wasm frames (their stack map and live slots) and activations.

An activation is a run of consecutive wasm frames between two host frames,
innermost first; how it was found and why its walk stopped are typed
(`ActivationSource`, `ActivationEnd`: their values are the report's JSON).
"""

import weakref
from enum import StrEnum
from typing import NamedTuple

from .errors import StackMapsError
from .gcref import GcRef
from .image import Function, WasmtimeImage
from .stackmap import StackMapEntry
from .traps import WasmOffsets


class Slot(NamedTuple):
    offset: int  # from SP
    address: int
    raw: int | None  # None when unreadable
    ref: GcRef | None


class WasmFrame:
    """One frame whose pc lies in a Wasmtime image's .text."""

    __slots__ = (
        "pc",
        "fp",
        "image",
        "function",
        "text_offset",
        "innermost",
        "entry",
        "slots",
        "error",
        "note",
        "level",
        "thread",
        "activation",
        "debugger_level",
    )

    def __init__(self, pc: int, fp: int, image: WasmtimeImage, innermost: bool):
        self.pc = pc
        self.fp = fp
        self.image = image
        self.text_offset = image.text_offset(pc)
        self.function: Function | None = (
            image.function_at(self.text_offset) if self.text_offset is not None else None
        )
        self.innermost = innermost  # pc came from registers: not a return address
        self.entry: StackMapEntry | None = None
        self.slots: list[Slot] = []
        self.error: str | None = None  # something wrong with this frame (walk goes on)
        self.note: str | None = None
        self.level = 0
        self.thread: int | None = None
        self.activation = 0
        self.debugger_level: int | None = None

    @property
    def is_wasm_function(self) -> bool:
        return self.function is not None and self.function.is_wasm

    @property
    def function_name(self) -> str | None:
        return self.function.name if self.function else None

    @property
    def frame_size(self) -> int | None:
        return self.entry.frame_size if self.entry else None

    @property
    def sp(self) -> int | None:
        return self.fp - self.entry.frame_size if self.entry else None

    @property
    def safepoint(self) -> bool:
        return self.entry is not None

    @property
    def reason(self) -> str | None:
        """Why this frame has no stack map (None when it has one)."""
        if self.entry is not None:
            return None
        if self.innermost:
            return "innermost frame: pc is at a trap or breakpoint, not a call site"
        if self.error and self.is_wasm_function:
            return "stack map unusable here (see error)"
        if self.function is None:
            return "not in any function of the image"
        if not self.function.is_wasm:
            return "not wasm code: Wasmtime trampoline/builtin (no GC roots)"
        if self.image.stackmaps is None:
            return self.image.no_stackmaps_reason()
        return "call site with no live GC references"


_ADDRMAPS: "weakref.WeakKeyDictionary[WasmtimeImage, WasmOffsets | None]" = (
    weakref.WeakKeyDictionary()
)


def wasm_offset(frame: "WasmFrame") -> int | None:
    """The wasm bytecode offset Wasmtime's own backtrace prints for this frame.

    As Wasmtime's `WasmBacktrace` does: a return address is looked up at pc - 1 (the
    call instruction), the pc of a frame stopped where it is (a trap) at pc itself;
    trampolines and images without `.wasmtime.addrmap` have none (None).
    """
    if not frame.is_wasm_function or frame.text_offset is None:
        return None
    img = frame.image
    if img not in _ADDRMAPS:
        try:
            data = img.section_data(".wasmtime.addrmap")
            _ADDRMAPS[img] = WasmOffsets(data, img.engine.major) if data else None
        except StackMapsError:
            _ADDRMAPS[img] = None
    index = _ADDRMAPS[img]
    if index is None:
        return None
    try:
        return index.lookup(frame.text_offset if frame.innermost else frame.text_offset - 1)
    except StackMapsError:
        return None


class ActivationSource(StrEnum):
    """How an activation was found (its JSON `source`)."""

    REGISTERS = "registers"  # the thread's own registers: it is running wasm
    DEBUGGER = "debugger"  # a frame the debugger's own unwinder reached
    SCAN = "scan"  # a frame record found by scanning the stack
    RUNTIME = "runtime"  # the runtime's exit/entry records (core/runtime_walk.py)
    FIBER = "fiber"  # a suspended fiber's saved exit record
    PULLEY = "pulley"  # the Pulley interpreter's frames, from the store context


class ActivationEnd(StrEnum):
    """Why the walk of an activation stopped (its JSON `end`; see `end_text`)."""

    LEFT_WASM = "left wasm code"
    DEPTH_LIMIT = "depth limit"
    FP_LOOP = "frame pointer loop"
    UNREADABLE_RECORD = "unreadable frame record"
    NON_MONOTONIC = "non-monotonic frame pointer"
    ENTRY_TRAMPOLINE = "entry trampoline (saved entry FP)"
    STORE_ENTRY = "entry trampoline (store context's entry FP)"


class Activation(NamedTuple):
    frames: list[WasmFrame]
    source: ActivationSource
    end: ActivationEnd  # why the walk stopped

    @property
    def end_text(self) -> str:
        if self.end is ActivationEnd.DEPTH_LIMIT:  # the walk stopped at its max_depth-th frame
            return f"depth limit ({len(self.frames)} frames) reached"
        return str(self.end)
