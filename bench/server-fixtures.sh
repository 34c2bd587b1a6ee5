#!/usr/bin/env bash
# Fixtures for the server benchmarks.
#   bench/server-fixtures.sh session DIR K   a repo + bare origin with K queued thoughts and a
#                                            `command` agent that writes one file and the summary
#   bench/server-fixtures.sh race DIR N W    N queued thoughts on a bare origin and W clones
set -euo pipefail
what=${1:?}; dir=${2:?}
here=$(cd "$(dirname "$0")/.." && pwd)
tgs=${TGS:-$here/target/release/tgs}
export GIT_CONFIG_COUNT=2 GIT_CONFIG_KEY_0=gc.auto GIT_CONFIG_VALUE_0=0 GIT_CONFIG_KEY_1=user.useConfigOnly GIT_CONFIG_VALUE_1=false
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.com GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.com
rm -rf "$dir" && mkdir -p "$dir"
git init -q --bare -b main "$dir/origin.git"
git init -q -b main "$dir/repo"
cd "$dir/repo"
mkdir -p src && echo "pub fn x() {}" > src/lib.rs
n=${3:?}
for i in $(seq 1 "$n"); do
  d=tgs/thoughts/$(printf '%07x' $((0xc000000 + i)))-thought-$i
  mkdir -p "$d"
  printf '# %s - Thought %s\n' "${d#tgs/thoughts/}" "$i" > "$d/README.md"
  printf '# Research\nfacts\n' > "$d/research.md"
  printf '# Plan\nsteps\n' > "$d/plan.md"
done
cat > "$dir/agent.sh" <<'AGENT'
#!/bin/sh
# The cheapest honest agent: one code file, the summary, one commit.
set -e
echo "pub fn f() {}" > "src/$(basename "$TGS_THOUGHT_DIR").rs"
printf '# Implementation\nDone.\n' > "$TGS_THOUGHT_DIR/implementation.md"
git add -A && git commit -qm work
AGENT
chmod +x "$dir/agent.sh"
mkdir -p tgs && printf 'server:\n  agent: bench\n  agents:\n    bench: { command: "%s" }\n' "$dir/agent.sh" > tgs/tgs.yml
git add -A && git commit -qm thoughts
git remote add origin "$dir/origin.git" && git push -q -u origin main
"$tgs" server scan >/dev/null 2>&1
if [ "$what" = race ]; then
  for w in $(seq 1 "${4:?}"); do git clone -q "$dir/origin.git" "$dir/w$w"; done
  # The baseline's own copy of the remote, so the two runs do not interfere.
  git clone -q --bare "$dir/origin.git" "$dir/origin-raw.git"
  git clone -q "$dir/origin-raw.git" "$dir/raw"
fi
echo "fixtures in $dir"
