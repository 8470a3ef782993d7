#!/usr/bin/env bash
# The GPU benchmark, for a lent machine with torch + CUDA: a ViT-B + UPerNet trial at 224 px in
# bf16 (step time, images/s, peak memory) and cryotune's trainer against a bare PyTorch loop.
# Run from anywhere: `bash bench/gpu.sh [FLAGS]` (FLAGS go to `python -m bench gpu_trainer`, e.g.
# --batch-size 32, or `--device cpu --quick` for a smoke check without a GPU). Writes
# bench/results/gpu_trainer.json with the card's name and updates docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then
  PYTHON=${PYTHON:-.venv/bin/python}
else
  PYTHON=${PYTHON:-python3}
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ! "$PYTHON" -c "import torch, cryotune.train.trainer, cryotune.data.synth" 2>/tmp/cryotune-gpu-import.txt; then
  echo "bench/gpu.sh: $PYTHON cannot import torch and cryotune's trainer:" >&2
  tail -n 3 /tmp/cryotune-gpu-import.txt >&2
  echo "install them first: $PYTHON -m pip install -e . (or set PYTHON=/path/to/python)" >&2
  exit 1
fi
"$PYTHON" - <<'PY'
import torch
if torch.cuda.is_available():
    print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
else:
    print("no CUDA device visible: pass --device cpu --quick for a smoke check")
PY
exec "$PYTHON" -m bench gpu_trainer "$@"
