#!/usr/bin/env bash
# Two commands run by turns, each pair timed: A's time over B's.
#   bench/pairs.sh 'COMMAND A' 'COMMAND B' [PAIRS]
# Each command is one string run by `sh -c`; prints the times, each pair's ratio A/B
# and the medians. Run by turns, a drift of the machine's speed hits both.
a_cmd=${1:?}; b_cmd=${2:?}; n=${3:-12}
ratios=(); as=(); bs=()
for i in $(seq 1 "$n"); do
  t0=$(date +%s%N); sh -c "$a_cmd" >/dev/null 2>&1; t1=$(date +%s%N)
  sh -c "$b_cmd" >/dev/null 2>&1; t2=$(date +%s%N)
  x=$(( (t1-t0)/1000000 )); y=$(( (t2-t1)/1000000 ))
  as+=($x); bs+=($y); ratios+=($(awk -v x=$x -v y=$y 'BEGIN{printf "%.3f", x/y}'))
done
med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
echo "A (ms): ${as[*]}"; echo "B (ms): ${bs[*]}"; echo "ratios: ${ratios[*]}"
echo "median A $(med "${as[@]}") ms, B $(med "${bs[@]}") ms, ratio $(med "${ratios[@]}") (min $(printf '%s\n' "${ratios[@]}" | sort -g | head -1), max $(printf '%s\n' "${ratios[@]}" | sort -g | tail -1))"
