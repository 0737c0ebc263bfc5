"""Text forms of the heap inspector's records (obj, heap, gcroot, verify, the bt brief)."""

from __future__ import annotations

from .text import safe


def clean(text: str | None) -> str:
    """Names come from the inferior's module: never print its control characters raw."""
    if text is None:
        return ""
    return safe(text)[:200]


def type_label(obj: dict) -> str:
    t = obj.get("type")
    if not t:
        return obj.get("kind", "object")
    return clean(t["name"]) if t.get("name") else f"type{t['module_index']}"


def value_text(rec: dict) -> str:
    v = rec.get("value")
    if isinstance(v, float):
        return repr(v)
    return clean(str(v))


def brief(obj: dict) -> str:
    """`node{val=5, next=heap 0x70}` (struct), `arr[3]` (array), or the kind."""
    if "fields" in obj:
        parts = []
        for f in obj["fields"][:8]:
            name = clean(f.get("name")) or str(f["index"])
            parts.append(f"{name}={value_text(f)}")
        more = ", ..." if len(obj["fields"]) > 8 else ""
        return f"{type_label(obj)}{{{', '.join(parts)}{more}}}"
    if obj.get("length") is not None and obj.get("type"):
        return f"{type_label(obj)}[{obj['length']}]"
    return ""


def obj_lines(obj: dict, notes: list[str], indent: str = "") -> list[str]:
    out = []
    head = f"{indent}heap {obj['ref']:#x}: {obj.get('kind')}"
    t = obj.get("type")
    if t:
        head += f" {type_label(obj)} (module type {t['module_index']}"
        head += f", shared type {obj.get('type_index')})"
    elif obj.get("type_index") is not None:
        head += f" shared type {obj['type_index']}"
    if obj.get("size") is not None:
        head += f", {obj['size']} bytes"
    head += f" at {obj['address']:#x}"
    out.append(head)
    if obj.get("forwarded") is not None:
        out.append(f"{indent}  forwarded to {obj['forwarded']:#x} (already copied)")
    if obj.get("error"):
        out.append(f"{indent}  error: {obj['error']}")
    if obj.get("type_note"):
        out.append(f"{indent}  untyped: {clean(obj['type_note'])}")
        if obj.get("payload") is not None:
            out.append(f"{indent}  payload: {obj['payload']}")
    for f in obj.get("fields", []):
        name = clean(f.get("name")) or f"field {f['index']}"
        line = f"{indent}  [{f['index']}] {name}: {clean(f['type'])} = {value_text(f)}"
        if "unsigned" in f and f["unsigned"] != f["value"]:
            line += f" (unsigned {f['unsigned']})"
        out.append(line)
        if f.get("object"):
            out.extend(obj_lines(f["object"], [], indent + "      "))
    if obj.get("length") is not None:
        out.append(f"{indent}  length {obj['length']}, element type {obj.get('element_type')}")
        for i, e in enumerate(obj.get("elements", [])):
            out.append(f"{indent}  [{i}] = {value_text(e)}")
            if e.get("object"):
                out.extend(obj_lines(e["object"], [], indent + "      "))
        shown = len(obj.get("elements", []))
        if shown < obj["length"]:
            out.append(f"{indent}  ... {obj['length'] - shown} more (--elements N)")
    out.extend(f"{indent}note: {clean(n)}" for n in notes)
    return out


def stat_lines(stat: list[dict]) -> list[str]:
    out = [f"{'count':>10} {'bytes':>12}  {'kind':10} type"]
    for s in stat:
        t = s.get("type")
        name = (clean(t["name"]) or f"type{t['module_index']}") if t else "?"
        shared = s["type_index"] if s["type_index"] is not None else "-"
        out.append(
            f"{s['count']:>10} {s['bytes']:>12}  {s['kind'] or '?':10} {name} (shared {shared})"
        )
    return out


def heap_lines(doc: dict, stat_only: bool) -> list[str]:
    h = doc["heap"]
    out = [
        f"GC heap {h['base']:#x}+{h['length']:#x} ({h['collector'] or 'unknown'} collector): "
        f"{doc['objects']} reachable objects, {doc['bytes']} bytes, from {doc['roots']} roots"
        + (" (TRUNCATED: --max-objects)" if doc["truncated"] else "")
    ]
    if not stat_only:
        for o in doc.get("object_list", [])[:1000]:
            out.append(
                f"  heap {o['ref']:#x} {o['kind']} shared type {o['type_index']} {o['size']} bytes"
            )
    out.extend(stat_lines(doc["stat"]))
    un = doc.get("unreachable")
    if un and un.get("walked"):
        where = "active space" if h["collector"] == "copying" else "heap"
        out.append(f"unreachable in the {where}: {un['objects']} objects, {un['bytes']} bytes")
    elif un:
        out.append(f"unreachable objects: {clean(un.get('note'))}")
    for p in doc.get("problems", [])[:20]:
        out.append(f"problem at heap {p['ref']:#x}: {clean(p['problem'])}")
    out.extend(f"note: {clean(n)}" for n in doc.get("notes", []))
    return out


def verify_lines(doc: dict) -> list[str]:
    v = doc["violations"]
    out = [
        f"verify: {doc['objects']} objects, {doc['refs_checked']} refs checked from "
        f"{doc['roots']} roots: " + ("OK" if not v else f"{len(v)} violation{'s' * (len(v) != 1)}")
    ]
    for x in v[:100]:
        out.append(f"  heap {x['ref']:#x}: {clean(x['problem'])}")
        out.append("    path: " + " -> ".join(clean(p) for p in x["path"]))
    out.extend(f"note: {clean(n)}" for n in doc.get("notes", []))
    return out
