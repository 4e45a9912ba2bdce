#!/usr/bin/env bash
# Run every benchmark, one at a time (model-heavy runs contend for the 2 cores otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python bench/core/bench_overhead.py
.venv/bin/python bench/guards/bench_guards.py
