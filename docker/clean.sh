#!/usr/bin/env bash
# Remove what the canopygaps images leave behind: stopped or stuck containers started by the
# plugin or docker/run.sh (label org.canopygaps.backend), the canopygaps:* images, and the
# compose project's containers. Nothing else is touched.
set -euo pipefail
cd "$(dirname "$0")/.."

DOCKER=${DOCKER:-docker}
if ! "$DOCKER" info >/dev/null 2>&1; then
  echo "docker/clean.sh: no Docker engine answers; nothing to clean."
  exit 0
fi
mapfile -t containers < <("$DOCKER" ps -aq --filter label=org.canopygaps.backend)
if [[ ${#containers[@]} -gt 0 ]]; then "$DOCKER" rm -f "${containers[@]}"; fi
if "$DOCKER" compose version >/dev/null 2>&1; then
  "$DOCKER" compose -f docker/compose.yaml --profile cpu --profile gpu down --remove-orphans
fi
mapfile -t images < <("$DOCKER" image ls --format '{{.Repository}}:{{.Tag}}' canopygaps)
if [[ ${#images[@]} -gt 0 ]]; then "$DOCKER" image rm "${images[@]}"; fi
