#!/usr/bin/env bash
# Set up everything on a fresh machine (Python 3.11, root for apt) and run the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
# Headless Chromium for the report's browser tests: Debian's package, never a downloaded browser.
if ! command -v chromium >/dev/null; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
fi
python3.11 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[frameworks,runtimes,test]'
.venv/bin/python -m compileall -q conformance  # what pip does for a non-editable install
# The gate: lint (line length 100) and types over the code, before the tests.
LINTED=(conformance tests reference_models scripts examples)
.venv/bin/ruff check "${LINTED[@]}"
.venv/bin/ruff format --check "${LINTED[@]}"
.venv/bin/mypy  # packages and settings: [tool.mypy] in pyproject.toml
.venv/bin/python -m pytest -q
