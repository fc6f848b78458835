#!/usr/bin/env bash
# GPU check: on a machine with CUDA and an installed PyTorch (and possibly no Node), build the addon
# against that PyTorch's LibTorch (scripts/gpu-build.sh), then run scripts/gpu-check.js with device
# 'cuda' and print one JSON summary.
set -euo pipefail
source "$(dirname "$0")/gpu-build.sh"
status=0
node scripts/gpu-check.js || status=1
node scripts/gpu-check-bnn.js || status=1
exit $status
