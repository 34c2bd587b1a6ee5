#!/usr/bin/env bash
# W workers, each in its own clone, claim until nothing is left.
# usage: bench/race.sh DIR W [one|many]
#   one  (default) the workers share this machine's turn on the state branch
#   many each worker gets a turn directory of its own, as if on W machines:
#        only the remote's compare-and-swap orders them
set -euo pipefail
dir=${1:?}; w=${2:?}; machines=${3:-one}
tgs=${TGS:-$(cd "$(dirname "$0")/.." && pwd)/target/release/tgs}
for i in $(seq 1 "$w"); do
  (
    cd "$dir/w$i"
    if [ "$machines" = many ]; then export TGS_LOCK_DIR="$dir/w$i.turns"; fi
    while [ "$("$tgs" server backlog next --json --claimed-by "w$i" 2>/dev/null)" != null ]; do :; done
  ) &
done
wait
