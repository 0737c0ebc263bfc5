#!/usr/bin/env bash
# The demo: a wasm GC program that recurses (keeping a struct ref and an i31 live
# in every frame) and traps at the bottom; its stack maps offline, then the live
# GC references of every wasm frame in GDB (and LLDB when installed).
set -euo pipefail
cd "$(dirname "$0")/.."
WASMTIME=$(.venv/bin/python -c 'import os, wasmtime_cli; print(os.path.join(os.path.dirname(wasmtime_cli.__file__), "wasmtime"))')
PROG=tests/programs/deep_trap.wat
FLAGS=(-W gc=y)
OUT=examples/out
mkdir -p "$OUT"

echo "### 1. compile $PROG and read its stack maps offline"
"$WASMTIME" compile "${FLAGS[@]}" -o "$OUT/deep_trap.cwasm" "$PROG"
.venv/bin/wasmtime-stackmaps info "$OUT/deep_trap.cwasm"
.venv/bin/wasmtime-stackmaps dump "$OUT/deep_trap.cwasm"

echo
echo "### 2. run it under GDB: it traps at the bottom of the recursion"
echo "\$ gdb -batch -ex 'source gdb_plugin/stackmaps.py' -ex run -ex bt -ex 'stackmap bt' -ex 'stackmap frame 2 -x' --args wasmtime run ${FLAGS[*]} $PROG"
gdb -nx -batch -iex 'set debuginfod enabled off' -ex 'source gdb_plugin/stackmaps.py' -ex run \
    -ex 'bt 9' -ex 'stackmap bt' -ex 'stackmap frame 2 -x' \
    --args "$WASMTIME" run "${FLAGS[@]}" "$PROG" 2>&1 | grep -v '^\[New Thread\|^\[Thread\|libthread_db'

if command -v lldb-19 >/dev/null; then
    echo
    echo "### 3. the same in LLDB"
    echo "\$ lldb-19 -b -o 'command script import lldb_plugin/stackmaps.py' -o 'process launch' -k 'stackmap bt' -- wasmtime run ${FLAGS[*]} $PROG"
    echo "  (-k: LLDB's batch mode runs these after a stop it calls a crash, as this trap is)"
    lldb-19 --no-lldbinit -b -o 'settings set use-color false' \
        -o 'command script import lldb_plugin/stackmaps.py' -o 'process launch' \
        -o 'stackmap bt' -k 'stackmap bt' \
        -- "$WASMTIME" run "${FLAGS[@]}" "$PROG" 2>&1 | grep -v '^(lldb) \|^Process [0-9]* launched'
fi
