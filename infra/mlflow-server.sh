#!/usr/bin/env bash
# MLflow tracking + registry server on loopback, over the same store the pipeline writes.
#   infra/mlflow-server.sh                       # SQLite default in .state/
#   MLFLOW_BACKEND=postgresql://u:p@127.0.0.1/mlflow MLFLOW_ARTIFACTS=s3://bucket/mlflow infra/mlflow-server.sh
# Then point lmforge at it: export LMFORGE_MLFLOW_URI=http://127.0.0.1:${PORT:-5000}
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
state="${LMFORGE_STATE_DIR:-$root/.state}"
mkdir -p "$state/mlartifacts"
export MLFLOW_DISABLE_TELEMETRY=true XDG_CONFIG_HOME="$state/xdg"
exec "$root/.venv/bin/mlflow" server \
  --backend-store-uri "${MLFLOW_BACKEND:-sqlite:///$state/mlflow.db}" \
  --default-artifact-root "${MLFLOW_ARTIFACTS:-$state/mlartifacts}" \
  --host 127.0.0.1 --port "${PORT:-5000}" --workers 1
