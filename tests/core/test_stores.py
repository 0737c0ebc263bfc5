"""core/stores.py on synthetic memory: what ties an activation to its store, and what does not.

The real-process scenarios (tests/plugins/test_stores.py) show the ties on Wasmtime 49/50;
these pin the rules: the runtime's records decide over a vmctx found in the frames, the
saved records of a nested call tie the older activation, conflicting records and equal
candidates are ambiguous, an unreadable store context is said so.
"""

import struct
from types import SimpleNamespace

from wasmtime_stackmaps.runtime import store_layout_for
from wasmtime_stackmaps.stores import Candidate, StoreTies
from wasmtime_stackmaps.target import MemoryCache, MemoryTarget, ThreadState

MAJOR = 50
LAY = store_layout_for(MAJOR)
STACK = 0x7F00_0000_0000
STACK_SIZE = 0x4000
STORE_A = 0x5500_0000_2000
STORE_B = 0x5500_0000_4000
VMCTX_A = 0x5500_0000_6000
VMCTX_B = 0x5500_0000_8000
TEXT = 0x7E00_0000_1000  # pcs: fake, only compared
WASM = SimpleNamespace(is_wasm=True)
TRAMP = SimpleNamespace(is_wasm=False)


def frame(pc, fp, function, level=0):
    img = SimpleNamespace(engine=SimpleNamespace(major=MAJOR))
    return SimpleNamespace(
        pc=pc, fp=fp, function=function, innermost=False, level=level, image=img, slots=[]
    )


def activation(fp0, pc_wasm):
    """exit trampoline at fp0, wasm frames at fp0+0x40, +0x80, entry trampoline at +0xc0."""
    return SimpleNamespace(
        frames=[
            frame(TEXT + 0x900, fp0, TRAMP),
            frame(pc_wasm, fp0 + 0x40, WASM),
            frame(TEXT + 0x100, fp0 + 0x80, WASM),
            frame(TEXT + 0x800, fp0 + 0xC0, TRAMP),
        ]
    )


def store_block(exit_fp=0, exit_pc=0, entry_fp=0):
    b = bytearray(4096)
    struct.pack_into("<Q", b, LAY.exit_fp, exit_fp)
    struct.pack_into("<Q", b, LAY.exit_pc, exit_pc)
    struct.pack_into("<Q", b, LAY.entry_fp, entry_fp)
    return b


def vmctx_block(store):
    b = bytearray(4096)
    b[:4] = b"core"
    struct.pack_into("<Q", b, 8, store)
    return b


def world(stack, stores, extra=None):
    blocks = {STACK: bytes(stack), VMCTX_A: bytes(vmctx_block(STORE_A))}
    blocks[VMCTX_B] = bytes(vmctx_block(STORE_B))
    blocks.update({k: bytes(v) for k, v in stores.items()})
    blocks.update(extra or {})
    target = MemoryTarget(blocks, [])
    return StoreTies(MemoryCache(target), None, True)


def put(stack, addr, *words):
    for i, w in enumerate(words):
        struct.pack_into("<Q", stack, addr - STACK + 8 * i, w)


THREAD = ThreadState(1, 1, "t", TEXT, STACK + 0x100, STACK + 0x100, None)


def parked(stack, fp0, pc):
    """An activation that called the host: its exit trampoline's record -> the wasm frame."""
    put(stack, fp0, fp0 + 0x40, pc)
    return activation(fp0, pc)


def test_records_decide_over_the_vmctx_in_the_frames():
    stack = bytearray(STACK_SIZE)
    act = parked(stack, STACK + 0x1000, TEXT + 0x169)
    put(stack, STACK + 0x1020, VMCTX_B)  # a stale vmctx of ANOTHER store in its frames
    stores = {
        STORE_A: store_block(STACK + 0x1000, TEXT + 0x169, STACK + 0x10C0),
        STORE_B: store_block(),
    }
    ties = world(stack, stores)
    pool = [Candidate(STORE_A, VMCTX_A, None, "other activation")]
    tie = ties.tie(THREAD, [act], 0, MAJOR, pool, None)
    assert tie.store_context == STORE_A and tie.by_records
    assert tie.proof == "the store's last exit and entry records match its frames"


