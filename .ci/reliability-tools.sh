#!/usr/bin/env bash
# Reliability checks that need more than node (docs/reliability.md):
#   - installs what a fresh Debian/Ubuntu machine lacks: clang with libFuzzer and the sanitizer runtimes
#     (clang-14, libclang-rt-14-dev) and valgrind;
#   - runs each libFuzzer harness for FUZZ_SECONDS (default 20) from our seed corpus;
#   - runs one apply (and verify, and two failing runs) under LeakSanitizer + UBSan.
# Needs dist/ built (npm run build); the ASan addon is built by .ci/build-variants.sh, or here when missing.
#   .ci/reliability-tools.sh                # install + fuzz + leak check
#   .ci/reliability-tools.sh --install-only
set -euo pipefail
cd "$(dirname "$0")/.."

have_fuzzer_clang() {
  for candidate in clang++ clang++-18 clang++-17 clang++-16 clang++-15 clang++-14; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' |
      "$candidate" -x c++ -fsanitize=fuzzer,address -o /dev/null - >/dev/null 2>&1; then
      return 0
    fi
  done
  return 1
}

need_apt=()
have_fuzzer_clang || need_apt+=(clang-14 libclang-rt-14-dev)
command -v valgrind >/dev/null 2>&1 || need_apt+=(valgrind)
if [[ ${#need_apt[@]} -gt 0 ]]; then
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    echo "reliability tools missing (${need_apt[*]}) and no root apt-get to install them; the fuzz step will skip"
  else
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need_apt[@]}"
  fi
fi
[[ "${1:-}" == --install-only ]] && exit 0

echo "::group::libFuzzer (${FUZZ_SECONDS:-20}s per harness)"
bash test/fuzz/build-and-run.sh "${FUZZ_SECONDS:-20}"
echo "::endgroup::"

echo "::group::LeakSanitizer + UBSan on apply/verify"
bash test/fuzz/leak-check-apply.sh
echo "::endgroup::"
