#!/usr/bin/env bash
# Rebuild the shipped default model from ../shared/data (issue 12): cut the held-out HARV block,
# run the recipe (tune the adaptive classical method on the training pixels, preprocess with
# feature channels and terrain copies, train, evaluate on the block), publish the model as
# float16, evaluate the published file (model, classical, ref21) and write the model card with
# the cross-validation table when `make crossval` has run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${CANOPYGAPS_SHARED_DATA:-../shared/data}
OUT=build/default-recipe
if [ ! -f "$DATA/real/harv/dsm.tif" ]; then
  echo "train-default needs the real data in $DATA (see README: Default model)." >&2
  exit 1
fi
bash scripts/harv_holdout.sh "$DATA" build/harv-holdout
$PY -m engine recipe --config resources/configs/default-recipe.yaml
$PY scripts/model_card.py publish "$OUT" resources/models
rm -rf "$OUT/published-report"
$PY -m engine evaluate --config resources/configs/evaluate-default.yaml \
  --set "adaptive=$($PY -c 'import json,yaml,sys; print(json.dumps(yaml.safe_load(open(sys.argv[1]))["adaptive"]))' "$OUT/classical.yaml")"
$PY scripts/model_card.py card resources/models/default.safetensors \
  "$OUT/published-report/metrics.json" "$OUT" build/crossval/crossval.json
