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

# exec "$@" in place of the calling script, with SIGINT at its default. A script that a non-interactive shell
# starts in the background (`infra/prefect-worker.sh &` inside another script, a CI job) inherits SIGINT ignored,
# and bash cannot undo that. Prefect's worker stops on SIGTERM by sending itself SIGINT, so with SIGINT ignored
# `kill` would never stop it (the server forwards SIGTERM to its uvicorn child instead; it starts the same way).
exec_with_sigint() {
  exec "$root/.venv/bin/python" -c \
    'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])' "$@"
}
