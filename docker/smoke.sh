#!/usr/bin/env bash
# Smoke test of a built image: non-root user, health check, diagnostics over the JSON-lines
# protocol, and a synthetic scene written through a bind mount as the caller's user.
#
#   docker/smoke.sh [IMAGE]        (default canopygaps:cpu; add --gpus all via DOCKER_RUN_ARGS)
set -euo pipefail

DOCKER=${DOCKER:-docker}
image=${1:-canopygaps:cpu}
read -r -a extra <<<"${DOCKER_RUN_ARGS:-}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

user=$("$DOCKER" image inspect --format '{{.Config.User}}' "$image")
[[ $user != "" && $user != root && $user != 0* ]] || { echo "FAIL: image runs as root" >&2; exit 1; }
"$DOCKER" image inspect --format '{{json .Config.Healthcheck}}' "$image" | grep -q diagnostics \
  || { echo "FAIL: no HEALTHCHECK" >&2; exit 1; }

out=$("$DOCKER" run --rm --init --network none "${extra[@]}" "$image" \
  request --json '{"version": 1, "command": "diagnostics", "params": {}}' --jsonl)
grep -q '"event": "result"' <<<"$out" || { echo "FAIL: diagnostics: $out" >&2; exit 1; }

"$DOCKER" run --rm --init --network none -u "$(id -u):$(id -g)" -v "$work:/out/0" \
  "${extra[@]}" "$image" synth --output /out/0/scene --size 128 --jsonl >/dev/null
[[ -f $work/scene/dsm.tif ]] || { echo "FAIL: synth wrote no DSM" >&2; exit 1; }
[[ $(stat -c %u "$work/scene/dsm.tif") == "$(id -u)" ]] || { echo "FAIL: owner" >&2; exit 1; }
echo "smoke test of $image passed"
