#!/usr/bin/env bash
# make demo: the whole job end to end through qgis_process (the Processing algorithms of the
# plugin), on the real HARV held-out block when ../shared/data is present, else on a seeded
# synthetic scene. Writes everything under demo-output/ and prints the per-threshold table.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${DEMO_OUT:-demo-output}
PY=${PY:-.venv/bin/python}
MODEL=${DEMO_MODEL:-resources/models/default.safetensors}
DATA=${CANOPYGAPS_SHARED_DATA:-../shared/data}
QP=scripts/qgis_process.sh
export QGIS_CUSTOM_CONFIG_PATH
QGIS_CUSTOM_CONFIG_PATH="$(mktemp -d -t canopygaps-demo-XXXXXX)"
trap 'rm -rf "$QGIS_CUSTOM_CONFIG_PATH"' EXIT

step() { printf '\n== %s\n' "$*"; }
run_alg() {  # run_alg NAME KEY=VALUE...: one Processing algorithm, quiet unless it fails
  local log="$OUT/logs/$1.log"
  if ! "$QP" run "canopygaps:$1" -- "${@:2}" >"$log" 2>&1; then
    cat "$log" >&2
    echo "demo: canopygaps:$1 failed (log: $log)" >&2
    exit 1
  fi
}

[ -f "$MODEL" ] || { echo "demo: model file $MODEL is missing (see README: Default model)" >&2; exit 1; }
rm -rf "$OUT" && mkdir -p "$OUT/scene" "$OUT/logs"

if [ -f "$DATA/real/harv/dsm.tif" ]; then
  step "Scene: NEON Harvard Forest, held-out eastern block (real lidar DSM + DTM, 324 x 898 m)"
  bash scripts/harv_holdout.sh "$DATA" "$OUT/scene"
  SCENE="HARV held-out block"
else
  step "Scene: seeded synthetic forest (no ../shared/data here), 512 x 512 m"
  run_alg synth SIZE=512 SEED=42 OUTPUT="$OUT/scene"
  SCENE="synthetic scene (seed 42)"
fi

step "1/4 preprocess: gap labels at 2, 5, 10, 15, 20 m and training tiles from DSM + DTM"
run_alg preprocess DSM="$OUT/scene/dsm.tif" REFERENCE="$OUT/scene/dtm.tif" REFERENCE_KIND=dtm \
  TILE_SIZE=128 SITE_NAME=demo OUTPUT="$OUT/dataset"

step "2/4 infer: default model ($MODEL) -> gap masks + polygons"
run_alg infer DSM="$OUT/scene/dsm.tif" MODEL="$MODEL" MIN_GAP_AREA=0 \
  OUTPUT="$OUT/gaps.tif" POLYGONS="$OUT/gaps.gpkg"

step "3/4 classical: the adaptive classical method (no model)"
run_alg classical DSM="$OUT/scene/dsm.tif" OUTPUT="$OUT/classical.tif"

step "4/4 evaluate: model, classical method and ref21 against labels from DSM - DTM"
run_alg evaluate PREDICTION="$OUT/gaps.tif" DSM="$OUT/scene/dsm.tif" \
  REFERENCE="$OUT/scene/dtm.tif" REFERENCE_KIND=dtm CLASSICAL=1 SITE_NAME=demo OUTPUT="$OUT/report"

"$PY" - "$OUT" "$SCENE" <<'PYEOF'
import json, sys
out, scene = sys.argv[1], sys.argv[2]
m = json.load(open(f"{out}/report/metrics.json"))
methods = m["aggregate"]["methods"]
baselines = ("classical", "ref21")
names = sorted(methods, key=lambda n: (n in baselines, n))
label = {n: n if n in baselines else "model" for n in names}
print(f"\nGap IoU / F1 per threshold on the {scene} (pixel counts summed over the scene):\n")
print(f"{'threshold':>10} " + " ".join(f"{label[n] + ' IoU':>15} {'F1':>6}" for n in names))
for i, t in enumerate(m["thresholds"]):
    cells = []
    for n in names:
        p = methods[n]["thresholds"][i]["pixel"]
        cells.append(f"{p['iou']:>15.3f} {p['f1']:>6.3f}")
    print(f"{t:>9g}m " + " ".join(cells))
print(f"""
Written:
  gap masks (one band per threshold)  {out}/gaps.tif
  gap polygons (GeoPackage)           {out}/gaps.gpkg
  classical masks                     {out}/classical.tif
  training dataset (preprocess)       {out}/dataset/manifest.json
  evaluation report                   {out}/report/report.md  (+ report.html, metrics.json, metrics.csv, figures/)""")
PYEOF
