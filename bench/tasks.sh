#!/bin/sh
# Segmentation, detection and video: CLTB + delayed evaluation against the ANN at T = 16..256 on
# the generated test splits, one report per bundled task model, written to docs/generated/tasks/.
# Usage: bench/tasks.sh [TEST_SAMPLES]   (default 100; 300 calibration iterations: dense outputs
# need thresholds closer to the maximum than classification does)
set -eu
cd "$(dirname "$0")/.."
N=${1:-100}
OUT=docs/generated/tasks
mkdir -p "$OUT"
for pair in mnist-fcn:mnist-seg mnist-deeplab:mnist-seg mnist-centernet:mnist-det mnist-r3d:mnist-video; do
  model=${pair%%:*}
  data=${pair#*:}
  node dist/src/cli/main.js simulate "models/$model.onnx" --data "$data:test" --limit "$N" --T 16,32,64,128,256 --iterations 300 \
    --json "$OUT/$model.json" --report "$OUT/$model.html" --markdown "$OUT/$model.md"
  echo "wrote $OUT/$model.*"
done
