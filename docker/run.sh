#!/usr/bin/env bash
# Run the engine CLI in its image; with the GPUs when this machine can give them to Docker.
#
#   docker/run.sh [--gpu|--cpu] [--image IMAGE] [--dry-run] [--] COMMAND [ARGS...]
#   docker/run.sh diagnostics
#   docker/run.sh infer --model models/gaps.safetensors --dsm data/dsm.tif --output out/gaps.tif
#
# The current folder is mounted at /work, the container's working folder: give paths relative
# to it (no absolute host paths, no '..' above it). Files are written as your user, without
# network. GPU auto-detection: nvidia-smi lists a GPU and Docker has the NVIDIA runtime or
# toolkit -> --gpus all and the GPU image; else the CPU image. --dry-run prints the command.
# Environment: DOCKER (client, default docker), CANOPYGAPS_IMAGE_CPU (canopygaps:cpu),
# CANOPYGAPS_IMAGE_GPU (canopygaps:gpu), DOCKER_RUN_ARGS (extra `docker run` options).
set -euo pipefail

DOCKER=${DOCKER:-docker}
mode=auto
image=""
dry_run=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --gpu) mode=gpu; shift ;;
    --cpu) mode=cpu; shift ;;
    --image) image=$2; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    -h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --) shift; break ;;
    *) break ;;
  esac
done

gpu_available() {
  command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU' || return 1
  local runtimes
  runtimes=$("$DOCKER" info --format '{{json .Runtimes}}' 2>/dev/null) || return 1
  [[ $runtimes == *nvidia* ]] && return 0
  # The toolkit's hook also serves --gpus without a registered "nvidia" runtime.
  command -v nvidia-container-cli >/dev/null 2>&1 || command -v nvidia-ctk >/dev/null 2>&1
}

if [[ $mode == auto ]]; then
  if gpu_available; then mode=gpu; else mode=cpu; fi
fi
if [[ -z $image ]]; then
  if [[ $mode == gpu ]]; then image=${CANOPYGAPS_IMAGE_GPU:-canopygaps:gpu}
  else image=${CANOPYGAPS_IMAGE_CPU:-canopygaps:cpu}; fi
fi
if [[ $PWD == *:* ]]; then
  echo "docker/run.sh: the current folder contains ':', which 'docker run -v' cannot mount" >&2
  exit 2
fi

args=(run --rm --init --network none --label org.canopygaps.backend=cli
      -u "$(id -u):$(id -g)" -v "$PWD:/work" -w /work)
[[ $mode == gpu ]] && args+=(--gpus all)
if [[ -n ${DOCKER_RUN_ARGS:-} ]]; then
  read -r -a extra <<<"$DOCKER_RUN_ARGS"
  args+=("${extra[@]}")
fi
args+=("$image" "$@")

if [[ $dry_run == 1 ]]; then
  printf '%q ' "$DOCKER" "${args[@]}"
  echo
  exit 0
fi
exec "$DOCKER" "${args[@]}"
