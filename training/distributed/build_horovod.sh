#!/usr/bin/env bash
# Build (once) and install horovod==0.28.1 into graphlake's virtualenv.
#
# Usage:  bash training/distributed/build_horovod.sh [PYTHON]
#   PYTHON  the venv interpreter (default: $GRAPHLAKE_PYTHON, else <repo>/.venv/bin/python)
#
# Why a script: horovod 0.28.1 ships no wheel and its sdist does not build against torch >= 2.1
# as shipped, because its CMake forces C++14 (top-level CMakeLists.txt `CMAKE_CXX_STANDARD` and
# horovod/torch/CMakeLists.txt) while torch's headers need C++17; CXXFLAGS cannot override a
# CMAKE_CXX_STANDARD, so both files are patched to 17 before the build (~4 min on 2 cores).
#
# Cache: the built wheel is kept outside the clone, in
#   ${GRAPHLAKE_CACHE:-$HOME/.cache/graphlake}/wheels/horovod-<ver>-torch<ver>-<cpXY>-<cpu|cuNNN>/
# so a second run, or CI on a clean clone on the same machine, only installs it (seconds).
# Nothing at all is done when `import horovod.torch` already works with the right version.
#
# Environment:
#   GRAPHLAKE_CACHE         cache root (default $HOME/.cache/graphlake)
#   GRAPHLAKE_HOROVOD_GPU   auto (default) | 0 (force a CPU/gloo build) | 1 (force NCCL)
#   GRAPHLAKE_BUILD_JOBS    parallel compile jobs (default: nproc)
#   HOROVOD_NCCL_HOME / HOROVOD_NCCL_INCLUDE / HOROVOD_NCCL_LIB   passed through to horovod's CMake
#
# CPU build: HOROVOD_WITH_PYTORCH=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_{TENSORFLOW,MXNET,MPI}=1.
# GPU build (CUDA torch and a GPU or nvidia-smi present): adds HOROVOD_GPU_OPERATIONS=NCCL; needs
# nvcc (CUDA toolkit) and NCCL (taken from the nvidia-nccl pip package when no HOROVOD_NCCL_* is set).
set -euo pipefail

HOROVOD_VERSION="0.28.1"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PY="${1:-${GRAPHLAKE_PYTHON:-$ROOT/.venv/bin/python}}"
CACHE_ROOT="${GRAPHLAKE_CACHE:-$HOME/.cache/graphlake}"
JOBS="${GRAPHLAKE_BUILD_JOBS:-$(nproc 2>/dev/null || echo 2)}"
GPU_MODE="${GRAPHLAKE_HOROVOD_GPU:-auto}"

log() { echo "[build_horovod] $*"; }
die() { echo "[build_horovod] ERROR: $*" >&2; exit 1; }

[[ -x "$PY" ]] || die "python interpreter '$PY' not found or not executable (make install creates .venv)"
case "$GPU_MODE" in auto|0|1) ;; *) die "GRAPHLAKE_HOROVOD_GPU must be auto, 0 or 1, got '$GPU_MODE'" ;; esac

# --- what are we building against --------------------------------------------------------------
probe="$("$PY" - <<'EOF'
import sys
try:
    import torch
except Exception as exc:  # noqa: BLE001 - reported by the shell
    print(f"ERR {type(exc).__name__}: {exc}")
    sys.exit(0)
print(torch.__version__, torch.version.cuda or "none", int(torch.cuda.is_available()),
      f"cp{sys.version_info.major}{sys.version_info.minor}")
EOF
)"
[[ "$probe" != ERR* ]] || die "torch does not import in $PY (${probe#ERR }); install the project first"
read -r TORCH_VERSION TORCH_CUDA CUDA_AVAILABLE PY_TAG <<<"$probe"

want_gpu=0
if [[ "$GPU_MODE" == 1 ]]; then
    want_gpu=1
