#!/usr/bin/env bash
# Multi-node pretraining with torchrun (no SLURM): run this on every node with the same MASTER_ADDR.
#   MASTER_ADDR=10.0.0.1 NODE_RANK=0 infra/torchrun/pretrain.sh     # node 0
#   MASTER_ADDR=10.0.0.1 NODE_RANK=1 infra/torchrun/pretrain.sh     # node 1
# NNODES x NPROC_PER_NODE must equal the profile's pretrain.train.num_nodes x devices (gpu-cluster: 2 x 8);
# Lightning picks up torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK) and does not launch processes itself.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
export LMFORGE_MLFLOW_URI="${LMFORGE_MLFLOW_URI:?the team MLflow server, e.g. http://mlflow.internal:5000}"
exec .venv/bin/torchrun \
  --nnodes "${NNODES:-2}" --nproc-per-node "${NPROC_PER_NODE:-8}" --node-rank "${NODE_RANK:?0..NNODES-1}" \
  --rdzv-backend c10d --rdzv-endpoint "${MASTER_ADDR:?address of node 0}:${MASTER_PORT:-29500}" \
  --rdzv-id "lmforge-${PROFILE:-gpu-cluster}" \
  -m lmforge.cli "${STAGE:-pretrain}" --profile "${PROFILE:-gpu-cluster}"
