#!/usr/bin/env bash
# The demo on embedded defaults: synthetic GLID and CaFFe in their real layouts, checked.
set -euo pipefail
out=${1:-cryotune-demo}
bin=.venv/bin
for key in glid caffe; do
  rm -rf "$out/data/$key"
  $bin/cryotune data synth "$key" --out "$out/data/$key" --tiles 16 --seed 0
  $bin/cryotune data check "$key" --data-root "$out/data"
done
rm -rf "$out/runs"
$bin/cryotune sweep glid caffe --spec sweeps/smoke.yaml --data-root "$out/data" --workspace "$out/runs"
$bin/cryotune best glid --workspace "$out/runs"
$bin/cryotune best caffe --workspace "$out/runs"
echo
echo "Watch the runs: $bin/cryotune mlflow --workspace $out/runs   (MLflow UI on 127.0.0.1:5000)"
echo "Query them:     $bin/cryotune serve --workspace $out/runs    (API on 127.0.0.1:8000/docs)"
