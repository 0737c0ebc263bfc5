#!/usr/bin/env bash
# Example 3: scripted crash triage of a core file, with JSON out and exit codes.
#   1. run example 1's program to its trap and write a core file (gcore);
#   2. `wasmtime-stackmaps triage --core ... --json` -> report.json (exit 0/1/2/3);
#   3. read the report like a CI job would: the trap and the roots of each frame.
# Usage: bash examples/03-core-triage/triage.sh [gdb|lldb]
set -euo pipefail
cd "$(dirname "$0")/../.."
DEBUGGER=${1:-gdb}
# The CLI binary itself: .venv/bin/wasmtime is a Python wrapper a debugger cannot run.
WASMTIME=$(.venv/bin/wasmtime-stackmaps wasmtime-path)
OUT=examples/out
mkdir -p "$OUT"
CORE=$OUT/gc_list.core
# Small reservations keep the core file small (the default reserves GiBs of address space).
FLAGS=(-W gc=y -O memory-reservation=16777216,memory-guard-size=65536)

echo "### 1. run to the trap and dump a core file"
rm -f "$CORE"
gdb -nx -batch -iex 'set debuginfod enabled off' -ex run -ex "gcore $CORE" \
    --args "$WASMTIME" run "${FLAGS[@]}" examples/01-cli-trap/gc_list.wat >/dev/null 2>&1
echo "core file: $CORE"

echo "### 2. triage it"
set +e
.venv/bin/wasmtime-stackmaps triage --debugger "$DEBUGGER" --core "$CORE" --exe "$WASMTIME" \
    --json -o "$OUT/report.json"
echo "exit code: $? (0 report made, 1 no Wasmtime frames, 2 bad input, 3 debugger failed)"
set -e

echo "### 3. what the report says"
.venv/bin/python - "$OUT/report.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
stop, trap = doc["stop"], doc["trap"]
print(f"signal {stop['signal_name']} in thread {stop['thread']}")
print(f"trap {trap['name']} in {trap['function']} at wasm offset {trap['wasm_offset']:#x}")
for th in doc["threads"]:
    for f in th["frames"]:
        if f["safepoint"]:
            roots = ", ".join(f"SP+{s['offset']}={s['kind']} {s['value']:#x}" if s["kind"] == "heap"
                              else f"SP+{s['offset']}={s['kind']} {s['value']}" for s in f["slots"])
            print(f"  #{f['level']} {f['function']} frame_size={f['frame_size']}: {roots}")
PY
