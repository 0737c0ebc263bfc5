"""Compile .wat fixtures with *this* interpreter's `wasmtime` package and write the images.

Run by each matrix venv's python (not the project's):
    python compile_fixtures.py OUT_DIR FILE.wat...
Prints one JSON object: {"wasmtime": version, "images": {stem: path or "error: ..."}}.
A `component*.wat` is compiled as a component when the package has wasmtime.component.
Python packages older than 46 lack Config.wasm_gc and friends: the C API setters their
library exports are called directly.
"""

import json
import sys
from importlib import metadata
from pathlib import Path

import wasmtime


def _set(cfg, name, value):
    if hasattr(type(cfg), name):
        setattr(cfg, name, value)
    else:
        from wasmtime import _ffi

        getattr(_ffi, f"wasmtime_config_{name}_set")(cfg.ptr(), value)


def engine(component: bool):
    cfg = wasmtime.Config()
    for flag in ("wasm_gc", "wasm_function_references", "wasm_reference_types", "wasm_tail_call"):
        _set(cfg, flag, True)
    if component:
        _set(cfg, "wasm_component_model", True)
    return wasmtime.Engine(cfg)


def main(argv):
    out = Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    images = {}
    for src in map(Path, argv[2:]):
        component = src.stem.startswith("component")
        try:
            text = src.read_text()
            if component:
                try:
                    from wasmtime.component import Component
                except ImportError:
                    images[src.stem] = "skipped: this wasmtime package has no wasmtime.component"
                    continue
                data = Component(engine(True), text).serialize()
            else:
                data = wasmtime.Module(engine(False), text).serialize()
            dest = out / f"{src.stem}.cwasm"
            dest.write_bytes(data)
            images[src.stem] = str(dest)
        except Exception as e:  # reported per fixture; the test decides
            images[src.stem] = f"error: {type(e).__name__}: {str(e)[:500]}"
    print(json.dumps({"wasmtime": metadata.version("wasmtime"), "images": images}))


if __name__ == "__main__":
    main(sys.argv)