elif [[ "$GPU_MODE" == auto && "$TORCH_CUDA" != none ]]; then
    if [[ "$CUDA_AVAILABLE" == 1 ]] || command -v nvidia-smi >/dev/null 2>&1; then want_gpu=1; fi
fi
if [[ "$want_gpu" == 1 ]]; then
    [[ "$TORCH_CUDA" != none ]] || die "GRAPHLAKE_HOROVOD_GPU=1 but torch $TORCH_VERSION is a CPU build"
    VARIANT="cu${TORCH_CUDA//./}"
else
    VARIANT="cpu"
fi
KEY="horovod-${HOROVOD_VERSION}-torch${TORCH_VERSION//+/_}-${PY_TAG}-${VARIANT}"
WHEEL_DIR="$CACHE_ROOT/wheels/$KEY"
log "python $PY ($PY_TAG), torch $TORCH_VERSION (cuda: $TORCH_CUDA, gpu visible: $CUDA_AVAILABLE) -> $VARIANT build"

# --- 0. nothing to do? -------------------------------------------------------------------------
check_installed() {
    "$PY" - "$HOROVOD_VERSION" "$want_gpu" <<'EOF' 2>/dev/null
import sys
import horovod
import horovod.torch as hvd
want, gpu = sys.argv[1], sys.argv[2] == "1"
ok = horovod.__version__ == want and hvd.gloo_built() and (hvd.nccl_built() or not gpu)
sys.exit(0 if ok else 3)
EOF
}
if check_installed; then
    log "horovod $HOROVOD_VERSION already importable (horovod.torch, gloo$([[ $want_gpu == 1 ]] && echo ', nccl')); nothing to do"
    exit 0
fi

install_cached() {
    local whl="$1"
    log "installing $whl"
    "$PY" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps "$whl" \
        || die "pip install of cached wheel $whl failed"
    # runtime requirements of horovod (no torch here: it is already in the venv)
    "$PY" -m pip install --quiet --disable-pip-version-check cloudpickle psutil pyyaml packaging 'cffi>=1.4.0' \
        || die "installing horovod's runtime requirements failed"
    if ! check_installed; then
        die "horovod from $whl installed but 'import horovod.torch' fails or lacks gloo/nccl; the cached wheel does not fit this venv: delete $WHEEL_DIR and rerun"
    fi
    log "done: horovod $HOROVOD_VERSION works in $PY"
}

