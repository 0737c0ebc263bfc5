"""The hostile inputs of issue 14, generated (nothing large is committed).

`cases(tmpdir)` writes every crafted input and returns Case records: the file,
the CLI commands to run on it and what each must do (exit code, a phrase of
its one-line message). `measure()` runs one command in a fresh process and
returns its exit code, output, wall and CPU seconds and peak RSS, read with
getrusage(RUSAGE_CHILDREN) in a wrapper process of its own (so the peak is
that command's alone).

Run as a script to print the table of measurements:
    .venv/bin/python tests/fuzz/crafted.py [--big]
"""

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import elfgen  # noqa: E402
from elfgen import u32s  # noqa: E402

CLI = [sys.executable, "-m", "wasmtime_stackmaps.cli"]
# The resource contract (README): per command, for an input of up to 64 MB.
SECONDS = 5.0
MEMORY = 256 << 20  # bytes beyond the input file


@dataclass
class Case:
    name: str
    path: str
    # (argv after the file-taking subcommand, exit code, phrase in the one line) per command
    runs: list[tuple[list[str], int, str]] = field(default_factory=list)
    big: bool = False  # only with --long (a file of tens of MB)


ALL = ("info", "dump", "check", "lookup")


def _file_cmds(path: str, code: int, phrase: str, cmds=ALL) -> list[tuple[list[str], int, str]]:
    out = []
    for c in cmds:
        argv = [c, path, "0x10"] if c == "lookup" else [c, path]
        out.append((argv, code, phrase))
    return out


def _write(d: Path, name: str, img: elfgen.Image) -> str:
    p = d / f"{name}.cwasm"
    p.write_bytes(elfgen.build(img))
    return str(p)


def _stackmap_case(d: Path, name: str, section: bytes) -> str:
    img = elfgen.standard()
    img.section(".wasmtime.stackmap").data = section
    return _write(d, name, img)


def cases(d: Path, big: bool = False) -> list[Case]:
    d = Path(d)
    out: list[Case] = []

    # Special files: refused by stat() before open() (a FIFO would block open forever).
    fifo = d / "fifo.cwasm"
    os.mkfifo(fifo)
    out.append(Case("fifo", str(fifo), _file_cmds(str(fifo), 2, "is a FIFO")))
    out.append(Case("directory", str(d), _file_cmds(str(d), 2, "is a directory")))
    out.append(Case("proc-file", "/proc/version", _file_cmds("/proc/version", 2, "pseudo file")))
    out.append(Case("device", "/dev/zero", _file_cmds("/dev/zero", 2, "is a device")))

    # 1 entry, one map of 2,000,000 all-ones bitmap words (8 MB): frame_size past Cranelift's
    # 1 GiB limit, and within it (then 64M live slots, past MAX_LIVE_SLOTS).
    ones = 2_000_000
    for label, fs in (("bitmap-bomb", 0xFFFFFFFF), ("bitmap-bomb-1gib", 1 << 30)):
        sec = u32s([1, 0x10, 0, fs, ones]) + b"\xff" * (4 * ones)
        p = _stackmap_case(d, label, sec)
        out.append(Case(label, p, _file_cmds(p, 1, "invalid")))

    # Overlapping bitmaps: 6,000 entries whose maps start one word apart in a shared run
    # of 50,000 words (206 KB): quadratic for a decoder that hashes each map.
    n, w = 6000, 50000
    sec = u32s([n, *range(0x10, 0x10 + 4 * n, 4), *range(n), *([20000] * w)])
    p = _stackmap_case(d, "overlapping-maps", sec)
    out.append(Case("overlapping-maps", p, _file_cmds(p, 1, "invalid")))

    # Sparse: .wasmtime.stackmap and .symtab declared 1 GiB each, the file 3 GiB long
    # with a few KB on disk.
    img = elfgen.standard()
    img.section(".wasmtime.stackmap").declared_size = 1 << 30
    img.section(".symtab").declared_size = 1 << 30
    sparse = d / "sparse.cwasm"
    elfgen.write_sparse(sparse, img, 3 << 30)
    out.append(Case("sparse-1gib-sections", str(sparse), _file_cmds(str(sparse), 1, "invalid")))

    # A symbol with 5,000 digits (int()'s limit is 4,300), and names with ESC, BEL, newline,
    # bidi override; engine strings with ESC.
    fns = (
        (0, 0x40, "wasm[" + "9" * 5000 + "]::function[0]::x"),
        (0x40, 0x40, "wasm[0]::function[1]::\x1b[2J\x07evil\nforged line\u202e"),
    )
    img = elfgen.standard(functions=fns, version="49\x1b[31m", target="x86_64\x1b]0;pwn\x07")
    p = _write(d, "hostile-names", img)
    out.append(Case("hostile-names", p, _file_cmds(p, 0, "")))
    out[-1].runs.append((["dump", p, "--function", "1"], 0, ""))
    out[-1].runs.append((["dump", p, "--function", "\u00b2"], 2, "no function matches"))
    out[-1].runs.append((["dump", p, "--function", "9" * 5000], 2, "no function matches"))
    out[-1].runs.append((["lookup", p, "0x10000000000000000000"], 2, "not a 64-bit offset"))
    out[-1].runs.append((["lookup", p, "-1"], 2, "not a 64-bit offset"))

    # No .text (check used to say valid while info/lookup failed): exit 2 everywhere.
    img = elfgen.standard()
    img.sections = [s for s in img.sections if s.name != ".text"]
    p = _write(d, "no-text", img)
    out.append(Case("no-text", p, _file_cmds(p, 2, "no .text section")))
    # .text declared past the end of the file: dropped, so again no .text.
    img = elfgen.standard()
    img.section(".text").declared_size = 1 << 40
    p = _write(d, "text-past-end", img)
    out.append(Case("text-past-end", p, _file_cmds(p, 1, "runs past the end of the image")))
    # Unsorted pcs (check said invalid while dump/info/lookup exited 0): exit 1 everywhere.
    p = _stackmap_case(d, "unsorted-pcs", elfgen.stackmap([(0x50, 32, [1]), (0x10, 32, [1])]))
    out.append(Case("unsorted-pcs", p, _file_cmds(p, 1, "not strictly ascending")))
    # A map nobody uses, and an index into the middle of another map.
    sec = u32s([1, 0x10, 0, 32, 1, 1, 32, 1, 1])
    p = _stackmap_case(d, "unused-map", sec)
    out.append(Case("unused-map", p, _file_cmds(p, 1, "used by no entry")))
    sec = u32s([2, 0x10, 0x20, 0, 2, 1000, 3, 1000, 1, 1])  # data[2..4] decodes as a map too
    p = _stackmap_case(d, "index-inside-map", sec)
    out.append(Case("index-inside-map", p, _file_cmds(p, 1, "not the start of a map")))
    # Symbol count beyond MAX_SYMBOLS (1 << 22) declared over a short table.
    img = elfgen.standard()
    img.section(".symtab").declared_size = 24 * (1 << 23)
    img.shoff = None
    p = _write(d, "symtab-past-end", img)
    out.append(Case("symtab-past-end", p, _file_cmds(p, 1, "runs past the end of the image")))

    if big:
        out.extend(_big_cases(d))
    return out


