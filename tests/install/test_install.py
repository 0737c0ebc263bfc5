"""The tool as a user installs it: a wheel built from this repo, in a fresh venv outside it.

The wheel and the sdist are built offline (no build isolation; setuptools comes
with the test extras). The venv gets the wheel with `pip --no-index`; its two
pure-Python dependencies are copied from this environment first, so pip finds
them installed and needs no network. Everything then runs from a directory
outside the checkout: offline commands, `triage --core` under GDB and LLDB,
and GDB loading the plugin from the line `wasmtime-stackmaps gdbinit` prints.
"""

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import wasmtime_stackmaps

from tests.plugins import driver
from tests.plugins.common import CLI_FLAGS, PROGRAMS, cli_program
from tests.tooling import REPO, run_wasmtime, wasmtime_cli

TIMEOUT = 240
DEPENDENCIES = ("pyelftools", "pygments")


def _run(argv, env=None, **kw):
    kw.setdefault("timeout", TIMEOUT)
    env = dict(os.environ, NO_COLOR="1", **(env or {}))
    env.pop("PYTHONPATH", None)
    return subprocess.run(
        [str(a) for a in argv],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        **kw,
    )


def _ok(p):
    assert p.returncode == 0, f"exit {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p


@pytest.fixture(scope="session")
def dist(tmp_path_factory):
    """The wheel and the sdist of this checkout."""
    out = tmp_path_factory.mktemp("dist")
    _ok(
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "-q",
                "--no-deps",
                "--no-build-isolation",
                "--no-index",
                "-w",
                out,
                REPO,
            ],
            cwd=out,
        )
    )
    # The PEP 517 hook itself: `python -m build` is not a dependency of ours.
    _ok(
        _run(
            [
                sys.executable,
                "-c",
                f"from setuptools import build_meta; build_meta.build_sdist({str(out)!r})",
            ],
            cwd=REPO,
        )
    )
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return wheel, sdist


def _copy_dependencies(site: Path, names=DEPENDENCIES):
    """Copy installed pure-Python distributions (code and .dist-info) into `site`."""
    for name in names:
        d = importlib.metadata.distribution(name)
        tops = set()
        for f in d.files or ():
            first = f.parts[0]
            if first.endswith(".dist-info") or first == ".." or first.startswith("__"):
                continue
            tops.add(first)
        for top in sorted(tops) + [Path(d._path).name]:
            src = Path(d.locate_file(top))
            dst = site / top
            if src.is_dir():
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
            elif src.is_file():
                shutil.copy2(src, dst)


