#!/usr/bin/env bash
# Builds every variant of the native addon so that none of them can rot, each into its own folder
# (build/Release, the default one that `npm install` makes, is rebuilt but never overwritten by a variant):
#   1. cmake-js Release                      -> build/Release/abliterate.node
#   2. CUDA, when nvcc exists                -> build/variants/cuda/Release/abliterate.node
#   3. node-gyp (binding.gyp), CPU only      -> build/variants/gyp/build/Release/abliterate.node
#   4. Debug with ASan + UBSan               -> build/variants/sanitize/Debug/abliterate.node
# With dist/ built (npm run build) it then runs the native unit tests against each variant that can run
# here. The CUDA build registers its "cuda" backend plug-in: where a device exists the parity test compares it
# byte for byte with the CPU backend, elsewhere the test reports a skip with the reason and the CPU fallback is
# tested instead. Set ABLITERATE_VARIANT_TESTS=0 to only build. CUDA architectures: ABLITERATE_CUDA_ARCHITECTURES
# (default 80, one keeps CI fast).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
cmake_js="$root/node_modules/.bin/cmake-js"
run_tests="${ABLITERATE_VARIANT_TESTS:-1}"
native_tests=(dist/test/unit/native-dtype.test.js dist/test/unit/native-kernels.test.js dist/test/unit/native-jobs.test.js
  dist/test/unit/native-backend-parity.test.js dist/test/unit/native-kernel-choice.test.js)
failures=()

step() { printf '\n== %s\n' "$*"; }

test_variant() {
  local name="$1" addon="$2"
  shift 2
  if [[ "$run_tests" != 1 ]]; then return 0; fi
  if [[ ! -f "${native_tests[0]}" ]]; then
    echo "(dist/ not built: skipping the tests of $name; run npm run build first)"
    return 0
  fi
  step "test $name"
  if ! env "$@" ABLITERATE_ADDON="$addon" node --test "${native_tests[@]}" >"build/variants/$name-tests.log" 2>&1; then
    tail -40 "build/variants/$name-tests.log"
    failures+=("$name tests")
  else
    grep -E '^# (pass|fail|skipped)|# SKIP' "build/variants/$name-tests.log"
  fi
}

mkdir -p build/variants

step "1. cmake-js Release"
"$cmake_js" compile
test_variant release "$root/build/Release/abliterate.node"

step "2. CUDA"
if command -v nvcc >/dev/null 2>&1; then
  "$cmake_js" compile -O build/variants/cuda --CDABLITERATE_CUDA=ON \
    "--CDCMAKE_CUDA_ARCHITECTURES=${ABLITERATE_CUDA_ARCHITECTURES:-80}"
  test_variant cuda "$root/build/variants/cuda/Release/abliterate.node"
else
  echo "nvcc not on PATH: skipped"
fi

step "3. node-gyp (binding.gyp)"
# node-gyp builds into ./build of the folder it runs in, so it runs in a copy of the sources.
gyp_dir="$root/build/variants/gyp"
rm -rf "$gyp_dir"
mkdir -p "$gyp_dir"
cp -R binding.gyp package.json native "$gyp_dir/"
ln -s "$root/node_modules" "$gyp_dir/node_modules"
node_gyp="$(npm prefix -g 2>/dev/null)/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js"
if [[ ! -f "$node_gyp" ]]; then node_gyp="$(dirname "$(command -v npm)")/../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js"; fi
gyp_args=(rebuild)
# Headers without a download: npm's nodedir setting, else the headers installed next to node.
nodedir="$(npm config get nodedir 2>/dev/null || true)"
node_prefix="$(dirname "$(dirname "$(command -v node)")")"
if [[ -n "$nodedir" && "$nodedir" != undefined && "$nodedir" != null ]]; then
  gyp_args+=("--nodedir=$nodedir")
elif [[ -f "$node_prefix/include/node/common.gypi" ]]; then
  gyp_args+=("--nodedir=$node_prefix")
fi
(cd "$gyp_dir" && node "$node_gyp" "${gyp_args[@]}" --jobs=2)
test_variant gyp "$gyp_dir/build/Release/abliterate.node"

step "4. Debug, ASan + UBSan"
"$cmake_js" compile -D -O build/variants/sanitize --CDABLITERATE_SANITIZE=address,undefined
# node is not instrumented: the sanitizer runtimes have to be loaded first.
sanitizer_preload="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
test_variant sanitize "$root/build/variants/sanitize/Debug/abliterate.node" \
  "LD_PRELOAD=$sanitizer_preload" ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1

if ((${#failures[@]})); then
  printf '\nFAILED: %s\n' "${failures[@]}"
  exit 1
fi
printf '\nall variants built%s\n' "$([[ "$run_tests" == 1 ]] && echo " and tested" || true)"
