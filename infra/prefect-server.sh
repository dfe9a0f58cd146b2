#!/usr/bin/env bash
# Prefect server (UI + API) on loopback over lmforge's Prefect home, so past flow runs are visible.
#   infra/prefect-server.sh            # UI at http://127.0.0.1:4200
#   export PREFECT_API_URL=http://127.0.0.1:4200/api   # then flows report to it instead of a temporary server
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
state="${LMFORGE_STATE_DIR:-$root/.state}"
export PREFECT_HOME="$state/prefect" PREFECT_SERVER_ANALYTICS_ENABLED=false
mkdir -p "$PREFECT_HOME"
exec "$root/.venv/bin/prefect" server start --host 127.0.0.1 --port "${PORT:-4200}"
