#!/usr/bin/env bash
# Makespan of `tgs server run --parallel K --until-empty`: N thoughts whose
# agent sleeps T seconds, then does the work; K = 1, 2, 4, 8. Compared with
# ceil(N/K) * T plus N times the serial per-session overhead (the same run
# with T = 0 and K = 1, divided by N).
# usage: bench/makespan.sh [DIR] [N] [T]
set -euo pipefail
dir=${1:-/dev/shm/tgs-makespan}
n=${2:-16}
t=${3:-4}
here=$(cd "$(dirname "$0")/.." && pwd)
tgs=${TGS:-$here/target/release/tgs}
fixture() { # fixture SLEEP
  rm -rf "$dir" && mkdir -p "$dir"
  git init -q --bare -b main "$dir/origin.git"
  git init -q -b main "$dir/repo"
  cd "$dir/repo"
  mkdir -p src && echo "pub fn x() {}" > src/lib.rs
  for i in $(seq 1 "$n"); do
    d=tgs/thoughts/$(printf '%07x' $((0xe000000 + i)))-thought-$i
    mkdir -p "$d"
    printf '# Research\nfacts\n' > "$d/research.md"; printf '# Plan\nsteps\n' > "$d/plan.md"
  done
  cat > "$dir/agent.sh" <<AGENT
#!/bin/sh
set -e
sleep $1
echo "pub fn f() {}" > "src/\$(basename "\$TGS_THOUGHT_DIR").rs"
printf '# Implementation\nDone.\n' > "\$TGS_THOUGHT_DIR/implementation.md"
git add -A && git commit -qm work
AGENT
  chmod +x "$dir/agent.sh"
  mkdir -p tgs && printf 'server:\n  agent: b\n  agents:\n    b: { command: "%s" }\n' "$dir/agent.sh" > tgs/tgs.yml
  git add -A && git commit -qm thoughts
  git remote add origin "$dir/origin.git" && git push -q -u origin main
  "$tgs" server scan >/dev/null 2>&1
}
elapsed() { # elapsed K: seconds of one run
  local s e
  s=$(date +%s.%N)
  "$tgs" -C "$dir/repo" server run --no-pr -q --parallel "$1" --until-empty >/dev/null 2>&1
  e=$(date +%s.%N)
  echo "$e - $s" | bc -l
}
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.com GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.com
fixture 0
o=$(echo "$(elapsed 1) / $n" | bc -l)
printf 'serial per-session overhead: %.3f s\n' "$o"
printf '%4s %10s %10s %7s\n' K measured expected ratio
for k in 1 2 4 8; do
  fixture "$t"
  m=$(elapsed "$k")
  x=$(echo "(($n + $k - 1) / $k) * $t + $n * $o" | bc -l)
  x=$(echo "scale=3; (($n + $k - 1) / $k)" | bc); x=$(echo "${x%.*} * $t + $n * $o" | bc -l)
  printf '%4s %9.2fs %9.2fs %6.2fx\n' "$k" "$m" "$x" "$(echo "$m / $x" | bc -l)"
done
