#!/usr/bin/env bash
# The method comparison on the bundled Fashion-MNIST VGG: one simulation per threshold set on
# the full test set, JSON into docs/generated/results/, then a Markdown table (bench/method-table.ts).
#   bash bench/method-table.sh [LIMIT]
set -euo pipefail
cd "$(dirname "$0")/.."
limit=${1:-10000}
out=docs/generated/results
mkdir -p "$out"
for method in cltb ltb robustnorm maxnorm; do
  node dist/src/cli/main.js simulate models/fashion-vgg.onnx --data fashion-mnist:test --limit "$limit" \
    --T 8,16,32,64,128,256 --method "$method" --iterations 100 --batch 100 -q \
    --json "$out/fashion-vgg-$method.json" > /dev/null
  echo "done $method" >&2
done
node dist/bench/method-table.js "$out"/fashion-vgg-{cltb,ltb,robustnorm,maxnorm}.json