# --- 1. cached wheel? --------------------------------------------------------------------------
shopt -s nullglob
cached=("$WHEEL_DIR"/horovod-"$HOROVOD_VERSION"-*.whl)
shopt -u nullglob
if (( ${#cached[@]} > 0 )); then
    log "cache hit: $WHEEL_DIR"
    install_cached "${cached[0]}"
    exit 0
fi
log "cache miss: $WHEEL_DIR has no wheel; building from the PyPI sdist (takes ~4 min on 2 cores)"

# --- 2. build ----------------------------------------------------------------------------------
command -v cmake >/dev/null 2>&1 || die "cmake not found (apt-get install cmake)"
command -v g++ >/dev/null 2>&1 || die "g++ not found (apt-get install g++)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/graphlake-horovod.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$CACHE_ROOT/logs"
LOG="$CACHE_ROOT/logs/$KEY.log"

log "downloading horovod==$HOROVOD_VERSION sdist into $WORK"
"$PY" -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
    "horovod==$HOROVOD_VERSION" -d "$WORK" || die "downloading the horovod sdist failed"
tar -xzf "$WORK/horovod-$HOROVOD_VERSION.tar.gz" -C "$WORK" || die "unpacking the sdist failed"
SRC="$WORK/horovod-$HOROVOD_VERSION"

log "patching CMAKE_CXX_STANDARD 14 -> 17 (CMakeLists.txt, horovod/torch/CMakeLists.txt)"
for f in "$SRC/CMakeLists.txt" "$SRC/horovod/torch/CMakeLists.txt"; do
    sed -i 's/set(CMAKE_CXX_STANDARD 14)/set(CMAKE_CXX_STANDARD 17)/' "$f"
    grep -q 'set(CMAKE_CXX_STANDARD 17)' "$f" || die "patch did not apply to $f (sdist changed?)"
    ! grep -q 'set(CMAKE_CXX_STANDARD 14)' "$f" || die "C++14 still forced in $f"
done

# setup.py pulls its setup_requires at build time: install them first, from PyPI, the normal way
"$PY" -m pip install --quiet --disable-pip-version-check cloudpickle psutil pyyaml packaging 'cffi>=1.4.0' \
    || die "installing horovod's build requirements failed"

export HOROVOD_WITH_PYTORCH=1 HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_MXNET=1
export HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1
export MAKEFLAGS="-j$JOBS"
if [[ "$want_gpu" == 1 ]]; then
    command -v nvcc >/dev/null 2>&1 || [[ -x /usr/local/cuda/bin/nvcc ]] \
        || die "GPU build wanted (torch cuda $TORCH_CUDA) but nvcc is missing: install the CUDA toolkit, or set GRAPHLAKE_HOROVOD_GPU=0 for a gloo-only build"
    export HOROVOD_GPU_OPERATIONS=NCCL
    if [[ -z "${HOROVOD_NCCL_HOME:-}${HOROVOD_NCCL_INCLUDE:-}${HOROVOD_NCCL_LIB:-}" ]]; then
        nccl_dir="$("$PY" -c 'import nvidia.nccl, os; print(os.path.dirname(nvidia.nccl.__file__) if nvidia.nccl.__file__ else list(nvidia.nccl.__path__)[0])' 2>/dev/null || true)"
        if [[ -n "$nccl_dir" && -f "$nccl_dir/include/nccl.h" ]]; then
            # the pip package ships libnccl.so.2 only; CMake's find_library wants libnccl.so
            mkdir -p "$WORK/nccl_lib"
            ln -sf "$nccl_dir/lib/libnccl.so.2" "$WORK/nccl_lib/libnccl.so"
            export HOROVOD_NCCL_INCLUDE="$nccl_dir/include" HOROVOD_NCCL_LIB="$WORK/nccl_lib" HOROVOD_NCCL_LINK=SHARED
            log "using NCCL from the nvidia-nccl pip package: $nccl_dir"
        fi
    fi
    log "GPU build: HOROVOD_GPU_OPERATIONS=NCCL"
fi

log "compiling with $JOBS jobs; full log: $LOG"
start=$SECONDS
set +e
"$PY" -m pip wheel -v --disable-pip-version-check --no-deps --no-build-isolation -w "$WORK/dist" "$SRC" 2>&1 \
    | tee "$LOG" \
    | awk 'match($0, /\[ *[0-9]+%\]/) { pct = substr($0, RSTART, RLENGTH); if (pct != last) { sub(/^ +/, ""); print "[build_horovod]   " $0; fflush(); last = pct } }'
status=${PIPESTATUS[0]}
set -e
if (( status != 0 )); then
    echo "----- last 40 lines of $LOG -----" >&2
    tail -n 40 "$LOG" >&2
    die "horovod $HOROVOD_VERSION build failed (pip wheel exit $status) after $((SECONDS - start)) s; full log: $LOG"
fi
shopt -s nullglob
built=("$WORK"/dist/horovod-"$HOROVOD_VERSION"-*.whl)
shopt -u nullglob
(( ${#built[@]} == 1 )) || die "build finished but no horovod wheel in $WORK/dist (see $LOG)"
log "built $(basename "${built[0]}") in $((SECONDS - start)) s"

mkdir -p "$WHEEL_DIR"
cp "${built[0]}" "$WHEEL_DIR/.partial.$$" && mv "$WHEEL_DIR/.partial.$$" "$WHEEL_DIR/$(basename "${built[0]}")"
log "cached wheel in $WHEEL_DIR"
install_cached "$WHEEL_DIR/$(basename "${built[0]}")"
