#!/usr/bin/env bash
# Prefect server (UI + API) on loopback over lmforge's Prefect home, so past flow runs are visible.
#   infra/prefect-server.sh            # UI at http://127.0.0.1:4200
#   export PREFECT_API_URL=http://127.0.0.1:4200/api   # then flows report to it instead of a temporary server
set -euo pipefail
source "$(dirname "$0")/prefect-env.sh"  # its Prefect home; the API URL it exports is this server's own
exec_with_sigint "$prefect" server start --host 127.0.0.1 --port "${PORT:-4200}"