def test_entry_record_alone_for_a_running_activation():
    stack = bytearray(STACK_SIZE)
    act = activation(STACK + 0x1000, TEXT + 0x169)
    act.frames[0].innermost = True
    ties = world(stack, {STORE_A: store_block(0, 0, STACK + 0x10C0), STORE_B: store_block()})
    pool = [Candidate(STORE_A, VMCTX_A, None, "x"), Candidate(STORE_B, VMCTX_B, None, "x")]
    tie = ties.tie(THREAD, [act], 0, MAJOR, pool, None)
    assert tie.store_context == STORE_A and tie.by_records and "entry record" in tie.proof


def test_saved_records_tie_the_older_activation_of_the_same_store():
    stack = bytearray(STACK_SIZE)
    newer = parked(stack, STACK + 0x1000, TEXT + 0x169)
    older = parked(stack, STACK + 0x2000, TEXT + 0x169)
    put(stack, STACK + 0x1200, TEXT + 0x169, STACK + 0x2000, STACK + 0x20C0, 0, STORE_A)
    put(stack, STACK + 0x2020, VMCTX_A)
    stores = {STORE_A: store_block(STACK + 0x1000, TEXT + 0x169, STACK + 0x10C0)}
    ties = world(stack, stores)
    pool = [Candidate(STORE_A, VMCTX_A, None, "x")]
    t0 = ties.tie(THREAD, [newer, older], 0, MAJOR, pool, None)
    t1 = ties.tie(THREAD, [newer, older], 1, MAJOR, pool, None)
    assert (t0.store_context, t1.store_context) == (STORE_A, STORE_A)
    assert t1.by_records and "saved for the nested call" in t1.proof


def test_saved_records_without_the_entry_fp_do_not_tie():
    stack = bytearray(STACK_SIZE)
    newer = parked(stack, STACK + 0x1000, TEXT + 0x169)
    older = parked(stack, STACK + 0x2000, TEXT + 0x169)
    put(stack, STACK + 0x1200, TEXT + 0x169, STACK + 0x2000, 0, 0, STORE_A)  # no entry FP
    stores = {STORE_A: store_block(STACK + 0x1000, TEXT + 0x169, STACK + 0x10C0)}
    ties = world(stack, stores)
    t1 = ties.tie(THREAD, [newer, older], 1, MAJOR, [Candidate(STORE_A, VMCTX_A, None, "x")], None)
    assert not t1.by_records


def test_conflicting_records_are_ambiguous():
    stack = bytearray(STACK_SIZE)
    act = parked(stack, STACK + 0x1000, TEXT + 0x169)
    rec = store_block(STACK + 0x1000, TEXT + 0x169, STACK + 0x10C0)
    ties = world(stack, {STORE_A: rec, STORE_B: rec})
    pool = [Candidate(STORE_A, VMCTX_A, None, "x"), Candidate(STORE_B, VMCTX_B, None, "x")]
    tie = ties.tie(THREAD, [act], 0, MAJOR, pool, None)
    assert tie.store_context is None and set(tie.ambiguous) == {STORE_A, STORE_B}
    assert tie.note.startswith("heap ambiguous: the records of several store contexts")


def test_two_vmctx_candidates_that_explain_equally_are_ambiguous():
    stack = bytearray(STACK_SIZE)
    act = parked(stack, STACK + 0x1000, TEXT + 0x169)
    put(stack, STACK + 0x1020, VMCTX_A, VMCTX_B)
    ties = world(stack, {STORE_A: store_block(), STORE_B: store_block()})
    tie = ties.tie(THREAD, [act], 0, MAJOR, [], lambda c: (True, 2, None))
    assert tie.store_context is None and set(tie.ambiguous) == {STORE_A, STORE_B}
    assert tie.note.startswith("heap ambiguous: 2 store contexts explain every ref equally")
    # One that explains, one that does not: the one, said to be unconfirmed by records.
    tie = ties.tie(THREAD, [act], 0, MAJOR, [], lambda c: (c.store_context == STORE_B, 1, "no"))
    assert tie.store_context == STORE_B and not tie.by_records
    assert "no store context's exit/entry records match" in tie.note


def test_unreadable_store_context_is_named():
    stack = bytearray(STACK_SIZE)
    act = parked(stack, STACK + 0x1000, TEXT + 0x169)
    put(stack, STACK + 0x1020, VMCTX_A)
    ties = world(stack, {})  # STORE_A's memory is not there
    tie = ties.tie(THREAD, [act], 0, MAJOR, [], lambda c: (False, 0, "unreadable"))
    assert tie.store_context is None
    assert f"unreadable store context {STORE_A:#x}" in tie.note
