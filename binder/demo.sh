#!/usr/bin/env bash
# `make demo`: JupyterLab on workspace/ (copies of the example notebooks), answered by the
# offline emulator when neither MISTRAL_API_KEY nor MISTRAL_SERVER_URL is set.
#
# The emulator lives exactly as long as JupyterLab: it runs in a session of its own, so the
# Ctrl+C that makes Jupyter ask "Shut down this Jupyter server (y/[n])?" does not reach it,
# and the EXIT trap stops it when JupyterLab is gone, however that happens.
set -euo pipefail

BIN=${BIN:-.venv/bin}
EMULATOR_HOST=${EMULATOR_HOST:-127.0.0.1}
EMULATOR_PORT=${EMULATOR_PORT:-8765}
LAB_PORT=${LAB_PORT:-8888}
WORKSPACE=${WORKSPACE:-workspace}

emulator=""
cleanup() {
  if [ -n "$emulator" ]; then
    kill "$emulator" 2>/dev/null || true
    wait "$emulator" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

listening() { (exec 3<>"/dev/tcp/$EMULATOR_HOST/$EMULATOR_PORT") 2>/dev/null; }

# The examples are copied once: running them there leaves the tracked notebooks untouched,
# and scratch notebooks there are not collected by `make test` (workspace/ is ignored).
mkdir -p "$WORKSPACE"
for notebook in notebooks/*.ipynb; do
  [ -e "$WORKSPACE/$(basename "$notebook")" ] || cp "$notebook" "$WORKSPACE/"
done
# No "get notified about Jupyter news?" pop-up, no update check.
settings="$WORKSPACE/.lab-settings/@jupyterlab/apputils-extension"
mkdir -p "$settings"
[ -e "$settings/notification.jupyterlab-settings" ] ||
  echo '{"fetchNews": "false", "checkForUpdates": false}' >"$settings/notification.jupyterlab-settings"
export JUPYTERLAB_SETTINGS_DIR="$(cd "$WORKSPACE" && pwd)/.lab-settings"

if [ -z "${MISTRAL_API_KEY:-}" ] && [ -z "${MISTRAL_SERVER_URL:-}" ]; then
  url="http://$EMULATOR_HOST:$EMULATOR_PORT"
  if listening; then
    echo "== port $EMULATOR_PORT is taken: assuming an emulator already runs at $url"
  else
    setsid "$BIN/python" -m nb_mistral.emulator --host "$EMULATOR_HOST" --port "$EMULATOR_PORT" \
      --tokens-per-second 40 &
    emulator=$!
    for _ in $(seq 150); do listening && break; sleep 0.2; done
    listening || { echo "the emulator did not start" >&2; exit 1; }
  fi
  export MISTRAL_SERVER_URL="$url"
  echo "== no MISTRAL_API_KEY: replies come from the offline emulator at $url"
else
  echo "== replies come from ${MISTRAL_SERVER_URL:-https://api.mistral.ai}"
fi
echo "== JupyterLab on $WORKSPACE/: open the http://127.0.0.1:$LAB_PORT/lab?token=... URL below"
echo "   (Ctrl+C, then y, stops it; the emulator stops with it)"
root=""
[ "$(id -u)" != 0 ] || root="--allow-root"
"$BIN/jupyter" lab --no-browser $root --ServerApp.ip=127.0.0.1 --ServerApp.port="$LAB_PORT" \
  --ServerApp.port_retries=0 --ServerApp.root_dir="$WORKSPACE" --LabApp.news_url=None \
  --LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate \
  ${LAB_ARGS:-}
