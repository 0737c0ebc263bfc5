#!/usr/bin/env bash
# The demo: a wasm GC program that recurses (keeping a struct ref and an i31 live
# in every frame) and traps at the bottom; its stack maps offline, then the live
# GC references of every wasm frame in GDB (and LLDB when installed).
set -euo pipefail
cd "$(dirname "$0")/.."
# The CLI binary itself: .venv/bin/wasmtime is a Python wrapper a debugger cannot run.
WASMTIME=$(.venv/bin/wasmtime-stackmaps wasmtime-path)
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
echo "\$ gdb -batch -ex 'source gdb_plugin/stackmaps.py' -ex 'set width 80' \\"
echo "      -ex run -ex bt -ex 'stackmap bt' -ex 'stackmap frame 2 -x' \\"
echo "      --args \"\$(.venv/bin/wasmtime-stackmaps wasmtime-path)\" \\"
echo "      run ${FLAGS[*]} $PROG"
gdb -nx -batch -iex 'set debuginfod enabled off' -ex 'source gdb_plugin/stackmaps.py' \
    -ex 'set width 80' -ex run -ex bt -ex 'stackmap bt' -ex 'stackmap frame 2 -x' \
    --args "$WASMTIME" run "${FLAGS[@]}" "$PROG" 2>&1 | grep -v '^\[New Thread\|^\[Thread\|libthread_db'

if command -v lldb-19 >/dev/null; then
    echo
    echo "### 3. the same in LLDB"
    echo "\$ lldb-19 -b -o 'settings set term-width 80' \\"
    echo "      -o 'command script import lldb_plugin/stackmaps.py' \\"
    echo "      -o 'process launch' -k bt -k 'stackmap bt' \\"
    echo "      -- \"\$(.venv/bin/wasmtime-stackmaps wasmtime-path)\" \\"
    echo "      run ${FLAGS[*]} $PROG"
    echo "  (-k: LLDB's batch mode runs these after a stop it calls a crash,"
    echo "  as this trap is)"
    lldb-19 --no-lldbinit -b -o 'settings set use-color false' -o 'settings set term-width 80' \
        -o 'command script import lldb_plugin/stackmaps.py' -o 'process launch' \
        -o bt -o 'stackmap bt' -k bt -k 'stackmap bt' \
        -- "$WASMTIME" run "${FLAGS[@]}" "$PROG" 2>&1 | grep -v '^(lldb) \|^Process [0-9]* launched'
fi
