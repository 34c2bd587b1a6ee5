#!/usr/bin/env bash
# A 100 MB download through the sandbox's proxy against the same download direct.
#   bench/proxy.sh DIR [RUNS]
# Serves a 100 MB file on loopback (python3's http.server), then times `curl` fetching
# it RUNS times (default 10): directly from this shell, and from inside a sandboxed tgs
# session (bubblewrap), whose only way out is tgs's filtering proxy (`allow_hosts`
# names the server). Prints each side's times and the ratio of the medians. The two
# sides run by turns, so a drift of the machine's speed hits both. RATE=125M (curl's
# --limit-rate, bytes per second) makes both sides a 1 Gbit/s download instead of
# loopback's several GB/s.
set -euo pipefail
dir=${1:?}; runs=${2:-10}
here=$(cd "$(dirname "$0")/.." && pwd)
tgs=${TGS:-$here/target/release/tgs}
rm -rf "$dir" && mkdir -p "$dir/www"
head -c 100000000 /dev/urandom > "$dir/www/100mb"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m http.server -b 127.0.0.1 -d "$dir/www" "$port" >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null' EXIT
url=http://127.0.0.1:$port/100mb
until curl -s -o /dev/null "$url"; do sleep 0.2; done
"$here/bench/server-fixtures.sh" session "$dir/s" "$runs" >/dev/null
cat > "$dir/s/agent.sh" <<AGENT
#!/bin/sh
# One download through the proxy (HTTP_PROXY), its time on the transcript.
echo "fetched in \$(curl -sS ${RATE:+--limit-rate $RATE} -o /dev/null -w '%{time_total}' $url) s"
set -e
echo "pub fn f() {}" > "src/\$(basename "\$TGS_THOUGHT_DIR").rs"
printf '# Implementation\nDone.\n' > "\$TGS_THOUGHT_DIR/implementation.md"
git add -A && git commit -qm work
AGENT
cd "$dir/s/repo"
printf 'server:\n  agent: bench\n  sandbox: { mode: on, allow_hosts: ["127.0.0.1:%s"] }\n  agents:\n    bench: { command: "%s" }\n' \
  "$port" "$dir/s/agent.sh" > tgs/tgs.yml
git add -A && git commit -qm proxy && git push -q origin main
direct=(); proxied=()
for _ in $(seq 1 "$runs"); do
  direct+=("$(curl -sS ${RATE:+--limit-rate $RATE} -o /dev/null -w '%{time_total}' "$url")")
  TGS_SANDBOX=on "$tgs" server run --once --no-pr >/dev/null 2>&1
  log=$(ls -t tgs/server/logs/*.log | head -1)
  proxied+=("$(sed -n 's/^fetched in \([0-9.]*\) s$/\1/p' "$log" | tail -1)")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; print m}'; }
d=$(median "${direct[@]}"); p=$(median "${proxied[@]}")
echo "direct:  ${direct[*]}"
echo "proxied: ${proxied[*]}"
echo "median direct $d s, through the proxy $p s: $(awk -v p="$p" -v d="$d" 'BEGIN {printf "%.2f", p/d}')x"
