#!/usr/bin/env bash
# Builds the libFuzzer harnesses (clang, -fsanitize=fuzzer,address,undefined) against the native core's
# sources and runs each for a bounded time from our own seed corpus, then prints the iteration counts.
#
#   test/fuzz/build-and-run.sh [SECONDS]        # default 60 per harness; CI passes 20
#
# Environment:
#   FUZZ_REQUIRE=1    fail (instead of skipping) when no clang with libFuzzer is installed
#   FUZZ_TARGETS      space-separated subset of "validate_jobs codec"
# Output under build/fuzz/: the binaries, the grown corpora (corpus-<name>/), crash artifacts
# (artifacts/), the logs and summary.txt. A crash, sanitizer report or malloc past the limit fails the run.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
seconds="${1:-60}"
targets=(${FUZZ_TARGETS:-validate_jobs codec})
out="$root/build/fuzz"

clang=""
for candidate in clang++ clang++-18 clang++-17 clang++-16 clang++-15 clang++-14; do
  if command -v "$candidate" >/dev/null 2>&1; then clang="$candidate"; break; fi
done
if [[ -z "$clang" ]] || ! echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' |
  "$clang" -x c++ -fsanitize=fuzzer,address -o /dev/null - >/dev/null 2>&1; then
  message="no clang++ with libFuzzer and ASan found (install: .ci/reliability-tools.sh)"
  if [[ "${FUZZ_REQUIRE:-0}" == 1 ]]; then echo "error: $message" >&2; exit 1; fi
  echo "skipped: $message"
  exit 0
fi

mkdir -p "$out/obj" "$out/artifacts"
common=(-std=c++17 -O1 -g -fno-omit-frame-pointer -ffp-contract=off -fexceptions
  -fsanitize=address,undefined -fno-sanitize-recover=undefined -Inative/core -Inative/core/forward)
# Every native/core source, the forward engine's included (the one kernel chooser links every family's tables),
# globbed as CMakeLists.txt globs them, so a new file cannot be left out of this build.
defines=()
arch="$(uname -m)"
[[ "$arch" == x86_64 ]] && defines=(-DABLITERATE_KERNEL_AVX2=1 -DABLITERATE_KERNEL_AVX512=1)

echo "== building the native core with $clang (ASan + UBSan)"
objects=()
for source in $(find native/core -name '*.cpp' | sort); do
  name="$(basename "$source" .cpp)"
  object="$out/obj/$name.o"
  extra=()
  case "$name" in
    *kernels_avx2) [[ "$arch" == x86_64 ]] || continue; extra=(-mavx2 -mfma -mf16c) ;;
    *kernels_avx512) [[ "$arch" == x86_64 ]] || continue; extra=(-mavx512f -mavx512bw -mavx512vl -mavx2 -mfma -mf16c) ;;
  esac
  if [[ ! -f "$object" || "$source" -nt "$object" || -n "$(find native/core -name '*.h' -newer "$object" -print -quit)" ]]; then
    "$clang" "${common[@]}" "${defines[@]}" "${extra[@]}" -fsanitize=fuzzer-no-link -c "$source" -o "$object"
  fi
  objects+=("$object")
done

node test/fuzz/make-seeds.mjs "$out/seeds" >/dev/null

fuzz_tmp="$(mktemp -d "$([[ -d /dev/shm && -w /dev/shm ]] && echo /dev/shm || echo "${TMPDIR:-/tmp}")/abl-fuzz-XXXXXX")"
trap 'rm -rf "$fuzz_tmp"' EXIT
summary="$out/summary.txt"
: >"$summary"
status=0
for target in "${targets[@]}"; do
  binary="$out/fuzz_$target"
  echo "== building fuzz_$target"
  "$clang" "${common[@]}" "${defines[@]}" -fsanitize=fuzzer "test/fuzz/fuzz_$target.cpp" "${objects[@]}" -pthread -o "$binary"
  mkdir -p "$out/corpus-$target"
  log="$out/fuzz_$target.log"
  echo "== running fuzz_$target for ${seconds}s"
  # malloc_limit_mb: no input of a few KB may make the executor allocate hundreds of MB.
  set +e
  # The executor fsyncs every output; on tmpfs that costs nothing, so runs are many times faster there.
  TMPDIR="$fuzz_tmp" UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ASAN_OPTIONS=detect_leaks=1 \
    "$binary" -max_total_time="$seconds" -timeout=10 -malloc_limit_mb=256 -rss_limit_mb=2048 -max_len=4096 \
    -print_final_stats=1 -artifact_prefix="$out/artifacts/$target-" "$out/corpus-$target" "$out/seeds/$target" >"$log" 2>&1
  code=$?
  set -e
  runs="$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || echo '?')"
  coverage="$(grep -Eo 'cov: [0-9]+' "$log" | tail -1 | grep -Eo '[0-9]+' || echo '?')"
  corpus="$(find "$out/corpus-$target" -type f | wc -l)"
  if [[ $code -ne 0 ]]; then
    status=1
    echo "fuzz_$target: FAILED (exit $code) after $runs runs; see $log and $out/artifacts/" | tee -a "$summary"
    grep -E 'ERROR|SUMMARY|runtime error|==[0-9]+==|abort|out-of-memory' "$log" | head -20
  else
    echo "fuzz_$target: $runs runs in ${seconds}s, $coverage coverage edges, corpus $corpus inputs, no crash" | tee -a "$summary"
  fi
done
exit $status
