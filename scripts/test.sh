#!/usr/bin/env bash
# Set up (as scripts/setup.sh --dev) and run every check: lint, format, types, tests
# (including the end-to-end tests on the real local model, marked `model`).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh --dev
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