def _big_cases(d: Path) -> list[Case]:
    """Files of about 64 MB: the contract's largest input, valid and invalid."""
    out = []
    # A valid section of 3M one-word maps, Wasmtime's layout (20 bytes an entry).
    n = 3_000_000
    from array import array

    pcs = array("I", range(16, 16 + n))
    index = array("I", range(0, 3 * n, 3))
    data = array("I", [64, 1, 0b101]) * n
    sec = array("I", [n]).tobytes() + pcs.tobytes() + index.tobytes() + data.tobytes()
    img = elfgen.standard(functions=((0, 16 + n, "wasm[0]::function[0]::big"),), text_size=16 + n)
    img.section(".wasmtime.stackmap").data = sec
    p = _write(d, "big-valid-stackmap", img)
    runs = _file_cmds(p, 0, "", ("info", "check", "lookup"))
    runs.append((["dump", p], 0, "dump stopped after"))
    runs.append((["dump", "--json", p], 0, "dump stopped after"))
    out.append(Case("big-valid-stackmap", p, runs, big=True))
    # 2.7M function symbols (64 MB of .symtab), names all alike.
    nsym = 2_700_000
    e = elfgen.symbols([(16 * i, 16, "wasm[0]::function[1]") for i in range(1)])
    one = e[0][24:48]
    symtab = bytes(24) + one * nsym
    img = elfgen.standard(text_size=16)
    img.section(".symtab").data = symtab
    img.section(".wasmtime.stackmap").data = u32s([0])
    p = _write(d, "big-symtab", img)
    out.append(Case("big-symtab", p, _file_cmds(p, 0, ""), big=True))
    return out


_WRAPPER = r"""
import json, resource, subprocess, sys, time
out = []
for argv in json.loads(sys.argv[1]):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    try:
        p = subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL, timeout=60)
        rc, so, se = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        rc, so, se = "timeout", e.stdout or b"", e.stderr or b""
    wall = time.perf_counter() - t
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = ru.ru_utime + ru.ru_stime - before.ru_utime - before.ru_stime
    out.append({"rc": rc, "stdout": so.decode("utf-8", "replace")[-20000:],
                "stderr": se.decode("utf-8", "replace")[-20000:], "wall": wall, "cpu": cpu})
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
json.dump({"runs": out, "maxrss": ru.ru_maxrss * 1024}, sys.stdout)
"""


def measure(argvs: list[list[str]], env: dict | None = None) -> dict:
    """Run each `wasmtime-stackmaps ARGV` in a fresh process, in order, under one wrapper
    process: {"runs": [{rc, stdout, stderr, wall, cpu}], "maxrss": the largest peak RSS}.
    (RUSAGE_CHILDREN counts only the wrapper's children: these commands, nothing else.)"""
    w = subprocess.run(
        [sys.executable, "-c", _WRAPPER, json.dumps([[*CLI, *a] for a in argvs])],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    return json.loads(w.stdout)


def present(path: str) -> int:
    """Bytes of `path` really on disk (a sparse file's holes are not input)."""
    try:
        st = os.stat(path)
    except OSError:
        return 0
    return min(st.st_size, st.st_blocks * 512) if Path(path).is_file() else 0


def main() -> None:
    big = "--big" in sys.argv
    with tempfile.TemporaryDirectory() as d:
        for case in cases(Path(d), big):
            m = measure([argv for argv, _, _ in case.runs])
            for (argv, code, _), r in zip(case.runs, m["runs"], strict=True):
                print(
                    f"{case.name:22} {argv[0]:7} rc={r['rc']} (want {code}) "
                    f"wall={r['wall']:.2f}s cpu={r['cpu']:.2f}s"
                )
            print(
                f"{case.name:22} peak RSS {m['maxrss'] / 2**20:.0f} MB, "
                f"file {present(case.path) / 2**20:.1f} MB on disk"
            )


if __name__ == "__main__":
    main()
