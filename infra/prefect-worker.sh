#!/usr/bin/env bash
# A Prefect worker on this machine: it runs the flow runs of the process work pool `lmforge-local` (created if
# missing) as subprocesses of this checkout's venv, against the server of infra/prefect-server.sh.
#   infra/prefect-server.sh &           # UI + API on http://127.0.0.1:4200
#   make deploy                         # register prefect.yaml's deployments and schedules
#   infra/prefect-worker.sh             # runs them when due (or `prefect deployment run lmforge-pipeline/pipeline`)
set -euo pipefail
source "$(dirname "$0")/prefect-env.sh"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
ensure_work_pool
exec_with_sigint "$prefect" worker start --pool "$pool" ${WORKER_NAME:+--name "$WORKER_NAME"}
