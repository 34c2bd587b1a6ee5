#!/usr/bin/env bash
# Build the benchmark fixtures: a repository of N thoughts in mixed states
# (../shared/bench/gen_thoughts_repo.py) and, in a copy, a backlog holding
# every one of them but X, the thought the `add` benchmark adds.
# usage: bench/prepare.sh DIR [N]   (N defaults to 10000)
set -euo pipefail
dir=${1:?usage: prepare.sh DIR [N]}
n=${2:-10000}
here=$(cd "$(dirname "$0")/.." && pwd)
tgs=${TGS:-$here/target/release/tgs}
gen=${GEN:-$here/../shared/bench/gen_thoughts_repo.py}
rm -rf "$dir" && mkdir -p "$dir"
# No background auto-gc repacking under our feet; pack once, in the foreground,
# as a real repository would be (set LOOSE=1 to keep the generator's loose objects).
GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=gc.auto GIT_CONFIG_VALUE_0=0 python3 "$gen" "$dir/repo" "$n" >/dev/null
[ -n "${LOOSE:-}" ] || git -C "$dir/repo" gc -q
git -C "$dir/repo" config gc.auto 0
cp -a "$dir/repo" "$dir/full"
cd "$dir/full"
"$tgs" server scan >/dev/null 2>&1
# Every thought, approved or not, so the backlog has N entries; keep one out for `add`.
git ls-tree -d --name-only HEAD tgs/thoughts/ >"$dir/dirs.txt"
x=$(sed -n 1p "$dir/dirs.txt")
sed 1d "$dir/dirs.txt" >"$dir/all.txt"
xargs "$tgs" server backlog add --no-commit <"$dir/all.txt" 2>/dev/null
git add tgs/server/backlog.json && git commit -qm "bench backlog"
cp tgs/server/backlog.json "$dir/backlog.orig"
echo "$x" >"$dir/x.txt"
echo "fixtures in $dir: repo/ (fresh), full/ (backlog of $(python3 -c "import json;print(len(json.load(open('tgs/server/backlog.json'))['thoughts']))") entries), x.txt"
