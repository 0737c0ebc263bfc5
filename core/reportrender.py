"""Text of the process-wide records: `stackmap images`, `load`, `snapshot`, `diff` and
the crash report (`stackmap report`, `wasmtime-stackmaps triage`)."""

from .btrender import bt_lines
from .render import Style, escaped
from .report import Record


@escaped
def images_lines(doc: Record) -> list[str]:
    """`stackmap images`: one line per image (from `report.images_document`), then problems."""
    lines = [
        f"{'base':>18} {'size':>10}  {'kind':9} {'target':28} {'ver':>5} "
        f"{'funcs':>6} {'maps':>6}  path"
    ]
    for r in doc["images"]:
        if r["error"]:
            lines.append(f"{r['base']:#18x} {r['size']:#10x}  error: {r['error']}")
            continue
        lines.append(
            f"{r['base']:#18x} {r['size']:#10x}  {r['kind']:9} "
            f"{(r['target'] or r['arch']):28} {r['wasmtime_version']:>5} "
            f"{r['functions']:>6} {r['stackmap_entries']:>6}  "
            f"{r['path'] or '[anon]'}"
        )
    for p in doc["problems"]:
        lines.append(f"{p['base']:#18x} {'':>10}  unusable: {p['error']}")
    return lines


@escaped
def loaded_line(rec: Record) -> str:
    """`stackmap load`: what was loaded where (an `image_record`)."""
    start, size = rec["text_start"], rec["text_size"]
    return (
        f"loaded {rec['path']} at {rec['base']:#x} (.text {start:#x}..{start + size:#x}, "
        f"{rec['arch']}, Wasmtime {rec['wasmtime_version']})"
    )


@escaped
def snapshot_line(name: str, roots: int, frames: int, path: str | None) -> str:
    msg = f"snapshot {name!r}: {roots} roots in {frames} frames"
    if path:
        msg += f", written to {path}"
    return msg


@escaped
def diff_lines(result: Record) -> list[str]:
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


@escaped
def report_lines(doc: Record, style: Style) -> list[str]:
    """`stackmap report` (and `wasmtime-stackmaps triage`) as text."""
    out = []
    proc = doc.get("process") or {}
    out.append("process: " + ", ".join(f"{k}={v}" for k, v in proc.items() if v is not None))
    stop = doc.get("stop")
    if stop:
        sig = stop.get("signal_name") or stop.get("signal")
        pc = stop.get("pc")
        out.append(
            f"stop: thread {stop.get('thread')}"
            + (f", signal {sig}" if sig else "")
            + (f" at pc {pc:#x}" if pc else "")
        )
    trap = doc.get("trap")
    if trap:
        what = trap["name"] or "no trap code"
        out.append(
            f"trap: {what} in {trap['function']} (.text+{trap['text_offset']:#x})"
            + (f", wasm offset {trap['wasm_offset']:#x}" if trap["wasm_offset"] is not None else "")
            + (f" ({trap['note']})" if trap.get("note") else "")
        )
    for img in doc.get("images", []):
        out.append(
            f"image: {img['base']:#x} {img['kind']} {img['target'] or img['arch']} "
            f"Wasmtime {img['wasmtime_version']} {img['path'] or '[anon]'}"
        )
    out.extend(bt_lines(doc, style))
    return out
