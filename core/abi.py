"""The ABI facts the core relies on, in one table (docs/format.md explains each).

Architecture-specific facts (registers, pointer masks, return instructions) are
in core/arch.py; the GC heap's versioned offsets in core/gcheap.py's `LAYOUTS`.
"""

# -- images -------------------------------------------------------------------------------

ELF_MAGIC = b"\x7fELF"
EI_OSABI = 7  # index of the OS/ABI byte in e_ident
# e_ident[EI_OSABI] of a Wasmtime code image (`.cwasm`, or one compiled in memory).
ELFOSABI_WASMTIME = 200
PAGE_SIZE = 4096

# -- machine words and frame records ------------------------------------------------------

WORD_MASK = (1 << 64) - 1  # a 64-bit register or pointer: the all-ones mask
ADDRESS_LIMIT = 1 << 64  # one past the highest address
# At FP: the caller's FP, at FP+8 the return address; the caller's SP is FP+16.
SAVED_FP_AT = 0
RETURN_ADDRESS_AT = 8
FRAME_RECORD_SIZE = 16
VMGCREF_SIZE = 4  # a stack-map slot holds a 32-bit VMGcRef

# -- GC object headers --------------------------------------------------------------------

# The kind bits of a GC object's header word (under the version's kind mask).
KIND_EXTERNREF = 0x40000000
KIND_ANYREF = 0x80000000
KIND_EQREF = 0xA0000000
KIND_ARRAYREF = 0xA8000000
KIND_STRUCTREF = 0xB0000000
KIND_EXNREF = 0x04000000
GC_KINDS = {
    KIND_EXTERNREF: "externref",
    KIND_ANYREF: "anyref",
    KIND_EQREF: "eqref",
    KIND_ARRAYREF: "arrayref",
    KIND_STRUCTREF: "structref",
    KIND_EXNREF: "exnref",
}
NO_TYPE = 0xFFFFFFFF  # VMSharedTypeIndex "no type"
# Engine-wide type indices of any real program stay far below this: a larger
# one means the word is not a GC object header.
MAX_TYPE_INDEX = 1 << 24

# -- trap codes ---------------------------------------------------------------------------

# Trap codes 0xFE/0xFF, from 46 on.
TRAP_GC_HEAP_CORRUPT = 0xFE
TRAP_INTERNAL_ASSERT = 0xFF
SPECIAL_TRAPS_SINCE = 46

# The variants of Wasmtime's `Trap` enum in declaration order (a trap code is the
# variant's index), each with the first and last Wasmtime major version that has
# it (None: still there). DisabledOpcode moved in 35.
TRAP_VARIANTS: list[tuple[str, int, int | None]] = [
    ("StackOverflow", 32, None),
    ("MemoryOutOfBounds", 32, None),
    ("HeapMisaligned", 32, None),
    ("TableOutOfBounds", 32, None),
    ("IndirectCallToNull", 32, None),
    ("BadSignature", 32, None),
    ("IntegerOverflow", 32, None),
    ("IntegerDivisionByZero", 32, None),
    ("BadConversionToInteger", 32, None),
    ("UnreachableCodeReached", 32, None),
    ("Interrupt", 32, None),
    ("AlwaysTrapAdapter", 32, 41),
    ("OutOfFuel", 32, None),
    ("AtomicWaitNonSharedMemory", 32, None),
    ("NullReference", 32, None),
    ("ArrayOutOfBounds", 32, None),
    ("AllocationTooLarge", 32, None),
    ("CastFailure", 32, None),
    ("CannotEnterComponent", 32, None),
    ("NoAsyncResult", 32, None),
    ("DisabledOpcode", 34, 34),
    ("UnhandledTag", 35, None),
    ("ContinuationAlreadyConsumed", 35, None),
    ("DisabledOpcode", 35, None),
    ("AsyncDeadlock", 35, None),
    ("CannotLeaveComponent", 38, None),
    ("CannotBlockSyncTask", 40, None),
    ("InvalidChar", 41, None),
    ("DebugAssertStringEncodingFinished", 41, None),
    ("DebugAssertEqualCodeUnits", 41, None),
    ("DebugAssertMayEnterUnset", 41, 41),
    ("DebugAssertPointerAligned", 41, None),
    ("DebugAssertUpperBitsUnset", 41, None),
    ("StringOutOfBounds", 41, None),
    ("ListOutOfBounds", 41, None),
    ("InvalidDiscriminant", 41, None),
    ("UnalignedPointer", 41, None),
    ("TaskCancelNotCancelled", 43, None),
    ("TaskCancelOrReturnTwice", 43, None),
    ("SubtaskCancelAfterTerminal", 43, None),
    ("TaskReturnInvalid", 43, None),
    ("WaitableSetDropHasWaiters", 43, None),
    ("SubtaskDropNotResolved", 43, None),
    ("ThreadNewIndirectInvalidType", 43, None),
    ("ThreadNewIndirectUninitialized", 43, None),
    ("BackpressureOverflow", 43, None),
    ("UnsupportedCallbackCode", 43, None),
    ("CannotResumeThread", 43, None),
    ("ConcurrentFutureStreamOp", 44, None),
    ("ReferenceCountOverflow", 45, None),
    ("StreamOpTooBig", 45, None),
    ("WaitableSyncAndAsync", 46, None),
    ("UncaughtException", 47, None),
]
TRAPS_FIRST_MAJOR = TRAP_VARIANTS[0][1]
TRAPS_LAST_MAJOR = max(v for _, first, last in TRAP_VARIANTS for v in (first, last or 0))


def trap_names(major: int | None) -> list[str]:
    """The `Trap` variants in code order for a Wasmtime major version (the newest
    table when unknown or newer, the oldest when older)."""
    v = TRAPS_LAST_MAJOR if major is None else max(major, TRAPS_FIRST_MAJOR)
    return [
        name for name, first, last in TRAP_VARIANTS if first <= v and (last is None or v <= last)
    ]
