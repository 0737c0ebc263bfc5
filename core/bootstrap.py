"""Make `wasmtime_stackmaps` importable inside a debugger's embedded Python.

GDB and LLDB embed the system Python, not the project's venv. The plugins
load this file by path, then `load(repo)`: it adds the repo's `.venv`
site-packages (pyelftools, pygments are pure Python) and registers `core/`
as the package `wasmtime_stackmaps`. It never installs anything.
"""

import glob
import importlib
import importlib.util
import os
import sys
from types import ModuleType

SETUP_HINT = "bash {repo}/dev.sh setup"


def _venv_site_packages(repo: str) -> list[str]:
    found = sorted(glob.glob(os.path.join(repo, ".venv", "lib", "python3*", "site-packages")))
    want = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    # Prefer the venv built for this very Python; any 3.x works for pure-Python deps.
    found.sort(key=lambda p: want not in p)
    return found


def load(repo: str) -> ModuleType | None:
    """Return the `wasmtime_stackmaps` package, or None after printing one line why not."""
    for sp in _venv_site_packages(repo):
        if sp not in sys.path:
            sys.path.append(sp)
    if "wasmtime_stackmaps" not in sys.modules:
        core = os.path.join(repo, "core")
        spec = importlib.util.spec_from_file_location(
            "wasmtime_stackmaps",
            os.path.join(core, "__init__.py"),
            submodule_search_locations=[core],
        )
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load the core package from {core}")
        missing = [m for m in ("elftools", "pygments") if importlib.util.find_spec(m) is None]
        if missing:
            names = {"elftools": "pyelftools", "pygments": "pygments"}
            print(
                f"wasmtime-stackmaps: missing {', '.join(names[m] for m in missing)} for "
                f"Python {sys.version_info[0]}.{sys.version_info[1]}; run: "
                + SETUP_HINT.format(repo=repo)
            )
            return None
        module = importlib.util.module_from_spec(spec)
        sys.modules["wasmtime_stackmaps"] = module
        try:
            spec.loader.exec_module(module)
        except Exception:
            del sys.modules["wasmtime_stackmaps"]
            raise
    return sys.modules["wasmtime_stackmaps"]