def make_venv(where: Path, python: str, wheel: Path, deps=True) -> Path:
    _ok(_run([python, "-m", "venv", where]))
    vpy = where / "bin" / "python"
    site = Path(
        _ok(
            _run([vpy, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
        ).stdout.strip()
    )
    if deps:
        _copy_dependencies(site)
    flags = [] if deps else ["--no-deps"]
    _ok(_run([vpy, "-m", "pip", "install", "-q", "--no-index", *flags, wheel], cwd=where))
    return where


@pytest.fixture(scope="session")
def venv(dist, tmp_path_factory):
    """A fresh venv of the oldest Python we claim (the one running the tests, 3.11)."""
    where = tmp_path_factory.mktemp("user") / "venv"
    return make_venv(where, sys.executable, dist[0])


@pytest.fixture(scope="session")
def outside(tmp_path_factory):
    """A working directory with nothing of the checkout in it."""
    return tmp_path_factory.mktemp("elsewhere")


def test_requires_python_is_the_python_tested():
    meta = importlib.metadata.metadata("wasmtime-stackmaps")
    assert meta["Requires-Python"] == ">=3.11"
    assert sys.version_info[:2] == (3, 11), (
        "the install tests must run on the oldest claimed Python"
    )
    assert meta["License-Expression"] == "Apache-2.0"


def test_wheel_and_sdist_carry_core_plugins_schema_and_license(dist):
    wheel, sdist = dist
    names = set(zipfile.ZipFile(wheel).namelist())
    for want in (
        "wasmtime_stackmaps/__init__.py",
        "wasmtime_stackmaps/bootstrap.py",
        "wasmtime_stackmaps/gdb_plugin/stackmaps.py",
        "wasmtime_stackmaps/lldb_plugin/stackmaps.py",
        "wasmtime_stackmaps/schema/report.schema.json",
    ):
        assert want in names, sorted(names)
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    meta = (
        zipfile.ZipFile(wheel)
        .read(next(n for n in names if n.endswith(".dist-info/METADATA")))
        .decode()
    )
    assert "License-Expression: Apache-2.0" in meta
    assert "Requires-Python: >=3.11" in meta
    # The docs travel with it (no project URL: the project has no public home yet).
    assert "\n## Install\n" in meta and "Project-URL" not in meta
    with tarfile.open(sdist) as t:
        members = {m.split("/", 1)[1] for m in t.getnames() if "/" in m}
    for want in (
        "core/bootstrap.py",
        "gdb_plugin/stackmaps.py",
        "lldb_plugin/stackmaps.py",
        "core/schema/report.schema.json",
        "LICENSE",
        "CHANGELOG.md",
        "pyproject.toml",
        "docs/format.md",
        "examples/README.md",
    ):
        assert want in members, sorted(members)


def _files(wheel: Path) -> set[str]:
    return {n for n in zipfile.ZipFile(wheel).namelist() if not n.endswith(".dist-info/RECORD")}


def test_the_sdist_builds_the_same_package_which_installs_and_loads(dist, tmp_path, outside):
    """`pip install` of the sdist builds a wheel from it: the same files as the checkout's
    wheel; installed in a fresh venv, the tool runs and GDB loads its plugin."""
    wheel, sdist = dist
    out = tmp_path / "from-sdist"
    out.mkdir()
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    _ok(_run([*pip_wheel, "--no-index", "-w", out, sdist], cwd=out))
    (built,) = out.glob("*.whl")
    assert _files(built) == _files(wheel)
    v = make_venv(tmp_path / "venv", sys.executable, built)
    tool = v / "bin" / "wasmtime-stackmaps"
    p = _ok(_run([tool, "--version"], cwd=outside))
    assert p.stdout.strip() == f"wasmtime-stackmaps {wasmtime_stackmaps.__version__}"
    line = _ok(_run([tool, "gdbinit"], cwd=outside)).stdout.strip()
    p = _run(["gdb", "-nx", "-batch", "-ex", line, "-ex", "help stackmap"], cwd=outside)
    assert p.returncode == 0 and "wasmtime-stackmaps:" not in p.stdout, p.stdout + p.stderr
    assert "Subcommands:\n  frame " in p.stdout, p.stdout


def test_version_and_init_lines(venv, outside, tmp_path):
    tool = venv / "bin" / "wasmtime-stackmaps"
    p = _ok(_run([tool, "--version"], cwd=outside))
    assert p.stdout.strip() == f"wasmtime-stackmaps {wasmtime_stackmaps.__version__}"
    gdb_line = _ok(_run([tool, "gdbinit"], cwd=outside)).stdout.strip()
    lldb_line = _ok(_run([tool, "lldbinit"], cwd=outside)).stdout.strip()
    m = re.fullmatch(r"source (\S+)", gdb_line)
    assert m and Path(m.group(1)).is_file() and m.group(1).startswith(str(venv)), gdb_line
    m = re.fullmatch(r"command script import (\S+)", lldb_line)
    assert m and Path(m.group(1)).is_file() and m.group(1).startswith(str(venv)), lldb_line
    # --install: once, whatever the number of runs; another copy's line is replaced.
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gdbinit").write_text(
        "set history save on\nsource /old/venv/gdb_plugin/stackmaps.py\n"
    )
    env_home = {"HOME": str(home)}
    for _ in range(2):
        _ok(_run([tool, "gdbinit", "--install"], cwd=outside, env=env_home))
        _ok(_run([tool, "lldbinit", "--install"], cwd=outside, env=env_home))
    assert (home / ".gdbinit").read_text() == f"set history save on\n{gdb_line}\n"
    assert (home / ".lldbinit").read_text() == f"{lldb_line}\n"


def test_offline_commands(venv, outside):
    cwasm = outside / "deep_trap.cwasm"
    run_wasmtime("compile", *CLI_FLAGS, "-o", cwasm, PROGRAMS / "deep_trap.wat")
    tool = venv / "bin" / "wasmtime-stackmaps"
    p = _ok(_run([tool, "dump", "--json", cwasm], cwd=outside))
    doc = json.loads(p.stdout)
    assert doc["entries"] and all(e["frame_size"] == 48 for e in doc["entries"]), doc
    assert "0 entries" not in _ok(_run([tool, "dump", cwasm], cwd=outside)).stdout
    assert "valid" in _ok(_run([tool, "check", cwasm], cwd=outside)).stdout


@pytest.fixture(scope="session")
def cli_core(tmp_path_factory):
    d = tmp_path_factory.mktemp("installcore")
    return driver.gcore(cli_program(), str(d / "cli.core"))


@pytest.mark.parametrize("debugger", driver.DEBUGGERS)
def test_triage_core_from_the_installed_tool(venv, outside, cli_core, debugger):
    tool = venv / "bin" / "wasmtime-stackmaps"
    p = _run(
        [
            tool,
            "triage",
            "--debugger",
            debugger,
            "--core",
            cli_core,
            "--exe",
            wasmtime_cli(),
            "--json",
        ],
        cwd=outside,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    doc = json.loads(p.stdout)
    frames = [f for t in doc["threads"] for f in t["frames"]]
    assert sum(f["safepoint"] for f in frames) == 5, frames
    assert doc["triage"]["debugger"] == debugger


def _gdb_live(line: str, cwd):
    return _run(
        [
            "gdb",
            "-nx",
            "-batch",
            "-iex",
            "set debuginfod enabled off",
            "-ex",
            line,
            "-ex",
            "run",
            "-ex",
            "stackmap bt --wide",
            "--args",
            *cli_program(),
        ],
        cwd=cwd,
    )


def test_gdb_sources_the_printed_path_and_shows_a_live_trap(venv, outside):
    line = _ok(_run([venv / "bin" / "wasmtime-stackmaps", "gdbinit"], cwd=outside)).stdout.strip()
    p = _gdb_live(line, outside)
    assert 'Thread 1 "wasmtime": 8 wasm frames in 1 activation' in p.stdout, p.stdout + p.stderr
    assert "SP+0=i31 7, SP+8=heap" in p.stdout


def _other_python():
    """Another CPython 3.x than the debugger's, if this machine has one (pyenv, /usr/bin)."""
    want = f"{sys.version_info[0]}.{sys.version_info[1]}"
    for v in ("3.13", "3.12"):
        if v == want:
            continue
        for cand in [shutil.which(f"python{v}")] + sorted(
            Path(os.path.expanduser("~/.pyenv/versions")).glob(f"{v}.*/bin/python{v}")
        ):
            # A pyenv shim exists for every installed version but runs only the selected ones.
            if cand and _run([cand, "-c", "import venv"], timeout=30).returncode == 0:
                return str(cand)
    return None


def test_plugin_finds_the_dependencies_of_a_venv_of_another_python(dist, tmp_path, outside):
    """GDB embeds 3.11; the tool may live in a 3.12/3.13 venv: the plugin still loads."""
    python = _other_python()
    if python is None:
        pytest.skip("no Python 3.12/3.13 on this machine to make the other venv with")
    v = make_venv(tmp_path / "venv", python, dist[0])
    line = _ok(_run([v / "bin" / "wasmtime-stackmaps", "gdbinit"], cwd=outside)).stdout.strip()
    assert (
        "/python3.1" in line and f"python{sys.version_info[0]}.{sys.version_info[1]}/" not in line
    )
    p = _gdb_live(line, outside)
    assert 'Thread 1 "wasmtime": 8 wasm frames in 1 activation' in p.stdout, p.stdout + p.stderr


@pytest.mark.parametrize("debugger", driver.DEBUGGERS)
def test_plugin_without_its_dependencies_says_what_to_run(dist, tmp_path, outside, debugger):
    v = make_venv(tmp_path / "venv", sys.executable, dist[0], deps=False)
    tool = v / "bin" / "wasmtime-stackmaps"
    if debugger == "gdb":
        line = _ok(_run([tool, "gdbinit"], cwd=outside)).stdout.strip()
        p = _run(["gdb", "-nx", "-batch", "-ex", line, "-ex", "help stackmap"], cwd=outside)
    else:
        line = _ok(_run([tool, "lldbinit"], cwd=outside)).stdout.strip()
        lldb = driver.debugger_path("lldb")
        p = _run([lldb, "--no-lldbinit", "-b", "-o", line, "-o", "help stackmap"], cwd=outside)
    said = [s for s in p.stdout.splitlines() if s.startswith("wasmtime-stackmaps:")]
    assert len(said) == 1, p.stdout + p.stderr
    # The debugger's own Python may have one of them (Debian's python3-pygments).
    m = re.fullmatch(
        r"wasmtime-stackmaps: missing (pyelftools(?:, pygments)?|pygments) for the debugger's "
        rf"Python 3\.\d+; run: {re.escape(str(v))}/bin/python3\S* -m pip install (.*)",
        said[0],
    )
    assert m and m.group(2) == m.group(1).replace(", ", " "), said[0]
    # The debugger stays usable, without the command (and no traceback).
    assert "Traceback" not in p.stdout + p.stderr
    if debugger == "gdb":
        assert 'Undefined command: "stackmap"' in p.stderr
    else:
        assert "'stackmap' is not a known command" in p.stderr, p.stdout + p.stderr


def test_lldb_imports_the_printed_line(venv, outside, cli_core):
    """The `lldbinit` line, as ~/.lldbinit would run it, on a core file of the CLI trap."""
    line = _ok(_run([venv / "bin" / "wasmtime-stackmaps", "lldbinit"], cwd=outside)).stdout.strip()
    p = _run(
        [
            driver.debugger_path("lldb"),
            "--no-lldbinit",
            "-b",
            "-o",
            line,
            "-o",
            f"target create --core {cli_core} {wasmtime_cli()}",
            "-o",
            "stackmap bt --wide",
            "-o",
            "bt 3",
        ],
        cwd=outside,
    )
    assert 'Thread 1 "wasmtime": 8 wasm frames in 1 activation' in p.stdout, p.stdout + p.stderr
    assert re.search(r"frame #1: 0x[0-9a-f]+ \S+`wasm\[0\]::function\[0\]::build \+ 180", p.stdout)
