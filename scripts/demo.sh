#!/usr/bin/env bash
# The demo on embedded defaults: synthetic GLID and CaFFe in their real layouts, checked.
set -euo pipefail
out=${1:-cryotune-demo}
bin=.venv/bin
for key in glid caffe; do
  rm -rf "$out/data/$key"
  $bin/cryotune data synth "$key" --out "$out/data/$key" --tiles 16 --seed 0
  $bin/cryotune data check "$key" --root "$out/data/$key"
done
