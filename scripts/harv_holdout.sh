#!/usr/bin/env bash
# Cut the held-out block of HARV (x >= 732207 m, EPSG:32618: its eastern 30 %) from DATA into
# OUT/dsm.tif and OUT/dtm.tif. The same region is the 'test' hold-out of
# resources/configs/default-dataset.yaml, so the default model never trains on it.
# Usage: scripts/harv_holdout.sh DATA_FOLDER OUT_FOLDER
set -euo pipefail
DATA=$1 OUT=$2
mkdir -p "$OUT"
for f in dsm dtm; do
  gdal_translate -q -projwin 732207 4713370 732531 4712472 -co COMPRESS=DEFLATE \
    "$DATA/real/harv/$f.tif" "$OUT/$f.tif"
done
