#!/usr/bin/env bash
# An agent that prints 1 GB (in lines, as agents do) and then does its work;
# measure tgs's peak memory with /usr/bin/time -v or hyperfine.
# usage: bench/flood.sh DIR   (then: cd DIR/repo && /usr/bin/time -v tgs server run --once --no-pr -q)
set -euo pipefail
dir=${1:?}
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/bench/server-fixtures.sh" session "$dir" 10 >/dev/null
cat > "$dir/agent.sh" <<'AGENT'
#!/bin/sh
set -e
yes 'the agent is thinking out loud, at length, about the plan and the code.' | head -c 1000000000
echo "pub fn f() {}" > "src/$(basename "$TGS_THOUGHT_DIR").rs"
printf '# Implementation\nDone.\n' > "$TGS_THOUGHT_DIR/implementation.md"
git add -A && git commit -qm work
AGENT
chmod +x "$dir/agent.sh"
echo "fixtures in $dir"
