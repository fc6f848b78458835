#!/usr/bin/env bash
# Fresh-machine set-up: find LibTorch (or install Debian's libtorch-dev), then npm ci, which
# builds the addon (binding.gyp -> cmake-js) and the TypeScript (prepare).
#   LIBTORCH=/path/to/libtorch            use that LibTorch (e.g. a CUDA build)
#   SDEBNN_TORCH_FROM_PYTHON=1            use the installed PyTorch's LibTorch
set -euo pipefail
cd "$(dirname "$0")/.."

have_torch() {
  if [ -n "${LIBTORCH:-}" ]; then
    [ -f "$LIBTORCH/share/cmake/Torch/TorchConfig.cmake" ] && return 0
    echo "setup: LIBTORCH=$LIBTORCH has no share/cmake/Torch/TorchConfig.cmake" >&2
    exit 1
  fi
  if [ "${SDEBNN_TORCH_FROM_PYTHON:-}" = "1" ]; then
    "${SDEBNN_PYTHON:-python3}" -c "import torch" 2>/dev/null && return 0
    echo "setup: SDEBNN_TORCH_FROM_PYTHON=1 but '${SDEBNN_PYTHON:-python3} -c \"import torch\"' fails" >&2
    exit 1
  fi
  ls /usr/lib/*/cmake/Torch/TorchConfig.cmake /usr/share/cmake/Torch/TorchConfig.cmake >/dev/null 2>&1
}

need_apt=()
have_torch || need_apt+=(libtorch-dev)
# Debian's LibTorch calls the system BLAS; the reference libblas3 is ~50x slower than OpenBLAS
# (3 against 150 GFLOP/s sgemm on 2 cores). The OpenMP build matches LibTorch's threading.
if command -v dpkg >/dev/null 2>&1 && [ -z "${LIBTORCH:-}" ] && [ "${SDEBNN_TORCH_FROM_PYTHON:-}" != "1" ]; then
  dpkg -s libopenblas0-openmp >/dev/null 2>&1 || dpkg -s libopenblas0-pthread >/dev/null 2>&1 || need_apt+=(libopenblas0-openmp)
fi
# Distributed training (Gloo on CPU): Debian's LibTorch exports c10d's Gloo process group but
# ships without gloo's headers; libgloo-dev holds them (the same version as its libgloo0). A
# LibTorch of its own (LIBTORCH, a PyTorch) brings NCCL on CUDA instead, or nothing. Optional:
# without it everything but Gloo builds (initDistributed then says what is missing).
optional_apt=()
if command -v dpkg >/dev/null 2>&1 && [ -z "${LIBTORCH:-}" ] && [ "${SDEBNN_TORCH_FROM_PYTHON:-}" != "1" ]; then
  dpkg -s libgloo-dev >/dev/null 2>&1 || optional_apt+=(libgloo-dev)
fi
command -v cmake >/dev/null 2>&1 || need_apt+=(cmake)
command -v g++ >/dev/null 2>&1 || need_apt+=(g++)
command -v ninja >/dev/null 2>&1 || need_apt+=(ninja-build)

# Not needed to build: Debian's chromium drives the HTML report's browser test (test/report.test.ts,
# required in CI), and dataset-fashion-mnist (in /usr/share/datasets/fashion-mnist) is the OOD set of
# MNIST models ('sdebnn eval', 'npm run main').
[ -x /usr/bin/chromium ] || optional_apt+=(chromium)
[ -d /usr/share/datasets/fashion-mnist ] || optional_apt+=(dataset-fashion-mnist)

can_apt=0
command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ] && can_apt=1
if [ ${#optional_apt[@]} -gt 0 ]; then
  if [ $can_apt = 1 ]; then
    need_apt+=("${optional_apt[@]}")
  else
    echo "setup: note: ${optional_apt[*]} missing (libgloo-dev: distributed training with Gloo; chromium: the report's browser test," \
      "skipped outside CI; dataset-fashion-mnist: the Fashion-MNIST OOD set); as root: apt-get install -y ${optional_apt[*]}" >&2
  fi
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ $can_apt = 1 ]; then
    echo "setup: installing ${need_apt[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    cat >&2 <<MSG
setup: missing ${need_apt[*]}.
  On Debian/Ubuntu as root:  apt-get update && apt-get install -y ${need_apt[*]}
  Or point the build at a LibTorch:  LIBTORCH=/path/to/libtorch bash scripts/setup.sh
  Or at an installed PyTorch:        SDEBNN_TORCH_FROM_PYTHON=1 bash scripts/setup.sh
MSG
    exit 1
  fi
fi

echo "setup: npm ci (builds the addon and the TypeScript)"
npm ci --no-audit --no-fund
node -e "const s=require('./dist/index.js'); console.log('setup: backend', JSON.stringify(s.backend()))"
