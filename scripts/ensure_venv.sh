#!/usr/bin/env bash
# Create .venv if missing and install each pinned requirements file whose content changed since its last install.
# Usage: scripts/ensure_venv.sh [extra requirements file ...]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "Creating .venv ..."
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
stamp_of() { echo ".venv/.coi-stamp-$(basename "$1")-$(cat "$1" pyproject.toml | sha256sum | cut -c1-16)"; }
for req in requirements.txt "$@"; do
  stamp=$(stamp_of "$req")
  [ -f "$stamp" ] && continue
  echo "Installing $req (the first run takes a few minutes) ..."
  .venv/bin/python -m pip install -q -r "$req"
  .venv/bin/python -m pip install -q --no-deps -e .
  rm -f ".venv/.coi-stamp-$(basename "$req")-"*
  touch "$stamp"
done
