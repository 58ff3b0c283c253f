#!/usr/bin/env bash
# Build the engine images from the repository root (BuildKit).
#
#   docker/build.sh [cpu|gpu|all] [extra `docker build` options...]
#   docker/build.sh cpu                                   -> canopygaps:cpu, canopygaps:<version>-cpu
#   docker/build.sh gpu --build-arg TORCH_VERSION=...     -> canopygaps:gpu, canopygaps:<version>-gpu
#
# Environment: DOCKER (client, default docker).
set -euo pipefail
cd "$(dirname "$0")/.."

DOCKER=${DOCKER:-docker}
flavour=${1:-cpu}
[[ $# -gt 0 ]] && shift
version=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n 1)

if ! "$DOCKER" info >/dev/null 2>&1; then
  echo "docker/build.sh: no Docker engine answers ('$DOCKER info' fails): start Docker first." >&2
  exit 1
fi

build() {
  local tag=$1 dockerfile=$2
  shift 2
  echo ">> building canopygaps:$tag from docker/$dockerfile"
  DOCKER_BUILDKIT=1 "$DOCKER" build -f "docker/$dockerfile" \
    -t "canopygaps:$tag" -t "canopygaps:$version-$tag" "$@" .
}

case "$flavour" in
  cpu) build cpu Dockerfile.cpu "$@" ;;
  gpu) build gpu Dockerfile "$@" ;;
  all) build cpu Dockerfile.cpu "$@" && build gpu Dockerfile "$@" ;;
  *) echo "usage: docker/build.sh [cpu|gpu|all] [docker build options]" >&2; exit 2 ;;
esac
