#!/usr/bin/env bash
# Create .venv if missing and (re)install the pinned requirements when they changed.
# Usage: scripts/ensure_venv.sh [extra requirements file ...]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "Creating .venv ..."
  "$PY" -m venv .venv
fi
files=(requirements.txt "$@")
stamp=".venv/.coi-installed-$(cat "${files[@]}" pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "Installing ${files[*]} (first run takes a few minutes) ..."
  .venv/bin/python -m pip install -q --upgrade pip
  args=()
  for f in "${files[@]}"; do args+=(-r "$f"); done
  .venv/bin/python -m pip install -q "${args[@]}"
  .venv/bin/python -m pip install -q --no-deps -e .
  rm -f .venv/.coi-installed-*
  touch "$stamp"
fi
