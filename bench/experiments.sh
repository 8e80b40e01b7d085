#!/bin/sh
# The paper's four experiments on the bundled Fashion-MNIST model (and the energy table for
# every bundled model), written to docs/generated/experiments/ as JSON, HTML and Markdown.
# Usage: bench/experiments.sh [TEST_SAMPLES]   (default 2000; needs dataset-fashion-mnist)
set -eu
cd "$(dirname "$0")/.."
N=${1:-2000}
OUT=docs/generated/experiments
mkdir -p "$OUT"
sp() { node dist/src/cli/main.js "$@"; }
run() { name=$1; shift; sp experiment "$@" --json "$OUT/$name.json" --report "$OUT/$name.html" --markdown "$OUT/$name.md" > /dev/null; echo "wrote $OUT/$name.*"; }
run fashion-vgg-ablation ablation models/fashion-vgg.onnx --data fashion-mnist:test --limit "$N"
run fashion-vgg-iterations iterations models/fashion-vgg.onnx --data fashion-mnist:test --limit "$N"
run fashion-vgg-delay delay models/fashion-vgg.onnx --data fashion-mnist:test --limit "$N"
run energy-fashion energy models/fashion-vgg.onnx models/fashion-resnet.onnx models/fashion-mobilenet.onnx --data fashion-mnist:test --limit "$N" --T 1,2,3,4,6,8,12,16,24,32,64
run energy-mnist energy models/mnist-cnn.onnx --data mnist:test --limit "$N" --T 1,2,3,4,6,8,12,16,24,32,64
