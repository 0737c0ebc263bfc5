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
from .target import ThreadState

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


def write_snapshot(path: str, snap: dict) -> None:
    with open(path, "w") as fh:
        json.dump(snap, fh)


def read_snapshot(path: str) -> dict:
    """A snapshot written by `write_snapshot` (StackMapsError when it is not one)."""
    try:
        with open(path) as fh:
            old = json.load(fh)
    except (OSError, ValueError) as e:
        raise StackMapsError(f"cannot read snapshot {path}: {e}") from e
    if not isinstance(old, dict) or old.get("kind") != SNAPSHOT_KIND:
        raise StackMapsError(f"{path} is not a 'stackmap snapshot' file")
    return old


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
