"""Make `wasmtime_stackmaps` importable inside a debugger's embedded Python.

GDB and LLDB embed the system Python (Debian: 3.11), not the environment the
tool was installed into. The plugins load this file by path and call
`load_adapter(their own file, module name)`: it loads the core with `load(root)`,
`root` being the directory above the plugin's, then the plugin's `adapter.py`.
`root` is

- a repo checkout (`root/core/` is the package): the dependencies come from the
  repo's `.venv` (`bash dev.sh setup`);
- an installed package (`root` is `.../site-packages/wasmtime_stackmaps`): the
  dependencies come from that same site-packages, whichever Python it is for.

pyelftools and pygments are pure Python, so another 3.x's copies import fine.
Those two are served from there first (a meta-path finder, ahead of the
debugger's own paths: the pinned versions win); the environment's other
packages come after the debugger's own paths, so none shadows its modules. It never installs anything; when something is missing it
prints one line saying what to run and returns None.
"""

import glob
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Iterable, Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

MIN_PYTHON = (3, 11)
# Top-level module -> the distribution that provides it.
DEPENDENCIES = {"elftools": "pyelftools", "pygments": "pygments"}


def _say(text: str) -> None:
    print(f"wasmtime-stackmaps: {text}")


def _checkout_site_packages(repo: str) -> list[str]:
    found = sorted(glob.glob(os.path.join(repo, ".venv", "lib", "python3*", "site-packages")))
    want = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    # Prefer the venv built for this very Python; any 3.x works for pure-Python deps.
    found.sort(key=lambda p: want not in p)
    return found


def _environment_python(site_packages: str) -> str:
    """The interpreter of the environment that owns `site_packages` (.../lib/pythonX.Y/...)."""
    lib_dir = os.path.dirname(site_packages)
    prefix = os.path.dirname(os.path.dirname(lib_dir))
    for name in (os.path.basename(lib_dir), "python3", "python"):
        exe = os.path.join(prefix, "bin", name)
        if os.path.isfile(exe) and os.access(exe, os.X_OK):
            return exe
    return "python3"


def layout(root: str) -> tuple[str, list[str], str]:
    """(package dir, dependency dirs, the command that installs the {missing} dependencies)."""
    core = os.path.join(root, "core")
    if os.path.isfile(os.path.join(core, "__init__.py")):
        return core, _checkout_site_packages(root), f"bash {os.path.join(root, 'dev.sh')} setup"
    site = os.path.dirname(root)
    return root, [site], f"{_environment_python(site)} -m pip install " + "{missing}"


class _DependencyFinder(importlib.abc.MetaPathFinder):
    """Finds only our dependencies' top-level packages, in the given directories."""

    marker = "wasmtime-stackmaps dependency finder"

    def __init__(self, names: Iterable[str], dirs: Iterable[str]) -> None:
        self.names = frozenset(names)
        self.dirs = list(dirs)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname not in self.names or not self.dirs:
            return None
        return importlib.machinery.PathFinder.find_spec(fullname, self.dirs)


def _install_finder(dirs: list[str]) -> None:
    # Loaded twice (a second `source`, or the other plugin): one finder, the latest dirs.
    sys.meta_path[:] = [
        f for f in sys.meta_path if getattr(f, "marker", None) != _DependencyFinder.marker
    ]
    sys.meta_path.insert(0, _DependencyFinder(DEPENDENCIES, dirs))


def load(root: str) -> ModuleType | None:
    """Return the `wasmtime_stackmaps` package, or None after printing one line why not."""
    if "wasmtime_stackmaps" in sys.modules:
        return sys.modules["wasmtime_stackmaps"]
    if sys.version_info[:2] < MIN_PYTHON:
        _say(
            f"needs Python {MIN_PYTHON[0]}.{MIN_PYTHON[1]}+; this debugger embeds Python "
            f"{sys.version_info[0]}.{sys.version_info[1]}"
        )
        return None
    package, dep_dirs, repair = layout(root)
    _install_finder(dep_dirs)
    # The rest of that environment comes after the debugger's own paths: optional
    # packages (the `wasmtime` package compiles a .wat for `stackmap obj`) are found
    # there, and nothing there shadows a module of the debugger's Python.
    for d in dep_dirs:
        if d not in sys.path:
            sys.path.append(d)
    missing = [dist for mod, dist in DEPENDENCIES.items() if importlib.util.find_spec(mod) is None]
    if missing:
        _say(
            f"missing {', '.join(missing)} for the debugger's Python "
            f"{sys.version_info[0]}.{sys.version_info[1]}; run: {repair.replace('{missing}', ' '.join(missing))}"
        )
        return None
    spec = importlib.util.spec_from_file_location(
        "wasmtime_stackmaps",
        os.path.join(package, "__init__.py"),
        submodule_search_locations=[package],
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["wasmtime_stackmaps"] = module
    try:
        spec.loader.exec_module(module)
    except Exception:
        del sys.modules["wasmtime_stackmaps"]
        raise
    return module


def load_adapter(plugin_file: str, module_name: str) -> ModuleType | None:
    """Load the core, then the `adapter.py` next to `plugin_file` as `module_name` (afresh:
    loading the plugin again replaces its commands; the core and its state stay). The
    adapter module, or None after printing one line why not."""
    here = os.path.dirname(os.path.abspath(plugin_file))
    if load(os.path.dirname(here)) is None:
        return None
    spec = importlib.util.spec_from_file_location(module_name, os.path.join(here, "adapter.py"))
    assert spec is not None and spec.loader is not None
    adapter = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = adapter
    try:
        spec.loader.exec_module(adapter)
    except Exception:
        del sys.modules[module_name]
        raise
    return adapter
