#!/bin/sh
# torchvision's RetinaNet and FCOS (ResNet-50-FPN, random seeded weights) end to end: export,
# the ANN's own detections as ground truth, convert, simulate at T = 32..256, and the table
# (bench/detector-table.ts). docs/detectors.md gives the result measured with it.
# Usage: bench/detectors.sh [TEST_IMAGES] [OUT]   (default 4 test images, out/detectors)
# Heavy: a ResNet-50-FPN at 256×256 per time step; simulating 256 steps took about 150 s of CPU
# per model and test image here.
set -eu
cd "$(dirname "$0")/.."
N=${1:-4}
OUT=${2:-out/detectors}
CLI="node dist/src/cli/main.js"
mkdir -p "$OUT"
# Generated images in COCO's format: 64 for calibration, 16 to test.
[ -d "$OUT/det-train" ] || $CLI data mnist-det:train --format coco --out "$OUT/det-train" --limit 64
[ -d "$OUT/det-test" ] || $CLI data mnist-det:test --format coco --out "$OUT/det-test" --limit 16
[ -f "$OUT/fcos.onnx" ] || /usr/bin/python3 tools/export_detectors.py "$OUT" --images "$OUT/det-train/images"
for m in retinanet fcos; do
  node dist/bench/detector-truth.js "$OUT/$m.onnx" "$OUT/det-test/images" "$OUT/det-test/annotations.json" \
    --preprocess resize:256,256 --score 0.5 --out "$OUT/$m-truth.json"
  norm=""
  [ "$m" = fcos ] && norm="--norm-samples 16"
  # shellcheck disable=SC2086
  $CLI convert "$OUT/$m.onnx" --data "coco:$OUT/det-train/images@$OUT/det-train/annotations.json" \
    --preprocess resize:256,256 --iterations 16 --batch 4 $norm --out "$OUT/$m.snn.onnx" -q
  $CLI simulate "$OUT/$m.snn.onnx" --data "coco:$OUT/det-test/images@$OUT/$m-truth.json" --limit "$N" --batch 4 \
    --T 32,64,128,256 --site-errors 0 --pictures 0 --json "$OUT/$m.json" --markdown "$OUT/$m.md" -q
done
node dist/bench/detector-table.js "$OUT/retinanet.json" "$OUT/fcos.json"
