#!/usr/bin/env bash
# Run every benchmark in turn (each prints its own table; about 2-3 minutes in all).
# Usage: bash benchmarks/run_all.sh [--quick]
#   --quick: smaller inputs (100,000 entries, 2,000 functions, 2,000 frames, 50 modules,
#   16 threads)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="$HERE/../.venv/bin/python"
cd "$HERE"
if [[ "${1:-}" == "--quick" ]]; then
  "$PY" bench_decode.py --entries 100000 --functions 2000
  "$PY" bench_deep.py --depth 2000
  "$PY" bench_images.py --modules 50 --repeat 5
  "$PY" bench_load.py --repeat 3
  "$PY" bench_stores.py --threads 16 --repeat 3
else
  "$PY" bench_decode.py
  "$PY" bench_deep.py
  "$PY" bench_images.py
  "$PY" bench_load.py
  "$PY" bench_stores.py
fi
