"""`stackmap snapshot` / `stackmap diff`: the live GC roots at one stop, and how they changed.

A snapshot is the value of every live stack-map slot of every wasm frame. Frames
of two snapshots are matched by (thread, frame pointer, pc) and slots by their
SP offset; a root whose value changed between two stops is what a moving
collector must have updated.
"""

import json
from collections.abc import Iterable

from .errors import StackMapsError
from .frames import Activation
from .outfile import write_atomic
from .source import check_input_file
from .target import ThreadState
from .text import safe

SNAPSHOT_KIND = "stackmap-snapshot"


def roots(collected: Iterable[tuple[ThreadState, list[Activation]]]) -> dict:
    """The snapshot document of the walked threads: frames at a safepoint and their slots."""
    frames = []
    for t, acts in collected:
        for a in acts:
            for f in a.frames:
                if f.entry is None:
                    continue
                frames.append(
                    {
                        "thread": t.num,
                        "level": f.level,
                        "pc": f.pc,
                        "fp": f.fp,
                        "function": f.function_name,
                        "slots": [
                            {"offset": s.offset, "address": s.address, "raw": s.raw}
                            for s in f.slots
                        ],
                    }
                )
    return {"schema": 1, "kind": SNAPSHOT_KIND, "frames": frames}


# A snapshot file is a few bytes a root; anything past this is not one of ours.
MAX_SNAPSHOT_FILE = 64 << 20


def write_snapshot(path: str, snap: dict) -> None:
    """Write the snapshot as JSON, atomically; StackMapsError (one line) if it cannot be."""
    write_atomic(path, json.dumps(snap), "snapshot")


def read_snapshot(path: str) -> dict:
    """A snapshot written by `write_snapshot` (StackMapsError when it is not one)."""
    shown = safe(path)
    st = check_input_file(path, "snapshot file")  # a FIFO or device is refused before open
    if st.st_size > MAX_SNAPSHOT_FILE:
        raise StackMapsError(f"{shown}: {st.st_size} bytes, too large for a snapshot file")
    try:
        with open(path, "rb") as fh:
            old = json.loads(fh.read(MAX_SNAPSHOT_FILE + 1))
    except (OSError, ValueError, RecursionError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise StackMapsError(f"cannot read snapshot {shown}: {safe(why)}") from None
    if not isinstance(old, dict) or old.get("kind") != SNAPSHOT_KIND:
        raise StackMapsError(f"{shown} is not a 'stackmap snapshot' file")
    problem = _shape_problem(old)
    if problem:
        raise StackMapsError(f"{shown}: not a valid snapshot: {problem}")
    return old


def _shape_problem(snap: dict) -> str | None:
    """What is wrong with a snapshot read from a file, or None (the fields diff_roots reads)."""
    frames = snap.get("frames")
    if not isinstance(frames, list):
        return "'frames' is not a list"
    for i, f in enumerate(frames):
        if not isinstance(f, dict):
            return f"frame {i} is not an object"
        for k in ("thread", "fp", "pc"):
            if not _is_int(f.get(k)):
                return f"frame {i}: {k!r} is not an integer"
        slots = f.get("slots")
        if not isinstance(slots, list):
            return f"frame {i}: 'slots' is not a list"
        for j, sl in enumerate(slots):
            if not isinstance(sl, dict) or not _is_int(sl.get("offset")):
                return f"frame {i} slot {j}: no integer 'offset'"
            if not (sl.get("raw") is None or _is_int(sl.get("raw"))):
                return f"frame {i} slot {j}: 'raw' is not an integer"
    return None


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def root_count(snap: dict) -> int:
    return sum(len(f["slots"]) for f in snap["frames"])


def diff_roots(old: dict, new: dict) -> dict:
    """Match frames by (thread, fp, pc) and slots by offset; classify each root."""

    def key(f: dict) -> tuple:
        return (f.get("thread"), f.get("fp"), f.get("pc"))

    before = {key(f): f for f in old.get("frames", []) if isinstance(f, dict)}
    after = {key(f): f for f in new["frames"]}
    frames = []
    counts = {"changed": 0, "unchanged": 0, "added": 0, "removed": 0}
    for k, f in after.items():
        o = before.get(k)
        if o is None:
            continue
        old_slots = {
            s.get("offset"): s.get("raw") for s in o.get("slots", []) if isinstance(s, dict)
        }
        slots = []
        for s in f["slots"]:
            if s["offset"] not in old_slots:
                state = "added"
            elif old_slots[s["offset"]] != s["raw"]:
                state = "changed"
            else:
                state = "unchanged"
            counts[state] += 1
            slots.append(
                {
                    "offset": s["offset"],
                    "address": s["address"],
                    "old": old_slots.get(s["offset"]),
                    "new": s["raw"],
                    "state": state,
                }
            )
        for off in set(old_slots) - {s["offset"] for s in f["slots"]}:
            counts["removed"] += 1
            slots.append(
                {
                    "offset": off,
                    "address": None,
                    "old": old_slots[off],
                    "new": None,
                    "state": "removed",
                }
            )
        frames.append(
            {
                "thread": f["thread"],
                "level": f["level"],
                "pc": f["pc"],
                "fp": f["fp"],
                "function": f["function"],
                "slots": slots,
            }
        )
    return {
        "frames": frames,
        "counts": counts,
        "frames_gone": [{"thread": k[0], "fp": k[1], "pc": k[2]} for k in before if k not in after],
        "frames_new": [{"thread": k[0], "fp": k[1], "pc": k[2]} for k in after if k not in before],
    }
