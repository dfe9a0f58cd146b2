# Sourced by the prefect-*.sh scripts: lmforge's Prefect home and the API they talk to, and the work pool
# (created when missing). Not meant to be run.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state="${LMFORGE_STATE_DIR:-$root/.state}"
export PREFECT_HOME="$state/prefect" PREFECT_SERVER_ANALYTICS_ENABLED=false
mkdir -p "$PREFECT_HOME"
export PREFECT_API_URL="${PREFECT_API_URL:-http://127.0.0.1:${PORT:-4200}/api}"
export LMFORGE_ROOT="$root"
prefect="$root/.venv/bin/prefect"
pool="${LMFORGE_WORK_POOL:-lmforge-local}"

ensure_work_pool() {
  "$prefect" work-pool inspect "$pool" >/dev/null 2>&1 || "$prefect" work-pool create "$pool" --type process
}
