#!/usr/bin/env bash
# Continuation: an agent whose work takes WORK seconds of agent time (one
# second at a time, its progress in a file of its repository), run under
# server.session_timeout TIMEOUT, until its thought is handed over (a pushed
# branch; --no-pr) or fails after MAX attempts.
#   bench/continuation.sh continue DIR [WORK=30] [TIMEOUT=10s] [MAX=8]
#       each attempt goes on from the work in progress the last one kept
#   bench/continuation.sh fresh DIR [WORK=30] [TIMEOUT=10s] [MAX=8]
#       the baseline: each attempt starts again from the base
#       (`tgs server backlog retry --fresh` before it)
# Prints the outcome, the attempts, the agent time (the sum of the sessions'
# own durations, from their transcripts) and the wall time.
# TGS names the binary (default: tgs on PATH).
set -euo pipefail
mode=${1:?continue or fresh}; dir=${2:?}; work=${3:-30}; timeout=${4:-10s}; max=${5:-8}
tgs=${TGS:-tgs}
tgs=$(readlink -f "$(command -v "$tgs")")
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null TGS_SANDBOX=off
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.com GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.com

rm -rf "$dir" && mkdir -p "$dir"
git init -q --bare -b main "$dir/origin.git"
git init -q -b main "$dir/repo" && cd "$dir/repo"
git remote add origin "$dir/origin.git"
mkdir -p src tgs/thoughts/abcdef1-long-work
echo 'pub fn answer() -> u32 { 42 }' > src/lib.rs
printf '# abcdef1 - Long work\n\n- Base Hash: `abcdef1`\n' > tgs/thoughts/abcdef1-long-work/README.md
printf '# Research\n\nLong.\n' > tgs/thoughts/abcdef1-long-work/research.md
printf '# Plan\n\n1. Work for a while.\n' > tgs/thoughts/abcdef1-long-work/plan.md
cat > "$dir/agent.sh" <<EOF
#!/bin/bash
# One second of work at a time; what is done is in .progress (one line a second).
done=\$(cat .progress 2>/dev/null | wc -l)
while [ "\$done" -lt $work ]; do
  sleep 1; echo tick >> .progress; done=\$((done + 1)); echo "second \$done of $work"
done
echo 'pub fn long_work() {}' >> src/lib.rs
printf '# Implementation\n\nDone over %s seconds.\n' "$work" > "\$TGS_THOUGHT_DIR/implementation.md"
git add -A && git commit -qm "Long work"
EOF
chmod +x "$dir/agent.sh"
cat > tgs/tgs.yml <<EOF
server:
  agent: slow
  session_timeout: $timeout
  max_attempts: $max
  retry_delay: 1s
  retry_delay_max: 1s
  kill_grace: 1s
  agents:
    slow: { command: "$dir/agent.sh" }
EOF
git add -A && git commit -qm "A long thought" && git push -q -u origin main
"$tgs" server scan >/dev/null 2>&1

start=$(date +%s.%N)
for _ in $(seq 1 "$max"); do
  if [ "$mode" = fresh ]; then
    "$tgs" server backlog retry tgs/thoughts/abcdef1-long-work --fresh >/dev/null 2>&1 || true
  fi
  "$tgs" server run --once --no-pr >/dev/null 2>&1 || true
  status=$("$tgs" --json server backlog show tgs/thoughts/abcdef1-long-work 2>/dev/null | sed -n 's/.*"status": *"\([a-z_]*\)".*/\1/p' | head -1)
  [ "$status" = queued ] || break
  sleep 1.1
done
end=$(date +%s.%N)
attempts=$("$tgs" --json server backlog show tgs/thoughts/abcdef1-long-work | sed -n 's/.*"attempts": *\([0-9]*\).*/\1/p' | head -1)
agent=$(cat tgs/server/logs/*.log | sed -n 's/^# tgs: the agent .* after \([0-9.]*\)s$/\1/p' | paste -sd+ | bc)
echo "$mode: $status after ${attempts:-0} attempt(s); agent time ${agent}s; wall $(echo "$end - $start" | bc)s"
