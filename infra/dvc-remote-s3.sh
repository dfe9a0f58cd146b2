#!/usr/bin/env bash
# Point DVC at an S3-compatible remote (AWS S3, MinIO from infra/k8s/mlflow.yaml, ...) and make it the default.
# The shipped .dvc/config keeps the local remote `local` (.dvcstore); this adds `s3` beside it.
#   DVC_S3_URL=s3://dvc/lmforge DVC_S3_ENDPOINT=http://minio.internal:9000 infra/dvc-remote-s3.sh
#   dvc push                      # needs `pip install "dvc[s3]"`; credentials from AWS_* variables or --local
set -euo pipefail
dvc="${DVC:-dvc}"
url="${DVC_S3_URL:?s3://bucket/prefix}"
"$dvc" remote add --force --default s3 "$url"
if [[ -n "${DVC_S3_ENDPOINT:-}" ]]; then
  "$dvc" remote modify s3 endpointurl "$DVC_S3_ENDPOINT"
fi
"$dvc" remote modify s3 region "${DVC_S3_REGION:-us-east-1}"
# Secrets stay out of git: .dvc/config.local is ignored.
if [[ -n "${AWS_ACCESS_KEY_ID:-}" ]]; then
  "$dvc" remote modify --local s3 access_key_id "$AWS_ACCESS_KEY_ID"
  "$dvc" remote modify --local s3 secret_access_key "${AWS_SECRET_ACCESS_KEY:?}"
fi
"$dvc" remote list
