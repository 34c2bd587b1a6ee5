#!/usr/bin/env bash
# The git work of one server session done by hand, for comparison with
# `tgs server run --once`: a claim commit pushed, a worktree, the agent's
# commit, the branch pushed, a completion commit pushed.
# usage: (in the repo) bench/session-baseline.sh AGENT
set -euo pipefail
agent=${1:?}
state() {  # one state commit on origin/main: fetch, edit the file, commit, push
  git fetch -q origin main
  git checkout -q --detach origin/main
  echo "$1" >> tgs/server/state.txt
  git add tgs/server/state.txt && git commit -qm "$1"
  git push -q origin HEAD:main
}
n=$(git rev-parse --short HEAD)$RANDOM
state "claim $n"
git worktree add -q -B "tgs/$n" ".tgs/wt/$n" origin/main
( cd ".tgs/wt/$n" && TGS_THOUGHT_DIR=$(ls -d tgs/thoughts/* | head -1) "$agent" )
git push -q --force origin "tgs/$n:refs/heads/tgs/$n"
git worktree remove --force ".tgs/wt/$n"
state "complete $n"
