#!/usr/bin/env bash
# Rebuild the shipped default model from ../shared/data (issue 8): preprocess the real sites,
# train, publish the model (float16 weights) in resources/models/, evaluate that file on the
# held-out HARV block against the classical baseline, and write the model card.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${CANOPYGAPS_SHARED_DATA:-../shared/data}
if [ ! -f "$DATA/real/harv/dsm.tif" ]; then
  echo "train-default needs the real data in $DATA (see README: Default model)." >&2
  exit 1
fi
bash scripts/harv_holdout.sh "$DATA" build/harv-holdout
$PY -m engine preprocess --config resources/configs/default-dataset.yaml
$PY -m engine train --config resources/configs/train-default.yaml
$PY scripts/model_card.py publish build/default-model/default.safetensors resources/models
$PY -m engine evaluate --config resources/configs/evaluate-default.yaml
$PY scripts/model_card.py card resources/models/default.safetensors \
  build/default-model/holdout-report/metrics.json
