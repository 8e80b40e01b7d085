#!/bin/sh
# The segmentation and video rows of docs/table3.md on small generated data in the real formats:
# export (random weights), convert and simulate with the paper's settings, on a few images and
# videos. Usage: bench/table3-media.sh WORKDIR [T_LIST] [LIMIT]   (default T 4,8 and the first 2
# test images / 10 clips: one step of a ResNet-50 segmenter at 400 × 400 is about 90 GFLOP per
# image; the paper's T = 32,64,128,256 on the real data sets is what docs/table3.md writes)
set -eu
cd "$(dirname "$0")/.."
W=${1:?WORKDIR}
T=${2:-4,8}
N=${3:-2}
SP="node dist/src/cli/main.js"
mkdir -p "$W/models" "$W/runs"
[ -d "$W/data" ] || /usr/bin/python3 tools/table3_data.py "$W/data"
[ -f "$W/models/mc3_18-kinetics.onnx" ] || /usr/bin/python3 tools/export_table3.py "$W/models" 2>/dev/null
D=$W/data
COCO_TRAIN="coco:$D/coco/train2017@$D/coco/annotations/instances_train2017.json"
COCO_VAL="coco:$D/coco/val2017@$D/coco/annotations/instances_val2017.json"
VOC=$D/voc/VOC2012

for net in fcn_resnet50 deeplabv3_resnet50; do
  $SP convert "$W/models/$net-coco400.onnx" --data "$COCO_TRAIN" --categories voc --min-area 1000 --preprocess resize:400,400 \
    --iterations 3 --batch 2 --out "$W/models/$net-coco400.snn.onnx" -q
  $SP simulate "$W/models/$net-coco400.snn.onnx" --data "$COCO_VAL" --task segmentation --categories voc \
    --delay half --T "$T" --limit "$N" --batch 2 --site-errors 0 --json "$W/runs/$net-coco400.json" -q
  $SP convert "$W/models/$net-voc256.onnx" --data "voc:$VOC:train_aug" --preprocess resize:256,256 \
    --iterations 3 --batch 2 --out "$W/models/$net-voc256.snn.onnx" -q
  $SP simulate "$W/models/$net-voc256.snn.onnx" --data "voc:$VOC:val" \
    --delay half --T "$T" --limit "$N" --batch 2 --site-errors 0 --json "$W/runs/$net-voc256.json" -q
done
$SP convert "$W/models/mc3_18-kinetics.onnx" --data "videofiles:$D/kinetics/train" --preprocess kinetics \
  --iterations 3 --batch 4 --out "$W/models/mc3_18-kinetics.snn.onnx" -q
$SP simulate "$W/models/mc3_18-kinetics.snn.onnx" --data "videofiles:$D/kinetics/val" --clips-per-video 5 \
  --T "$T" --limit $((5 * N)) --batch 5 --site-errors 0 --json "$W/runs/mc3_18-kinetics.json" -q
