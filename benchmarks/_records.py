"""What the in-debugger measurements (_in_gdb.py, _in_lldb.py) report, the same in both."""


def bt_record(label, runs, doc, **extra):
    """The `@@BENCH` record of a timed `stackmap bt --json`: its run times, and the wasm
    frames, activations and stats of its document (None: it printed none)."""
    threads = doc["threads"] if doc else []
    return dict(
        kind="stackmap_bt",
        label=label,
        runs=runs,
        frames=sum(len(t["frames"]) for t in threads),
        activations=sum(len(t.get("activations", [])) for t in threads),
        stats=doc.get("stats") if doc else None,
        **extra,
    )
