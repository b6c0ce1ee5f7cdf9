#!/usr/bin/env bash
# The GPU check of the training path, as one short run on a CUDA machine (a few minutes on one GPU):
#   1. tests/test_cuda.py (every training configuration on the GPU against the CPU, fit + embed +
#      the checkpoint read on the CPU, one-rank DDP over NCCL) and tests/test_device_contract.py;
#   2. bench/train_throughput.py --device cuda: seed edges/s of the real trainer on the issue's
#      synthetic 5M-edge graph (PyG on the same GPU too, when the python has PyG with pyg-lib or
#      torch-sparse), then the same run with --profile (per-section ms, synchronised);
#   3. bench/inference.py --device cuda: every node's embedding, layer-wise vs sampled, same model.
# Needs a python with a CUDA torch, numpy, numba, pyyaml, tqdm and pytest — nothing of the
# project's .venv (no Spark, no Delta): the code runs from this checkout via PYTHONPATH.
#
#   bash bench/gpu_check.sh [OUT_DIR]          # results: OUT_DIR/{gpu.txt,pytest.log,throughput*.json,inference.json}
# Environment: PYTHON (default python3), DEVICE (default cuda; cpu = a dry run of this script),
# THREADS (torch CPU threads, default 8), BENCH_ARGS (extra throughput-bench flags, e.g. a smaller
# graph), INFERENCE_ARGS (extra bench/inference.py flags).
set -uo pipefail
OUT_DIR=${1:-${OUT:-/tmp/graphlake-gpu-check}}
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
THREADS=${THREADS:-8}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mkdir -p "$OUT_DIR"
cd "$ROOT" || exit 2
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 GRAPHLAKE_CUDA_TEST_DEVICE="$DEVICE"
status=0

{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || true
  "$PY" -c "import sys, torch; print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda,
'available', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
} 2>&1 | tee "$OUT_DIR/gpu.txt"

echo "== tests (device $DEVICE)"
"$PY" -m pytest -q -p no:cacheprovider -rs tests/test_cuda.py tests/test_device_contract.py 2>&1 \
    | tee "$OUT_DIR/pytest.log" || status=1

echo "== throughput (device $DEVICE)"
# shellcheck disable=SC2086  # BENCH_ARGS is a list of flags
"$PY" bench/train_throughput.py --device "$DEVICE" --threads "$THREADS" --pyg-python "$PY" --steps 50 \
    ${BENCH_ARGS:-} > "$OUT_DIR/throughput.json" 2> "$OUT_DIR/throughput.err"
echo "exit $? (0: ratio >= target, 1: below, 2: PyG not run here)"; cat "$OUT_DIR/throughput.json"
# shellcheck disable=SC2086
"$PY" bench/train_throughput.py --device "$DEVICE" --threads "$THREADS" --pyg-python /nonexistent --profile \
    --steps 50 ${BENCH_ARGS:-} > "$OUT_DIR/throughput_profile.json" 2> "$OUT_DIR/throughput_profile.err"
cat "$OUT_DIR/throughput_profile.json"

echo "== inference (device $DEVICE)"
# shellcheck disable=SC2086
"$PY" bench/inference.py --device "$DEVICE" --threads "$THREADS" --steps 50 ${INFERENCE_ARGS:-} \
    > "$OUT_DIR/inference.json" 2> "$OUT_DIR/inference.err"
cat "$OUT_DIR/inference.json"
exit $status
