#!/usr/bin/env bash
# The bundled models on the test sets written as PNG layouts (spikeport data --format …) against
# the same sets as .npz: every score must be identical. Writes out/layouts/, prints one line per model.
#   npm run build && bash bench/layouts-exact.sh
set -euo pipefail
cd "$(dirname "$0")/.."
S="node dist/src/cli/main.js"
O=out/layouts
mkdir -p $O
run() { # model data-kind layout T-list convert-options…
  local name=$1 ds=$2 layout=$3 T=$4; shift 4
  $S data $ds:test --out $O/$ds-test.npz > /dev/null
  rm -rf $O/$ds-$layout
  $S data $ds:test --format $layout --out $O/$ds-$layout -q > /dev/null
  local spec
  case $layout in
    voc) spec=voc:$O/$ds-$layout:test ;;
    coco) spec=coco:$O/$ds-$layout/images@$O/$ds-$layout/annotations.json ;;
    *) spec=$layout:$O/$ds-$layout ;;
  esac
  $S convert models/$name.onnx --data $ds:train --out $O/$name.snn.onnx -q "$@" > /dev/null
  $S simulate $O/$name.snn.onnx --ann models/$name.onnx --data npz:$O/$ds-test.npz --T "$T" --site-errors 0 --json $O/$name.npz.json -q > /dev/null
  $S simulate $O/$name.snn.onnx --ann models/$name.onnx --data "$spec" --T "$T" --site-errors 0 --json $O/$name.layout.json -q > /dev/null
  node -e "
    const a = require('./$O/$name.npz.json'), b = require('./$O/$name.layout.json');
    const pick = (r) => JSON.stringify({ results: r.results, ann: r.ann, clipped: r.clippedAnn, rates: r.firingRates, energy: r.energy });
    const pct = (v) => (100 * v).toFixed(2);
    console.log('$name on $ds:test as $layout:', pick(a) === pick(b) ? 'identical' : 'DIFFERENT', '|', a.samples, 'samples |',
      a.results.map((r) => 'T=' + r.T + ' ' + pct(r.metric)).join(', '), '| ANN', pct(a.ann.metric), '| clipped ANN', pct(a.clippedAnn.metric));"
}
run mnist-cnn mnist imagefolder 8,16,32,64
run fashion-vgg fashion-mnist imagefolder 8,16,32,64
run mnist-fcn mnist-seg voc 8,32 --iterations 50
run mnist-centernet mnist-det coco 8,32 --iterations 50
run mnist-r3d mnist-video videofolder 8,32 --iterations 50
