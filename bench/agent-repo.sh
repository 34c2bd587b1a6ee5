#!/usr/bin/env bash
# The agent's own repository against a git worktree, on a large repository.
#   bench/agent-repo.sh fixture DIR FILES   a repository of FILES small files (in 100 directories)
#   bench/agent-repo.sh own DIR             what tgs's worktree::prepare does: a repository of its
#                                           own borrowing the objects (alternates), checked out
#   bench/agent-repo.sh worktree DIR        `git worktree add` of the same commit (the baseline)
# Each run removes what the previous one made first.
set -euo pipefail
what=${1:?}; dir=${2:?}
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.com GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.com
case "$what" in
  fixture)
    n=${3:?}
    rm -rf "$dir" && git init -q -b main "$dir/repo" && cd "$dir/repo"
    for d in $(seq 0 99); do
      mkdir -p "src/d$d"
      for f in $(seq 0 $((n / 100 - 1))); do echo "pub fn f$f() {} // $d" > "src/d$d/f$f.rs"; done
    done
    git add -A && git commit -qm files && git gc -q
    ;;
  own)
    cd "$dir/repo"
    rm -rf .tgs/own && mkdir -p .tgs/own
    git init -q --template= .tgs/own
    echo "$PWD/.git/objects" > .tgs/own/.git/objects/info/alternates
    head=$(git rev-parse HEAD)
    git -C .tgs/own update-ref refs/heads/work "$head"
    git -C .tgs/own symbolic-ref HEAD refs/heads/work
    git -C .tgs/own reset -q --hard
    ;;
  worktree)
    cd "$dir/repo"
    git worktree remove --force .tgs/wt 2>/dev/null || rm -rf .tgs/wt
    git worktree prune
    git worktree add -q --force -B work .tgs/wt HEAD
    ;;
  *) echo "usage: $0 fixture|own|worktree DIR [FILES]" >&2; exit 2 ;;
esac
