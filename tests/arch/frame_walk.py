"""Stand-alone check used by tests/arch: walk wasm frames at a stop and decode their stack maps.

Independent of the plugin on purpose (it only proves what a remote stub lets a debugger
read). Works in both debuggers:

    gdb:   source tests/arch/frame_walk.py          (runs at once on the selected frame)
    lldb:  command script import tests/arch/frame_walk.py   then: archwalk

It finds the Wasmtime image around the PC by scanning back page by page for an ELF
header with EI_OSABI 200, reads the section headers from memory, then follows the
frame-pointer chain ([FP] = caller FP, [FP+8] = return address, PAC bits stripped) and
prints the live slots of every frame whose return address has a stack map.
"""

import struct

FP_REG = {"aarch64": "x29", "riscv64": "s0", "x86_64": "rbp"}
ADDR_MASK = (1 << 48) - 1  # user VA is 48 bits under qemu-user: higher bits of a signed RA are PAC


def find_image(read, pc, max_pages=4096):
    page = pc & ~0xFFF
    for _ in range(max_pages):
        h = read(page, 64)
        if h and h[:4] == b"\x7fELF" and h[7] == 200:
            return page, h
        page -= 0x1000
    raise RuntimeError(f"no Wasmtime image header found below pc {pc:#x}")


def sections(read, base, h):
    (e_machine,) = struct.unpack_from("<H", h, 18)
    (e_shoff,) = struct.unpack_from("<Q", h, 0x28)
    e_shentsize, e_shnum, e_shstrndx = struct.unpack_from("<HHH", h, 0x3A)
    raw = read(base + e_shoff, e_shnum * e_shentsize)
    shdrs = [struct.unpack_from("<IIQQQQIIQQ", raw, i * e_shentsize) for i in range(e_shnum)]
    strtab = read(base + shdrs[e_shstrndx][4], shdrs[e_shstrndx][5])
    out = {}
    for s in shdrs:
        name = strtab[s[0] : strtab.index(b"\0", s[0])].decode()
        out[name] = (s[4], s[5])  # (sh_offset, sh_size)
    return e_machine, out


def parse_stackmaps(data):
    (n,) = struct.unpack_from("<I", data, 0)
    pcs = struct.unpack_from(f"<{n}I", data, 4)
    idx = struct.unpack_from(f"<{n}I", data, 4 + 4 * n)
    words = data[4 + 8 * n :]
    maps = {}
    for p, k in zip(pcs, idx, strict=True):
        frame_size, m = struct.unpack_from("<II", words, 4 * k)
        bits = struct.unpack_from(f"<{m}I", words, 4 * k + 8)
        offs = [4 * (32 * w + b) for w in range(m) for b in range(32) if bits[w] >> b & 1]
        maps[p] = (frame_size, offs)
    return maps


def describe(r):
    if r == 0:
        return "null"
    if r & 1:
        v = r >> 1
        return f"i31 {v - (1 << 31) if v >> 30 else v}"
    return f"gc heap index {r:#x}"


def walk(read, pc, fp, arch, out=print):
    base, h = find_image(read, pc)
    e_machine, secs = sections(read, base, h)
    t_off, t_size = secs[".text"]
    text = base + t_off
    out(f"image at {base:#x} e_machine={e_machine} .text={text:#x}..{text + t_size:#x}")
    maps = {}
    if ".wasmtime.stackmap" in secs:
        off, size = secs[".wasmtime.stackmap"]
        maps = parse_stackmaps(read(base + off, size))
    out("stack map pcs: " + ", ".join(f"{p:#x}" for p in sorted(maps)))
    out(f"frame 0 pc=text+{pc - text:#x} fp={fp:#x}")
    for i in range(1, 64):
        (caller_fp,) = struct.unpack("<Q", read(fp, 8))
        (ra_raw,) = struct.unpack("<Q", read(fp + 8, 8))
        ra = ra_raw & ADDR_MASK
        pac = f" (raw {ra_raw:#x}, PAC bits stripped)" if ra != ra_raw else ""
        if not text <= ra < text + t_size:
            out(f"frame {i} ra={ra:#x}{pac}: outside .text, host caller; stop")
            return
        line = f"frame {i} ra=text+{ra - text:#x}{pac} fp={caller_fp:#x}"
        if ra - text in maps:
            frame_size, offs = maps[ra - text]
            sp = caller_fp - frame_size
            vals = [
                f"sp+{o}={r:#x} ({describe(r)})"
                for o in offs
                for r in struct.unpack("<I", read(sp + o, 4))
            ]
            line += f" frame_size={frame_size} live: " + ", ".join(vals)
        else:
            line += " (no stack map: no live GC refs)"
        out(line)
        fp = caller_fp


try:
    import gdb  # noqa: F401

    def _gdb_main():
        inf = gdb.selected_inferior()
        arch = gdb.selected_frame().architecture().name().split(":")[0]
        arch = {"i386": "x86_64", "riscv": "riscv64"}.get(arch, arch)

        def read(addr, n):
            try:
                return inf.read_memory(addr, n).tobytes()
            except gdb.MemoryError:
                return None

        pc = int(gdb.parse_and_eval("$pc"))
        fp = int(gdb.parse_and_eval("$" + FP_REG[arch]))
        walk(read, pc, fp, arch)

    _gdb_main()
except ImportError:
    pass


def _lldb_archwalk(debugger, command, result, internal_dict):
    import lldb

    process = debugger.GetSelectedTarget().GetProcess()
    frame = process.GetSelectedThread().GetFrameAtIndex(0)
    triple = debugger.GetSelectedTarget().GetTriple() or ""
    arch = triple.split("-")[0]

    def read(addr, n):
        err = lldb.SBError()
        data = process.ReadMemory(addr, n, err)
        return data if err.Success() else None

    pc = frame.GetPC()
    fp = frame.FindRegister(FP_REG.get(arch, "fp")).GetValueAsUnsigned()
    walk(read, pc, fp, arch, out=lambda s: result.AppendMessage(s))


def __lldb_init_module(debugger, internal_dict):
    debugger.HandleCommand(f"command script add -f {__name__}._lldb_archwalk archwalk")
