#!/usr/bin/env bash
# A claim on a state with years of history against one on a small state:
# 10,000 entries (100 live, the rest archived by day) and 200,000 audit
# lines, against 100 entries and 1,000 lines. Each run claims one thought in
# a clone, and the state is reset between runs. The clock is pinned to a day
# the fixtures hold, so the claim appends to a day file as full as any
# (about 300 lines in the big one).
# usage: bench/history-claim.sh [DIR]
set -euo pipefail
export TGS_NOW=${TGS_NOW:-2026-11-15T12:00:00Z}
dir=${1:-/dev/shm/tgs-history}
here=$(cd "$(dirname "$0")/.." && pwd)
tgs=${TGS:-$here/target/release/tgs}
rm -rf "$dir" && mkdir -p "$dir"
python3 "$here/bench/history-fixtures.py" "$dir/big" 10000 200000 100 >/dev/null
python3 "$here/bench/history-fixtures.py" "$dir/small" 100 1000 100 >/dev/null
# hyperfine -N runs these without a shell: the commit is read now.
reset() { echo "git -C $dir/$1/origin.git update-ref refs/heads/tgs-state $(cat "$dir/$1/state.orig")"; }
hyperfine -N --warmup 2 --runs 20 \
  --prepare "$(reset small)" "$tgs -C $dir/small/clone server backlog next --claimed-by w" \
  --prepare "$(reset big)" "$tgs -C $dir/big/clone server backlog next --claimed-by w"
for size in small big; do
  sh -c "$(reset $size)"
  /usr/bin/time -f "$size: peak %M KiB" "$tgs" -C "$dir/$size/clone" server backlog next --claimed-by w >/dev/null
done
