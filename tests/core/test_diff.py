"""`stackmap diff`'s classification of roots, on hand-made snapshots (no debugger).

The live tests (tests/plugins/test_triage.py) run on the Python package, whose
DRC collector does not move objects, so every heap root comes out unchanged
there; these cases pin what a moving collector's stop would show.
"""

from wasmtime_stackmaps.reportrender import diff_lines
from wasmtime_stackmaps.snapshots import diff_roots


def snap(*frames):
    return {"schema": 1, "kind": "stackmap-snapshot", "frames": list(frames)}


def frame(fp, pc, slots, thread=1, level=1):
    return {
        "thread": thread,
        "level": level,
        "pc": pc,
        "fp": fp,
        "function": "f",
        "slots": [{"offset": o, "address": fp - 64 + o, "raw": r} for o, r in slots],
    }


def test_moved_roots_are_changed_and_others_unchanged():
    old = snap(frame(0x1000, 0x50, [(0, 0x15), (8, 0x70)]), frame(0x2000, 0x50, [(8, 0x90)]))
    new = snap(frame(0x1000, 0x50, [(0, 0x15), (8, 0x1070)]), frame(0x2000, 0x50, [(8, 0x90)]))
    d = diff_roots(old, new)
    assert d["counts"] == {"changed": 1, "unchanged": 2, "added": 0, "removed": 0}
    states = {
        (f["fp"], s["offset"]): (s["state"], s["old"], s["new"])
        for f in d["frames"]
        for s in f["slots"]
    }
    assert states[(0x1000, 8)] == ("changed", 0x70, 0x1070)
    assert states[(0x1000, 0)][0] == "unchanged"
    assert not d["frames_gone"] and not d["frames_new"]
    assert diff_lines(d)[0].startswith("1 roots changed value, 2 unchanged")


def test_frames_matched_by_thread_fp_and_pc():
    old = snap(frame(0x1000, 0x50, [(0, 2)]), frame(0x2000, 0x60, [(0, 4)], thread=2))
    new = snap(
        frame(0x1000, 0x54, [(0, 2)]),
        frame(0x2000, 0x60, [(0, 4)], thread=2),
        frame(0x3000, 0x50, [(0, 6)]),
    )
    d = diff_roots(old, new)
    assert d["frames_gone"] == [{"thread": 1, "fp": 0x1000, "pc": 0x50}]
    assert {(f["fp"], f["pc"]) for f in d["frames_new"]} == {(0x1000, 0x54), (0x3000, 0x50)}
    assert [f["fp"] for f in d["frames"]] == [0x2000]


def test_slots_added_and_removed_within_a_frame():
    old = snap(frame(0x1000, 0x50, [(0, 2), (8, 4)]))
    new = snap(frame(0x1000, 0x50, [(0, 2), (16, 6)]))
    d = diff_roots(old, new)
    assert d["counts"] == {"changed": 0, "unchanged": 1, "added": 1, "removed": 1}


def test_a_damaged_snapshot_file_does_not_crash_the_diff():
    old = {"kind": "stackmap-snapshot", "frames": ["junk", {"slots": ["x", {"offset": 0}]}]}
    d = diff_roots(old, snap(frame(0x1000, 0x50, [(0, 2)])))
    assert d["frames_new"] and not d["frames"]
