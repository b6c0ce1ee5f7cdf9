#!/usr/bin/env bash
# Create (once) the separate virtualenv that bench/pyg_reference.py runs in: PyTorch Geometric
# with torch-sparse (and torch-scatter) built from source against the project's torch.
#
# Usage:  bash bench/setup_pyg_venv.sh [VENV_DIR]
#   VENV_DIR  default: $GRAPHLAKE_PYG_VENV, else ${GRAPHLAKE_CACHE:-$HOME/.cache/graphlake}/pyg-venv
#             (outside the clone: PyG is a benchmark reference, never a graphlake dependency)
#
# Why a script: PyG's LinkNeighborLoader needs pyg-lib or torch-sparse for its neighbour sampler,
# and neither ships a wheel for torch 2.13, so torch-scatter and torch-sparse are compiled from
# their PyPI sdists with --no-build-isolation (they must see the venv's torch), MAX_JOBS jobs,
# under nice (≈ 9+ min for torch-sparse on 2 cores, a few minutes for torch-scatter).
#
# Idempotent: nothing is done when the venv already imports torch==$TORCH_VERSION,
# torch_geometric, torch_scatter and torch_sparse (with its neighbour-sampling op). The built
# wheels are cached in ${GRAPHLAKE_CACHE:-$HOME/.cache/graphlake}/wheels/<pkg>-<ver>-torch<ver>-<cpXY>-cpu/
# so recreating the venv only installs them (seconds).
#
# Environment:
#   GRAPHLAKE_CACHE        cache root (default $HOME/.cache/graphlake)
#   GRAPHLAKE_PYG_VENV     venv directory (overridden by the first argument)
#   GRAPHLAKE_PYTHON_BIN   interpreter that creates the venv (default python3.11)
#   MAX_JOBS               parallel compile jobs (default 2)
#   NICE                   nice level of the compile (default 10)
set -euo pipefail

TORCH_VERSION="2.13.0"
SCATTER_VERSION="2.1.2"
SPARSE_VERSION="0.6.18"
PYG_VERSION="2.8.1"
CACHE_ROOT="${GRAPHLAKE_CACHE:-$HOME/.cache/graphlake}"
VENV="${1:-${GRAPHLAKE_PYG_VENV:-$CACHE_ROOT/pyg-venv}}"
BASE_PY="${GRAPHLAKE_PYTHON_BIN:-python3.11}"
export MAX_JOBS="${MAX_JOBS:-2}"
NICE_LEVEL="${NICE:-10}"
PY="$VENV/bin/python"

log() { echo "[setup_pyg_venv] $*"; }
die() { echo "[setup_pyg_venv] ERROR: $*" >&2; exit 1; }

check_all() {
    "$PY" - "$TORCH_VERSION" <<'EOF' 2>/dev/null
import sys
import torch
import torch_geometric, torch_scatter, torch_sparse  # noqa: F401
ok = torch.__version__.split("+")[0] == sys.argv[1] and hasattr(torch.ops.torch_sparse, "hetero_neighbor_sample")
from torch_geometric.typing import WITH_TORCH_SPARSE
sys.exit(0 if ok and WITH_TORCH_SPARSE else 3)
EOF
}

if [[ -x "$PY" ]] && check_all; then
    log "$VENV already has torch $TORCH_VERSION, torch_geometric, torch_scatter, torch_sparse; nothing to do"
    exit 0
fi

# --- 1. venv + torch + PyG (pure Python) --------------------------------------------------------
if [[ ! -x "$PY" ]]; then
    command -v "$BASE_PY" >/dev/null 2>&1 || die "'$BASE_PY' not found (set GRAPHLAKE_PYTHON_BIN)"
    log "creating venv $VENV with $BASE_PY"
    mkdir -p "$(dirname "$VENV")"
    "$BASE_PY" -m venv "$VENV"
fi
pipq() { "$PY" -m pip install --quiet --disable-pip-version-check "$@"; }
pipq --upgrade pip
# torch pinned exactly: a looser spec pulls a multi-GB CUDA build; pip finds the local CPU wheel.
pipq "torch==$TORCH_VERSION" numpy scipy setuptools wheel ninja || die "installing torch $TORCH_VERSION failed"
pipq "torch_geometric==$PYG_VERSION" || die "installing torch_geometric failed"

read -r TV PY_TAG <<<"$("$PY" -c 'import sys, torch; print(torch.__version__, f"cp{sys.version_info.major}{sys.version_info.minor}")')"
[[ "$TV" == "$TORCH_VERSION"* ]] || die "venv has torch $TV, wanted $TORCH_VERSION"
[[ "$("$PY" -c 'import torch; print(torch.version.cuda or "none")')" == none ]] \
    || log "warning: torch $TV is a CUDA build; compiling the CPU kernels only (FORCE_ONLY_CPU=1)"
export FORCE_ONLY_CPU=1

# --- 2. torch-scatter, torch-sparse from source (cached wheels) ---------------------------------
build_one() {  # dist-name version import-name
    local dist="$1" ver="$2" mod="$3"
    if "$PY" -c "import $mod" 2>/dev/null; then
        log "$mod already importable"
        return 0
    fi
    local key="${dist}-${ver}-torch${TV//+/_}-${PY_TAG}-cpu"
    local wdir="$CACHE_ROOT/wheels/$key"
    shopt -s nullglob
    local cached=("$wdir"/*.whl)
    shopt -u nullglob
    if (( ${#cached[@]} == 0 )); then
        mkdir -p "$CACHE_ROOT/logs"
        local logf="$CACHE_ROOT/logs/$key.log" work
        work="$(mktemp -d "${TMPDIR:-/tmp}/graphlake-$dist.XXXXXX")"
        log "building $dist==$ver from the PyPI sdist (MAX_JOBS=$MAX_JOBS, nice $NICE_LEVEL); log: $logf"
        local start=$SECONDS
        if ! nice -n "$NICE_LEVEL" "$PY" -m pip wheel -v --disable-pip-version-check --no-deps \
                --no-build-isolation --no-binary "$dist" -w "$work" "$dist==$ver" >"$logf" 2>&1; then
            tail -n 40 "$logf" >&2
            rm -rf "$work"
            die "$dist $ver build failed after $((SECONDS - start)) s; full log: $logf"
        fi
        cached=("$work"/*.whl)
        (( ${#cached[@]} == 1 )) || die "no $dist wheel produced (see $logf)"
        mkdir -p "$wdir"
        cp "${cached[0]}" "$wdir/.partial.$$" && mv "$wdir/.partial.$$" "$wdir/$(basename "${cached[0]}")"
        rm -rf "$work"
        log "built $dist in $((SECONDS - start)) s; cached in $wdir"
        cached=("$wdir"/*.whl)
    else
        log "cache hit: $wdir"
    fi
    pipq --no-deps --force-reinstall "${cached[0]}" || die "installing ${cached[0]} failed"
    "$PY" -c "import $mod" || die "$mod installed from ${cached[0]} but does not import (stale cache? delete $wdir)"
}

build_one torch_scatter "$SCATTER_VERSION" torch_scatter
build_one torch_sparse "$SPARSE_VERSION" torch_sparse

check_all || die "venv built but the final check failed (torch_geometric must see torch_sparse: WITH_TORCH_SPARSE)"
"$PY" -c 'import torch, torch_geometric, torch_sparse, torch_scatter; print("[setup_pyg_venv] ok: torch", torch.__version__, "torch_geometric", torch_geometric.__version__, "torch_sparse", torch_sparse.__version__, "torch_scatter", torch_scatter.__version__)'
