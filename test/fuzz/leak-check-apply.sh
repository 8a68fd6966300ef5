#!/usr/bin/env bash
# Leak and memory-error check of real CLI runs on a tiny model, with the addon built with ASan + UBSan
# (cmake -DABLITERATE_SANITIZE=address,undefined) and the sanitizer runtimes preloaded into node:
#   1. apply (success)            2. verify (success)
#   3. apply that fails inside the native executor (write refused: RLIMIT_FSIZE, EFBIG)
#   4. verify of a tampered output (VERIFY_FAILED path)
# LeakSanitizer runs at exit (node itself exits leak-free, so any report is ours). A positive control first
# preloads a library that leaks 4321 bytes and requires LSan to report it, so a silent run means "no leak",
# not "no checking".
#
#   test/fuzz/leak-check-apply.sh              # LSan + UBSan (seconds)
#   test/fuzz/leak-check-apply.sh --valgrind   # also valgrind --leak-check=full on the Release addon (~1 min)
#
# ABLITERATE_SANITIZED_ADDON: the instrumented addon (default build/variants/sanitize/Debug/abliterate.node,
# built here with cmake-js when missing, as .ci/build-variants.sh does).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
with_valgrind=0
[[ "${1:-}" == --valgrind ]] && with_valgrind=1

if [[ ! -f dist/test/helpers/tiny-llama.js ]]; then npm run build >/dev/null; fi
addon="${ABLITERATE_SANITIZED_ADDON:-$root/build/variants/sanitize/Debug/abliterate.node}"
if [[ ! -f "$addon" ]]; then
  echo "== building the ASan + UBSan addon"
  node_modules/.bin/cmake-js compile -D -O build/variants/sanitize --CDABLITERATE_SANITIZE=address,undefined >/dev/null
  addon="$root/build/variants/sanitize/Debug/abliterate.node"
fi
preload="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"

work="$(mktemp -d "${TMPDIR:-/tmp}/abl-leak-XXXXXX")"
trap 'rm -rf "$work"' EXIT
node --input-type=module -e "
  const { writeTinyLlama, writeDirectionFile, randomDirection } = await import('$root/dist/test/helpers/tiny-llama.js');
  writeTinyLlama({ dir: '$work/model', dtype: 'BF16', tied: false, hidden: 64, intermediate: 128, layers: 2, vocab: 300, shards: 2 });
  writeDirectionFile('$work/d.safetensors', [{ name: 'direction', shape: [64], values: randomDirection(64, 3) }]);"

failures=0
report() { printf '%-44s %s\n' "$1" "$2"; }

# Runs node under the sanitizers; $1 = label, $2 = expected CLI exit status, the rest = the command.
sanitized() {
  local label="$1" expected="$2"
  shift 2
  local log="$work/lsan-$label"
  set +e
  env LD_PRELOAD="$preload" ABLITERATE_ADDON="$addon" \
    ASAN_OPTIONS="detect_leaks=1:exitcode=23:log_path=$log" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$log" \
    "$@" >"$work/$label.out" 2>&1
  local code=$?
  set -e
  local reports
  reports="$(cat "$log".* 2>/dev/null || true)"
  if [[ $code -eq $expected && -z "$reports" ]]; then
    report "$label" "ok (exit $code, no leak, no ASan/UBSan report)"
  else
    failures=$((failures + 1))
    report "$label" "FAILED (exit $code, expected $expected)"
    tail -5 "$work/$label.out"
    echo "$reports" | grep -E 'leak of|SUMMARY|runtime error|ERROR' | head -20
  fi
}

cli=(node "$root/bin/abliterate.js")
if command -v cc >/dev/null 2>&1; then
  printf '#include <stdlib.h>\n#include <string.h>\nvoid *volatile sink;\n__attribute__((constructor)) static void leak(void) { char *p = malloc(4321); memset(p, 1, 4321); sink = p; sink = 0; }\n' >"$work/leak.c"
  cc -shared -fPIC -O0 "$work/leak.c" -o "$work/leak.so"
  set +e
  env LD_PRELOAD="$preload:$work/leak.so" ASAN_OPTIONS="detect_leaks=1:exitcode=23" node -e 'setTimeout(() => {}, 1)' >"$work/control.out" 2>&1
  control=$?
  set -e
  if [[ $control -eq 23 ]] && grep -q 'Direct leak of 4321 byte' "$work/control.out"; then
    report "positive control (a 4321-byte leak)" "detected, as it must be"
  else
    failures=$((failures + 1))
    report "positive control (a 4321-byte leak)" "NOT detected (exit $control): the check below would prove nothing"
  fi
else
  report "positive control" "skipped (no C compiler)"
fi

sanitized apply 0 "${cli[@]}" apply "$work/model" --direction "$work/d.safetensors" --out "$work/out" --quiet --threads 2
sanitized verify 0 "${cli[@]}" verify "$work/model" "$work/out" --direction "$work/d.safetensors" --quiet --threads 2
# SIGXFSZ ignored, so the native write fails with EFBIG and the error travels back through the worker.
sanitized apply-write-refused 1 sh -c "trap '' XFSZ; ulimit -f 40; exec \"\$0\" \"\$@\"" "${cli[@]}" apply "$work/model" \
  --direction "$work/d.safetensors" --out "$work/out-refused" --quiet --threads 2
cp -R "$work/out" "$work/tampered"
node -e "const fs=require('fs');const p=process.argv[1];const b=fs.readFileSync(p);b[b.length-3]^=0x10;fs.writeFileSync(p,b)" \
  "$(ls "$work"/tampered/model-00001-*.safetensors)"
sanitized verify-tampered 1 "${cli[@]}" verify "$work/model" "$work/tampered" --direction "$work/d.safetensors" --quiet

if [[ $with_valgrind == 1 ]]; then
  if ! command -v valgrind >/dev/null 2>&1; then
    report "valgrind" "skipped (not installed)"
  else
    log="$work/valgrind.log"
    rm -rf "$work/out-vg"
    # V8's conservative stack scan reads uninitialised stack slots on purpose; those reports are V8's own.
    valgrind --leak-check=full --show-leak-kinds=definite,indirect,possible --log-file="$log" \
      "${cli[@]}" apply "$work/model" --direction "$work/d.safetensors" --out "$work/out-vg" --quiet --threads 2 >/dev/null 2>&1 || true
    definite="$(grep -Eo 'definitely lost: [0-9,]+ bytes' "$log" | grep -Eo '[0-9,]+' | tr -d , || echo '?')"
    indirect="$(grep -Eo 'indirectly lost: [0-9,]+ bytes' "$log" | grep -Eo '[0-9,]+' | tr -d , || echo '?')"
    possible="$(grep -Eo 'possibly lost: [0-9,]+ bytes' "$log" | grep -Eo '[0-9,]+' | tr -d , || echo '?')"
    ours="$(grep -c 'abliterate.node' "$log" || true)"
    if [[ -d "$work/out-vg" && "$definite" == 0 && "$indirect" == 0 && "$ours" == 0 ]]; then
      report "valgrind apply (Release addon)" "ok: definitely lost 0, indirectly lost 0, possibly lost ${possible} (node), no record in abliterate.node"
    else
      failures=$((failures + 1))
      report "valgrind apply (Release addon)" "FAILED: definitely ${definite}, indirectly ${indirect}, ${ours} record(s) in abliterate.node; see below"
      grep -B2 -A12 'abliterate.node' "$log" | head -60
    fi
  fi
fi

exit $((failures > 0))
