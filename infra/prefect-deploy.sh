#!/usr/bin/env bash
# Register prefect.yaml's deployments (with their schedules and parameters) on the Prefect server at
# PREFECT_API_URL (default: infra/prefect-server.sh's http://127.0.0.1:4200/api). Starts no run.
set -euo pipefail
source "$(dirname "$0")/prefect-env.sh"
ensure_work_pool
cd "$root"
exec "$prefect" --no-prompt deploy --all
