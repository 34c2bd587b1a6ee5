#!/usr/bin/env bash
# Fuzz every cargo-fuzz target of fuzz/ for a while (FUZZ_SECONDS each,
# default 30) from its seed corpus in fuzz/corpus/<target>; a crash fails
# the script and leaves its input in fuzz/artifacts/<target>/.
#
# The toolchain here is stable: cargo-fuzz passes rustc `-Z` flags, which
# RUSTC_BOOTSTRAP=1 allows, and `-s none` builds without a sanitizer (ASan
# would need a nightly standard library); libFuzzer's coverage guidance
# (sancov) works without one. New inputs go to a scratch directory, so the
# committed corpus stays as it is. Needs a C++ compiler (libFuzzer is built
# from source by libfuzzer-sys).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${FUZZ_SECONDS:-30}
export RUSTC_BOOTSTRAP=1 CARGO_TERM_COLOR=never
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --version 0.13.2
fi
cargo fuzz build -s none -O
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for target in $(cargo fuzz list); do
  mkdir -p "$scratch/$target"
  cargo fuzz run -s none -O "$target" "$scratch/$target" "corpus/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 >"$scratch/$target.log" 2>&1 || {
      tail -40 "$scratch/$target.log"
      echo "fuzz: $target failed (the input is in fuzz/artifacts/$target/)"
      exit 1
    }
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$scratch/$target.log" | grep -o '[0-9]*$' || echo '?')
  echo "fuzz: $target: $runs executions in ${seconds}s, no crash"
done
