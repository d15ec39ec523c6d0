#!/usr/bin/env bash
# Install what is missing, create or migrate the database, load the sample data once, start the app.
set -euo pipefail
cd "$(dirname "$0")"
scripts/ensure_venv.sh
export HF_HUB_DISABLE_TELEMETRY=1
.venv/bin/coi init
echo "CoI Studio on http://127.0.0.1:${COI_PORT:-8501} (database: ${COI_DB:-data/coi.db})"
exec .venv/bin/streamlit run app/main.py \
  --server.address 127.0.0.1 --server.port "${COI_PORT:-8501}" \
  --server.headless true --browser.gatherUsageStats false "$@"
