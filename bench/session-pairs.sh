#!/usr/bin/env bash
# A sandboxed session against the same session uncontained, run by turns.
#   bench/session-pairs.sh [PAIRS]   in the repo of `bench/server-fixtures.sh session DIR K`
# (K >= 2 x PAIRS queued thoughts), with the tgs to measure first on PATH. Each pair runs
# `tgs server run --once --no-pr` with TGS_SANDBOX=on, then with TGS_SANDBOX=off; prints
# the times, each pair's ratio, and the medians.
n=${1:-12}
ratios=(); on=(); off=()
for i in $(seq 1 $n); do
  a=$(date +%s%N); TGS_SANDBOX=on tgs server run --once --no-pr >/dev/null 2>&1; b=$(date +%s%N)
  TGS_SANDBOX=off tgs server run --once --no-pr >/dev/null 2>&1; c=$(date +%s%N)
  x=$(( (b-a)/1000000 )); y=$(( (c-b)/1000000 ))
  on+=($x); off+=($y); ratios+=($(awk -v x=$x -v y=$y 'BEGIN{printf "%.3f", x/y}'))
done
med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
echo "on (ms): ${on[*]}"; echo "off (ms): ${off[*]}"; echo "ratios: ${ratios[*]}"
echo "median on $(med "${on[@]}") ms, off $(med "${off[@]}") ms, ratio $(med "${ratios[@]}") (min $(printf '%s\n' "${ratios[@]}" | sort -g | head -1), max $(printf '%s\n' "${ratios[@]}" | sort -g | tail -1))"
