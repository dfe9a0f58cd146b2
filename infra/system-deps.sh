#!/usr/bin/env bash
# Debian packages the registry's integration tests use: PostgreSQL (a throwaway cluster behind a real
# `mlflow server`), Chromium with its WebDriver (a headless browser opens the MLflow UI) and Redis (the
# gateway replicas' shared rate limits).
#   infra/system-deps.sh      # `make test` runs it first; idempotent, quiet, installs only what is missing
# Without root (or password-less sudo) or apt it prints one line and exits 0: the tests that need a missing
# package then skip and name it.
set -euo pipefail
packages=(postgresql chromium chromium-driver redis-server)

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null | grep -qx installed || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  echo "system-deps: ${missing[*]} missing; run as root: apt-get install ${missing[*]}" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "system-deps: ${missing[*]} missing and no apt-get here; install them with the system's package manager" >&2
  exit 0
fi

echo "system-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
log="$(mktemp)"
# Recommends are left out: chromium-sandbox is useless as root, and the rest is desktop integration.
if ! { "${as_root[@]}" apt-get update -qq && "${as_root[@]}" apt-get install -y -qq --no-install-recommends \
       "${missing[@]}"; } >"$log" 2>&1; then
  tail -n 5 "$log" >&2
  echo "system-deps: apt-get could not install ${missing[*]}; the tests that need them will skip" >&2
fi
rm -f "$log"
