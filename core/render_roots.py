"""Text of the commands that follow roots across stops: `snapshot`/`diff` and `gc-watch`
(the rest of the text output is core/render.py's)."""


def snapshot_line(name: str, roots: int, frames: int, path: str | None) -> str:
    msg = f"snapshot {name!r}: {roots} roots in {frames} frames"
    if path:
        msg += f", written to {path}"
    return msg


def diff_lines(result: dict) -> list[str]:
    """`stackmap diff`: the counts, then each matched frame's roots and their state."""
    c = result["counts"]
    out = [
        f"{c['changed']} roots changed value, {c['unchanged']} unchanged"
        + (f", {c['added']} added, {c['removed']} removed" if c["added"] or c["removed"] else "")
        + f"; {len(result['frames_gone'])} frames gone, {len(result['frames_new'])} new"
    ]
    for f in result["frames"]:
        out.append(f"#{f['level']:<3} {f['pc']:#018x} {f['function']} fp={f['fp']:#x}")
        for s in f["slots"]:
            old = "-" if s["old"] is None else f"{s['old']:#010x}"
            new = "-" if s["new"] is None else f"{s['new']:#010x}"
            out.append(f"      SP+{s['offset']:<5} {old} -> {new}  {s['state']}")
    return out


# -- gc-watch (core/gcwatch.py) ------------------------------------------------------------


def _clean(text: object) -> str:
    """A name read from the inferior, without control characters."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in str(text))


def _where(rec: dict) -> str:
    name = _clean(rec.get("function") or "??")
    off = rec.get("function_offset")
    return f"{name}+{off:#x}" if off is not None else name


def gcwatch_lines(rec: dict) -> list[str]:
    """One summary line per watched collection, then a line per violation."""
    c = rec["counts"]
    ncol = rec["collections"]
    what = "collection" if ncol != 0 else "gc point (no collection seen)"
    caller = rec["caller"]
    src = _where(caller) if caller.get("function") else f"host pc {caller['pc']:#x}"
    heap = ""
    hb, ha = rec.get("heap_before"), rec.get("heap_after")
    if hb:
        heap = f"; heap {hb['base']:#x}+{hb['length']:#x}"
        if ha and (ha["base"], ha["length"]) != (hb["base"], hb["length"]):
            heap += f" -> {ha['base']:#x}+{ha['length']:#x}"
        heap += f" ({hb['collector'] or 'unknown'} collector)"
    line = (
        f"gc-watch: {what} #{rec['collection']}: {rec['point']} from {src} "
        f"(thread {rec['thread']}): {c['roots']} roots, {c['moved']} moved, "
        f"{c['unchanged']} unchanged, {c['violations']} violation{'s' * (c['violations'] != 1)}"
        + heap
    )
    if ncol and ncol > 1:
        line += f"; {ncol} collections in this call"
    if rec.get("untied_activations"):
        line += f"; {rec['untied_activations']} activation(s) with no located heap not checked"
    out = [line]
    for v in rec["violations"]:
        old = "-" if v["old"] is None else f"{v['old']:#x}"
        new = "-" if v["new"] is None else f"{v['new']:#x}"
        head = (
            f"  VIOLATION thread {v['thread']} frame #{v['level']} {_clean(v['function'] or '??')} "
            f"SP+{v['offset']} ({v['address']:#x}): {old} -> {new}: "
        )
        if v.get("problem_before"):
            out.append(head + "before the collection: " + _clean(v["problem_before"]))
        if v.get("problem"):
            out.append(head + "after the collection: " + _clean(v["problem"]))
    return out


def gcwatch_status_line(s: dict) -> str:
    pts = ", ".join(f"{n} x{k}" for n, k in sorted(s["points"].items())) or "none yet"
    return (
        f"gc-watch {'on' if s['enabled'] else 'off'}"
        + (" (--verify)" if s["verify"] else "")
        + (" (--stop-on-violation)" if s["stop_on_violation"] else "")
        + f": breakpoints at {pts}"
        + ("" if s["host_collector_known"] else " (no host collector symbols: builtins only)")
        + f"; {s['collections']} collections checked, {s['violations']} violations, "
        f"{s['calls']} calls, {s['no_collection']} without a collection"
        + (f", {s['unbracketed']} in host code not checked" if s.get("unbracketed") else "")
        + (f", {s['errors']} errors" if s["errors"] else "")
    )
