#!/usr/bin/env bash
# qgis_process with this checkout's Canopy gaps plugin enabled, headless.
#
#   scripts/qgis_process.sh list
#   scripts/qgis_process.sh run canopygaps:classical -- DSM=dsm.tif OUTPUT=gaps.tif
#
# Debian's /usr/bin/qgis_process wrapper passes an option 3.22 does not know, so this calls
# qgis_process.bin directly. QGIS 3.22 takes parameters only as '-- KEY=VALUE'.
# Environment: QGIS_CUSTOM_CONFIG_PATH (default: a temporary profile, removed on exit),
# QGIS_PLUGINPATH (default: this checkout), CANOPYGAPS_PYTHON (engine's Python for the
# subprocess backend; default: .venv/bin/python of this checkout).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}"
export QGIS_PLUGINPATH="${QGIS_PLUGINPATH:-$ROOT}"
if [ -z "${QGIS_CUSTOM_CONFIG_PATH:-}" ]; then
  QGIS_CUSTOM_CONFIG_PATH="$(mktemp -d -t canopygaps-qgis-XXXXXX)"
  export QGIS_CUSTOM_CONFIG_PATH
  trap 'rm -rf "$QGIS_CUSTOM_CONFIG_PATH"' EXIT
fi
if [ -z "${CANOPYGAPS_PYTHON:-}" ] && [ -x "$ROOT/.venv/bin/python" ]; then
  export CANOPYGAPS_PYTHON="$ROOT/.venv/bin/python"
fi
BIN="$(command -v qgis_process.bin || true)"
[ -n "$BIN" ] || BIN="$(command -v qgis_process)"
INI="$QGIS_CUSTOM_CONFIG_PATH/profiles/default/QGIS/QGIS3.ini"
if ! grep -qs '^chm_plugin=true' "$INI"; then
  "$BIN" plugins enable chm_plugin >/dev/null 2>&1 || "$BIN" plugins enable chm_plugin
fi
"$BIN" "$@"
