#!/usr/bin/env bash
# Reproduce the BENCHMARKS.md figures for scan, list and add with hyperfine
# (`apt-get install hyperfine`). usage: bench/scan-list-add.sh [DIR] [N]
set -euo pipefail
dir=${1:-/tmp/tgs-bench}
n=${2:-10000}
here=$(cd "$(dirname "$0")/.." && pwd)
(cd "$here" && cargo build --release --quiet)
tgs=$here/target/release/tgs
"$here/bench/prepare.sh" "$dir" "$n"
x=$(cat "$dir/x.txt")
cd "$dir/repo"
hyperfine -N --warmup 3 --runs 30 \
  'git ls-tree -r --name-only HEAD tgs/thoughts' \
  "$tgs server scan --dry-run --json"
cd "$dir/full"
hyperfine -N --warmup 3 --runs 30 "$tgs server backlog list --json"
hyperfine --warmup 3 --runs 30 \
  "cp ../backlog.orig tgs/server/backlog.json" \
  "cp ../backlog.orig tgs/server/backlog.json && $tgs server backlog add --no-commit $x"
hyperfine --warmup 2 --runs 15 \
  "$tgs server backlog add $x && $tgs server backlog remove $x"
