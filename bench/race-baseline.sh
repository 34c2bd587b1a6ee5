#!/usr/bin/env bash
# N sequential commit+push rounds of raw git on the same remote.
# usage: bench/race-baseline.sh DIR N
set -euo pipefail
cd "${1:?}/raw"
for i in $(seq 1 "${2:?}"); do
  echo "$i" >> rounds.txt && git add rounds.txt && git commit -qm "round $i" && git push -q origin HEAD:main
done
