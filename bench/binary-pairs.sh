#!/usr/bin/env bash
# One session by one tgs against the same session by another, run by turns.
#   bench/binary-pairs.sh TGS_A TGS_B [PAIRS]
# in the repo of `bench/server-fixtures.sh session DIR K` (K >= 2 x PAIRS queued
# thoughts). Each pair runs `server run --once --no-pr` with A, then with B (each takes
# the next queued thought); prints the times, each pair's ratio A/B, and the medians.
a_bin=${1:?}; b_bin=${2:?}; n=${3:-12}
ratios=(); as=(); bs=()
for i in $(seq 1 "$n"); do
  t0=$(date +%s%N); "$a_bin" server run --once --no-pr >/dev/null 2>&1; t1=$(date +%s%N)
  "$b_bin" server run --once --no-pr >/dev/null 2>&1; t2=$(date +%s%N)
  x=$(( (t1-t0)/1000000 )); y=$(( (t2-t1)/1000000 ))
  as+=($x); bs+=($y); ratios+=($(awk -v x=$x -v y=$y 'BEGIN{printf "%.3f", x/y}'))
done
med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
echo "A (ms): ${as[*]}"; echo "B (ms): ${bs[*]}"; echo "ratios: ${ratios[*]}"
echo "median A $(med "${as[@]}") ms, B $(med "${bs[@]}") ms, ratio $(med "${ratios[@]}") (min $(printf '%s\n' "${ratios[@]}" | sort -g | head -1), max $(printf '%s\n' "${ratios[@]}" | sort -g | tail -1))"
