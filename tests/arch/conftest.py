"""Set-up of the cross-architecture tests: qemu-user, gdb-multiarch, lldb-19 and the
aarch64 `wasmtime` CLI, installed by tests/arch/setup_qemu.sh from this session fixture.

As root the script apt-installs what is missing; not as root it installs nothing with
apt and the tests skip saying what to run. On CI (CI=true, root) nothing ever skips:
a broken set-up fails.
"""

import os
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

HERE = Path(__file__).resolve().parent
SETUP = HERE / "setup_qemu.sh"


class QemuEnv(NamedTuple):
    qemu: str  # qemu-aarch64
    sysroot: str  # the aarch64 C runtime (QEMU_LD_PREFIX, debugger sysroot)
    wasmtime: str  # the aarch64 wasmtime CLI
    gdb: str  # gdb-multiarch
    lldb: str  # lldb-19 ("" if absent)


def on_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def _unavailable(reason: str):
    if on_ci():
        pytest.fail(f"aarch64/qemu set-up failed on CI: {reason}")
    pytest.skip(reason)


def _env_file(path: str) -> dict:
    out = subprocess.run(
        ["bash", "-c", 'source "$1" && env -0', "_", path], check=True, capture_output=True
    ).stdout.decode()
    return dict(kv.split("=", 1) for kv in out.split("\0") if "=" in kv)


@pytest.fixture(scope="session")
def qemu_env() -> QemuEnv:
    if sys.platform != "linux" or os.uname().machine != "x86_64":
        _unavailable("the qemu-user tests run on an x86_64 Linux host")
    env = dict(os.environ, PYTHON=sys.executable)  # the venv's python has pip
    p = subprocess.run(
        ["bash", str(SETUP), "--quiet"], capture_output=True, text=True, env=env, timeout=900
    )
    if p.returncode == 3:  # not root and Debian packages missing
        _unavailable(p.stderr.strip().splitlines()[-1])
    if p.returncode != 0:
        _unavailable(f"bash {SETUP} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    e = _env_file(p.stdout.strip().splitlines()[-1])
    qe = QemuEnv(
        e.get("QEMU_AARCH64", ""),
        e.get("AARCH64_SYSROOT", ""),
        e.get("WASMTIME_AARCH64", ""),
        e.get("GDB_MULTIARCH", ""),
        e.get("LLDB", ""),
    )
    for name in ("qemu", "wasmtime", "gdb"):
        if not getattr(qe, name) or not os.access(getattr(qe, name), os.X_OK):
            _unavailable(f"after bash {SETUP}: no {name} ({qe})")
    return qe
