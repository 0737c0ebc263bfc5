#!/usr/bin/env bash
# Example 1: a GC program traps deep in a recursion under the `wasmtime` CLI;
# GDB stops at the trap and `stackmap bt` shows the live GC roots of every frame.
# Usage: bash examples/01-cli-trap/run.sh [gdb|lldb]
set -euo pipefail
cd "$(dirname "$0")/../.."
# The CLI binary itself: .venv/bin/wasmtime is a Python wrapper a debugger cannot run.
WASMTIME=$(.venv/bin/wasmtime-stackmaps wasmtime-path)
PROG=examples/01-cli-trap/gc_list.wat
case "${1:-gdb}" in
gdb)
    gdb -nx -batch -iex 'set debuginfod enabled off' -ex 'set width 80' \
        -ex 'source gdb_plugin/stackmaps.py' -ex run -ex 'stackmap bt' -ex 'stackmap frame 1' \
        --args "$WASMTIME" run -W gc=y "$PROG" 2>&1 | grep -E '^(#|Thread|frame|  |      )' ;;
lldb)
    # -o runs after an ordinary stop, -k after a stop LLDB calls a crash: one list runs.
    lldb-19 --no-lldbinit -b -o 'settings set use-color false' -o 'settings set term-width 80' \
        -o 'command script import lldb_plugin/stackmaps.py' -o 'process launch' \
        -o 'stackmap bt' -o 'stackmap frame 1' \
        -k 'stackmap bt' -k 'stackmap frame 1' \
        -- "$WASMTIME" run -W gc=y "$PROG" 2>&1 | grep -vE '^( {4}frame #[0-9]+: |-> |\s+0x[0-9a-f]+(: | <))' | grep -E '^(#|Thread|frame|  |      )' ;;
*) echo "usage: $0 [gdb|lldb]" >&2; exit 2 ;;
esac
