#!/usr/bin/env bash
# Container entry point: `cd /mount/aitk-nb/$CONTAINER_APP_NAME; bash inference_app/start.sh` (the app's own
# folder on the share, inference_app/contract.py).
# AITK_PYTHON set (the local target): run with that interpreter. Otherwise build, once per
# requirements.txt content, a venv on the share at $AITK_VENV_ROOT/<sha256> (default
# /mount/.venvs); it is built under a temporary name and renamed only when complete, so an
# interrupted install is never reused, and replicas starting together do not share a half venv.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1

if [[ -n "${AITK_PYTHON:-}" ]]; then
  exec "$AITK_PYTHON" -m inference_app
fi

req=inference_app/requirements.txt
root="${AITK_VENV_ROOT:-${AITK_MOUNT_ROOT:-/mount}/.venvs}"
venv="$root/$(sha256sum "$req" | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/python" ]]; then
  tmp="$venv.tmp-$(hostname)-$$"
  echo "start.sh: building $venv from $req (first start with these requirements; later starts reuse it)"
  # answer the startup/liveness probes (/live) while installing, so a long install is not killed;
  # /health stays 503 until the server itself is up
  python3 inference_app/installing.py & placeholder=$!
  trap 'kill "$placeholder" 2>/dev/null || true; rm -rf "$tmp"' EXIT
  mkdir -p "$root" && rm -rf "$tmp"
  python3 -m venv --copies "$tmp"   # --copies: SMB shares may not allow symlinks
  "$tmp/bin/python" -m pip install --no-cache-dir --disable-pip-version-check -r "$req"
  mv -T "$tmp" "$venv" 2>/dev/null || rm -rf "$tmp"  # lost a race: another replica's venv is complete
  kill "$placeholder" 2>/dev/null || true
  wait "$placeholder" 2>/dev/null || true
  trap - EXIT
  echo "start.sh: $venv is ready"
fi
exec "$venv/bin/python" -m inference_app
