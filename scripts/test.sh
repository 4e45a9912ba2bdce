#!/usr/bin/env bash
# Set up (as scripts/setup.sh --dev) and run every check: lint, format, types, tests
# (including the end-to-end tests on the real local model, marked `model`), then print the
# share of the `charter` package the tests ran (files fully covered left out of the table).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh --dev
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# The coverage data goes with pytest's cache (ignored by git), not into the work tree.
mkdir -p .pytest_cache
export COVERAGE_FILE="${COVERAGE_FILE:-.pytest_cache/coverage}"
.venv/bin/python -m pytest --cov=charter --cov-report=term:skip-covered "$@"
