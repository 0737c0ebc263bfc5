"""The text of `stackmap gc-watch` and `stackmap watch` (the rest of the text is in render.py)."""


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
        + (f", {c['lost']} object(s) lost" if c.get("lost") else "")
        + heap
    )
    if ncol and ncol > 1:
        line += f"; {ncol} collections in this call"
    ver = rec.get("verify")
    if ver and "objects" in ver:
        line += (
            f"; verify: {ver['objects']} objects ({ver['bytes']} bytes) in the active space, "
            f"{ver['problem_count']} problem{'s' * (ver['problem_count'] != 1)}"
        )
    elif ver and ver.get("note"):
        line += f"; verify: {ver.get('note')}"
    ty = (ver or {}).get("typed") or {}
    if "objects" in ty:
        line += (
            f"; typed verify: {ty['objects']} objects, {ty['refs_checked']} refs checked, "
            f"{ty['count']} violation{'s' * (ty['count'] != 1)}"
            + ("" if ty.get("typed") else " (no module types)")
        )
    elif ty.get("note"):
        line += f"; typed verify: {ty['note']}"
    if rec.get("untied_activations"):
        line += f"; {rec['untied_activations']} activation(s) with no located heap not checked"
    out = [line]
    for v in rec["violations"]:
        old = "-" if v["old"] is None else f"{v['old']:#x}"
        new = "-" if v["new"] is None else f"{v['new']:#x}"
        head = f"  VIOLATION {_clean(v['path'])} ({v['address']:#x}): {old} -> {new}: "
        if v.get("problem_before"):
            out.append(head + "before the collection: " + _clean(v["problem_before"]))
        if v.get("problem"):
            out.append(head + "after the collection: " + _clean(v["problem"]))
    for p in ((rec.get("verify") or {}).get("problems") or []) + (rec.get("lost") or []):
        where = f" (reached as {_clean(p['path'])})" if p.get("path") else ""
        out.append(f"  HEAP object {p['ref']:#x}: {_clean(p['problem'])}{where}")
    for v in ((rec.get("verify") or {}).get("typed") or {}).get("violations") or []:
        path = " -> ".join(_clean(x) for x in v.get("path") or [])
        out.append(f"  TYPED heap {v['ref']:#x}: {_clean(v['problem'])} ({path})")
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


def watch_list_lines(recs: list[dict]) -> list[str]:
    out = []
    for w in recs:
        what = f"heap {w['ref']:#x}+{w['offset']}" if w["ref"] is not None else "slot"
        out.append(
            f"watch #{w['number']}: {_clean(w['spec'])} ({what}) at {w['address']:#x}, "
            f"{w['hits']} hits, moved {w['moves']} times"
        )
    return out
