#!/usr/bin/env bash
# MLflow tracking + registry server (UI and REST) on loopback: `lmforge mlflow-server`, see its --help.
#   infra/mlflow-server.sh                     # SQLite default in .state/, http://127.0.0.1:5000
#   infra/mlflow-server.sh --port 5001 --backend postgresql://lmforge:PW@127.0.0.1:5432/mlflow
#   infra/mlflow-server.sh --auth              # MLflow's basic-auth app (docs/registry.md)
# The older spelling still works: MLFLOW_BACKEND=URI MLFLOW_ARTIFACTS=DIR|URI PORT=N infra/mlflow-server.sh
# Then point lmforge at it: export LMFORGE_MLFLOW_URI=http://127.0.0.1:${PORT:-5000}
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
args=(--port "${PORT:-5000}")
if [ -n "${MLFLOW_BACKEND:-}" ]; then args+=(--backend "$MLFLOW_BACKEND"); fi
if [ -n "${MLFLOW_ARTIFACTS:-}" ]; then args+=(--artifacts "$MLFLOW_ARTIFACTS"); fi
exec "$root/.venv/bin/lmforge" mlflow-server "${args[@]}" "$@"
