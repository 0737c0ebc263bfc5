#!/usr/bin/env bash
# Example 2: break in a host function called from wasm, and see the roots below it.
# Usage: bash examples/02-python-embedder/run.sh [gdb|lldb]
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
case "${1:-gdb}" in
gdb)
    gdb -nx -batch -iex 'set debuginfod enabled off' -iex 'set auto-load safe-path /nonexistent' \
        -ex 'set width 80' \
        -ex 'source gdb_plugin/stackmaps.py' -ex run -ex 'stackmap images' -ex 'stackmap bt --full' \
        --args "$PY" examples/02-python-embedder/embedder.py 2>&1 | grep -E '^(#|Thread|host|  |      |\s+base|\s+0x)' ;;
lldb)
    # -o runs after an ordinary stop, -k after a stop LLDB calls a crash: one list runs.
    lldb-19 --no-lldbinit -b -o 'settings set use-color false' -o 'settings set term-width 80' \
        -o 'command script import lldb_plugin/stackmaps.py' \
        -o 'process handle SIGTRAP -s true -p false -n true' -o 'process launch' \
        -o 'stackmap images' -o 'stackmap bt --full' \
        -k 'stackmap images' -k 'stackmap bt --full' \
        -- "$PY" examples/02-python-embedder/embedder.py 2>&1 | grep -vE '^( {4}frame #[0-9]+: |-> |\s+0x[0-9a-f]+(: | <))' | grep -E '^(#|Thread|host|  |      |\s+base|\s+0x)' ;;
*) echo "usage: $0 [gdb|lldb]" >&2; exit 2 ;;
esac
