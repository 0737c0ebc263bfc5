"""Fixtures of the plugin scenarios: which debugger, and artifacts made once per session."""

import os

import pytest

from tests.plugins import driver
from tests.plugins.common import CLI_FLAGS, PROGRAMS, host_program
from tests.tooling import run_wasmtime


@pytest.fixture(params=driver.DEBUGGERS)
def dbg(request):
    name = request.param
    if driver.debugger_path(name) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed on the CI machine: the set-up is broken")
        pytest.skip(f"{name} is not installed here (bash dev.sh setup installs lldb-19 when root)")
    return name


@pytest.fixture(scope="session")
def cli_image(tmp_path_factory):
    """deep_trap.wat compiled with the same flags as `wasmtime run` above."""
    out = tmp_path_factory.mktemp("cli") / "deep_trap.cwasm"
    run_wasmtime("compile", *CLI_FLAGS, "-o", out, PROGRAMS / "deep_trap.wat")
    return out


@pytest.fixture(scope="session")
def host_core(tmp_path_factory):
    d = tmp_path_factory.mktemp("core")
    prog = host_program("inproc", 3, 2)
    core = driver.gcore(prog, str(d / "host.core"))
    return core, prog
