#!/usr/bin/env bash
# W workers, each in its own clone, claim until nothing is left.
# usage: bench/race.sh DIR W
set -euo pipefail
dir=${1:?}; w=${2:?}
tgs=${TGS:-$(cd "$(dirname "$0")/.." && pwd)/target/release/tgs}
for i in $(seq 1 "$w"); do
  ( cd "$dir/w$i" && while [ "$("$tgs" server backlog next --json --claimed-by "w$i" 2>/dev/null)" != null ]; do :; done ) &
done
wait
