#!/usr/bin/env bash
# Distributed benchmarks for the device machine (issue 17; 16 cores, one GPU): builds the addon
# against the installed PyTorch (scripts/gpu-build.sh), then scripts/dist-bench.js prints one JSON
# line per measurement: CPU scaling of the main model's training steps over 1, 2, 4 and 8
# processes; NCCL at world size 1 against one process without a group on CUDA; Gloo with 2 ranks
# on one GPU. What this build cannot do is printed as skipped, with the reason.
set -euo pipefail
source "$(dirname "$0")/gpu-build.sh"
node scripts/dist-bench.js
