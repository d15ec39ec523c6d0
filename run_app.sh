#!/usr/bin/env bash
# Install what is missing, create or migrate the database, load the sample data once, start the app.
# Usage: ./run_app.sh [--host H] [--port N] [other streamlit options ...]
#   --host (or $COI_HOST) defaults to 127.0.0.1. Any non-loopback host needs $COI_PASSWORD or $COI_TOKEN
#   (or password / token / [passwords] in .streamlit/secrets.toml); without one the script refuses to start.
#   --port (or $COI_PORT) defaults to 8501. $COI_DB picks the database (default data/coi.db).
set -euo pipefail
cd "$(dirname "$0")"
HOST=${COI_HOST:-127.0.0.1}
PORT=${COI_PORT:-8501}
PASS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --host) [ $# -ge 2 ] || { echo "error: --host needs a value" >&2; exit 2; }; HOST=$2; shift 2 ;;
    --host=*) HOST=${1#--host=}; shift ;;
    --port) [ $# -ge 2 ] || { echo "error: --port needs a value" >&2; exit 2; }; PORT=$2; shift 2 ;;
    --port=*) PORT=${1#--port=}; shift ;;
    --server.address* | --server.port*)
      echo "error: use --host / --port instead of $1 (the host is checked before the app starts)" >&2
      exit 2 ;;
    *) PASS+=("$1"); shift ;;
  esac
done
case "$PORT" in
  '' | *[!0-9]*) echo "error: --port must be a number, not '$PORT'" >&2; exit 2 ;;
esac
scripts/ensure_venv.sh
# Refuse a non-loopback host without a password or token before anything is created or served.
.venv/bin/python -m store.access check --host "$HOST"
export HF_HUB_DISABLE_TELEMETRY=1
.venv/bin/coi init
echo "CoI Studio on http://${HOST}:${PORT} (database: ${COI_DB:-data/coi.db})"
exec .venv/bin/streamlit run app/main.py \
  --server.address "$HOST" --server.port "$PORT" \
  --server.headless true --browser.gatherUsageStats false ${PASS[@]+"${PASS[@]}"}
