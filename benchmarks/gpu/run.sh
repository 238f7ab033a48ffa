#!/usr/bin/env bash
# The GPU check in one command (see docs/how-to/gpu.md): correctness on CUDA, then speed.
# Finishes by itself within --time-budget (default 440 s); the outer timeout (default
# 470 s, GPU_CHECK_TIMEOUT) interrupts it cleanly (SIGINT: the rows done are written).
# Extra arguments go to benchmarks/gpu/run.py (e.g. --smoke, --out DIR, --time-budget S).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec timeout --signal=INT --kill-after=30 "${GPU_CHECK_TIMEOUT:-470}" \
    python benchmarks/gpu/run.py "$@"
